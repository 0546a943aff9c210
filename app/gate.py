"""The promotion gate: how two evaluation reports (model_core/report.py's shape) of the same rows compare, and
whether a candidate model may replace the deployed one. Pure functions of the report dicts: the compare endpoint,
the deploy gate and auto-deploy all decide here."""
from __future__ import annotations

DEFAULT_MAX_CLASS_DROP = 0.05
HEADLINE = ("accuracy", "macro_f1")  # report["metrics"] figures compared
PER_CLASS = ("precision", "recall", "f1")  # report["per_class"] figures compared
TOLERANCE = 1e-9  # float noise (another batch padding) is no drop


def _delta(a: float | None, b: float | None) -> dict:
    return {"a": a, "b": b, "delta": None if a is None or b is None else b - a}


def compare(a: dict, b: dict) -> dict:
    """b - a of two reports on the same data: {"accuracy", "macro_f1", "per_class": [{"label", "support",
    "precision", "recall", "f1"}]}, each figure {"a", "b", "delta"}. per_class follows a's labels, then b's others;
    the figures of a label that one report lacks are null, and so is their delta."""
    rows_a = {row["label"]: row for row in a["per_class"]}
    rows_b = {row["label"]: row for row in b["per_class"]}
    per_class = []
    for label in [*rows_a, *(label for label in rows_b if label not in rows_a)]:
        row_a, row_b = rows_a.get(label, {}), rows_b.get(label, {})
        per_class.append({"label": label, "support": row_a.get("support", row_b.get("support")),
                          **{name: _delta(row_a.get(name), row_b.get(name)) for name in PER_CLASS}})
    return {**{name: _delta(a["metrics"][name], b["metrics"][name]) for name in HEADLINE}, "per_class": per_class}


def gate(deployed: dict, candidate: dict, max_class_drop: float = DEFAULT_MAX_CLASS_DROP) -> dict:
    """Whether `candidate` may replace `deployed`, both reports on the same rows: refused when its macro-F1 is
    lower, or when the F1 of a class the rows contain (support > 0) drops by more than `max_class_drop`.
    {"passed", "reasons" (one line per refusal), "max_class_drop", "comparison": compare(deployed, candidate)}."""
    comparison = compare(deployed, candidate)
    reasons = []
    macro = comparison["macro_f1"]
    if macro["delta"] < -TOLERANCE:
        reasons.append(f"macro-F1 {macro['b']:.4f} is lower than the deployed model's {macro['a']:.4f}")
    for row in comparison["per_class"]:
        f1 = row["f1"]
        if row["support"] and f1["delta"] is not None and f1["delta"] < -max_class_drop - TOLERANCE:
            reasons.append(f"class {row['label']!r}: F1 {f1['b']:.4f} is {-f1['delta']:.4f} below the deployed "
                           f"model's {f1['a']:.4f}, more than max_class_drop {max_class_drop}")
    return {"passed": not reasons, "reasons": reasons, "max_class_drop": max_class_drop, "comparison": comparison}
