"""Dev helpers shared by the tests (tests/) and the benchmarks (bench/): SST-2 subsets (`testkit.data`), a tiny
random BERT (`testkit.models`), the stores and the model registry (`testkit.store`) and the service's real
processes driven from outside (`testkit.processes`).

Not an installed package: it is imported from the repository root, as `python -m pytest` and `python -m bench.run`
run there. Nothing in it imports `tests`."""
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
