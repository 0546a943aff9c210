"""`make bench` = python -m bench.run [--quick] [--banking77]: runs each section module
bench/<section>.py (`run(quick) -> list[row]`, a row {"section", "metric", "value", "unit", "note"}),
prints one table and writes bench/results/latest.json with the machine's description."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import torch

SECTIONS = ("model_core", "service", "serving", "quality")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


def run_section(name: str, quick: bool, **options) -> list[dict] | None:
    """The section's rows; None when its module does not exist; an "error" row when it fails."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"bench.{name}":
            return None
        raise
    started = time.perf_counter()
    try:
        rows = module.run(quick, **options)
    except Exception as e:  # one failing section must not lose the others' numbers
        traceback.print_exc()
        return [{"section": name, "metric": "error", "value": None, "unit": "", "note": f"{type(e).__name__}: {e}"}]
    return rows + [{"section": name, "metric": "section wall time", "value": round(time.perf_counter() - started, 1),
                    "unit": "s", "note": ""}]


def print_table(rows: list[dict]) -> None:
    header = ("section", "metric", "value", "unit", "note")
    cells = [[str(row.get(key, "")) for key in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    widths[-1] = len(header[-1])  # notes are not padded
    for line in [list(header), ["-" * w for w in widths], *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small version, about 8 minutes on 2 cores")
    parser.add_argument("--banking77", action="store_true",
                        help="also the long Banking77 full-train run (model_core section)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    info = machine()
    rows: list[dict] = []
    for name in args.only or SECTIONS:
        options = {"banking77": True} if args.banking77 and name == "model_core" else {}
        section_rows = run_section(name, args.quick, **options)
        if section_rows is None:
            print(f"(no bench/{name}.py yet: skipped)")
            continue
        rows += section_rows
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"started_at": datetime.now(UTC).isoformat(), "quick": args.quick,
                                   "duration_s": round(time.perf_counter() - started, 1), "machine": info,
                                   "rows": rows}, indent=2) + "\n")
    print(f"machine: {info}\nwrote {RESULTS}")
    return 1 if any(row["metric"] == "error" for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
