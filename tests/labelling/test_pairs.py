import itertools

import numpy as np
import pytest

from evoquality.labelling.pairs import decode_pair_index, n_distinct_pairs, sample_pairs


@pytest.mark.parametrize("n", [2, 3, 7, 64, 1001])
def test_decode_pair_index_matches_enumeration(n):
    expected = list(itertools.combinations(range(n), 2))
    if len(expected) > 50_000:
        idx = np.random.default_rng(0).choice(len(expected), 5000, replace=False)
        expected = [expected[k] for k in idx]
    else:
        idx = np.arange(len(expected))
    a, b = decode_pair_index(idx, n)
    assert list(zip(a.tolist(), b.tolist())) == expected


def test_decode_pair_index_large_n_edges():
    n = 200_000  # ~2e10 pairs: float sqrt alone would be off by one near row boundaries
    total = n_distinct_pairs(n)
    ks = np.array([0, 1, n - 2, n - 1, total - 3, total - 2, total - 1], dtype=np.int64)
    a, b = decode_pair_index(ks, n)
    start = a * (2 * n - a - 1) // 2
    assert np.all(a < b) and np.all(b < n)
    assert np.array_equal(start + (b - a - 1), ks)
    assert (a[-1], b[-1]) == (n - 2, n - 1)
    with pytest.raises(ValueError, match="pair ranks must lie in"):
        decode_pair_index(np.array([total]), n)


def test_sample_pairs_properties_and_determinism():
    pairs = sample_pairs(50, 400, seed=3)
    assert len(pairs) == 400
    assert all(i != j for i, j in pairs)
    assert len({frozenset(p) for p in pairs}) == 400
    assert all(0 <= x < 50 for p in pairs for x in p)
    assert pairs == sample_pairs(50, 400, seed=3)
    assert pairs != sample_pairs(50, 400, seed=4)
    # Canonical order is a coin flip, not the pool order: about half the pairs have i > j.
    first_larger = sum(i > j for i, j in pairs)
    assert 150 < first_larger < 250


def test_sample_pairs_all_pairs_and_too_many():
    pairs = sample_pairs(6, 15, seed=0)
    assert {frozenset(p) for p in pairs} == {frozenset(p) for p in itertools.combinations(range(6), 2)}
    with pytest.raises(ValueError, match="asked for 16 pairs but 6 images have only 15 distinct pairs"):
        sample_pairs(6, 16, seed=0)
    with pytest.raises(ValueError, match="pairs must be a non-negative int"):
        sample_pairs(6, -1, seed=0)


def test_same_content_pairs_stay_inside_groups():
    groups = [(0, 1, 2), (3, 4), (5, 6, 7, 8)]
    pairs = sample_pairs(20, 0, seed=1, groups=groups, n_same_content=10)
    assert len(pairs) == 10  # all 3 + 1 + 6 same-content pairs
    group_of = {x: g for g, members in enumerate(groups) for x in members}
    assert all(group_of[i] == group_of[j] for i, j in pairs)
    mixed = sample_pairs(20, 30, seed=1, groups=groups, n_same_content=5)
    assert len({frozenset(p) for p in mixed}) == len(mixed)
    assert 30 <= len(mixed) <= 35
    with pytest.raises(ValueError, match="groups hold only 10 distinct pairs"):
        sample_pairs(20, 0, seed=1, groups=groups, n_same_content=11)
    with pytest.raises(ValueError, match="no groups"):
        sample_pairs(20, 5, seed=1, n_same_content=2)
    with pytest.raises(ValueError, match=r"groups\[0\] holds an index outside the pool"):
        sample_pairs(3, 1, seed=1, groups=[(1, 5)], n_same_content=1)
