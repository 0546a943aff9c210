"""The shared data sets next to the repository, and seeded SST-2 subsets written as TSV files."""
from __future__ import annotations

import random
from pathlib import Path

from testkit import REPO

SHARED_DATA = REPO.parent / "shared" / "data"
SST2_TRAIN = SHARED_DATA / "sst2" / "train.tsv"
SST2_DEV = SHARED_DATA / "sst2" / "dev.tsv"


def sst2_rows(n: int, seed: int = 0) -> list[str]:
    """n SST-2 training lines (label<TAB>sentence), both labels present, seeded."""
    lines = SST2_TRAIN.read_text(encoding="utf-8").splitlines()[1:]
    return random.Random(seed).sample(lines, n)


def write_sst2(path: Path, n: int, seed: int = 0) -> Path:
    path.write_text("label\tsentence\n" + "\n".join(sst2_rows(n, seed)) + "\n", encoding="utf-8")
    return path
