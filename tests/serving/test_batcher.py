"""length_chunks: the split of a length-sorted batch into forward passes is the cheapest one."""
import itertools
import random

import pytest

from app.serving.batcher import length_chunks


def cost(lengths: list[int], runs: list[range], overhead: int) -> int:
    return sum(overhead + len(run) * lengths[run[-1]] for run in runs)


def every_split(n: int):
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), n]
        yield [range(a, b) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("seed", range(20))
def test_length_chunks_is_optimal_and_covers_every_input(seed):
    rng = random.Random(seed)
    lengths = sorted(rng.randint(2, 128) for _ in range(rng.randint(1, 11)))
    overhead = rng.choice([0, 16, 64, 512])
    runs = length_chunks(lengths, overhead)
    assert [i for run in runs for i in run] == list(range(len(lengths)))
    assert cost(lengths, runs, overhead) == min(cost(lengths, split, overhead) for split in every_split(len(lengths)))


def test_length_chunks_extremes():
    assert length_chunks([7] * 300) == [range(300)]  # equal lengths: one pass
    assert length_chunks([5] * 10 + [120] * 10) == [range(10), range(10, 20)]
