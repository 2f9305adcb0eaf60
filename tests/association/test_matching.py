"""Greedy and Hungarian matching: one-to-one, threshold, order independence, optimality (hypothesis)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from association import MatchingInputError, greedy_match, hungarian_match

MATCHERS = [greedy_match, hungarian_match]
shapes = st.tuples(st.integers(0, 6), st.integers(0, 6))


@st.composite
def matrices(draw, distinct=False, elements=None):
    n, m = draw(shapes)
    elements = st.floats(0.0, 1.0, width=64) if elements is None else elements
    sim = draw(hnp.arrays(np.float64, (n, m), elements=elements, unique=distinct))
    return sim


def _reference_greedy(sim, thr):
    """Plain-python greedy with the documented tie rule (highest value, then lowest row, then lowest col)."""
    cands = sorted((-sim[r, c], r, c) for r in range(sim.shape[0]) for c in range(sim.shape[1])
                    if sim[r, c] >= thr)
    used_r, used_c, pairs = set(), set(), []
    for _, r, c in cands:
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return sorted(pairs)


@pytest.mark.parametrize("match", MATCHERS)
@settings(max_examples=80, deadline=None)
@given(sim=matrices(), thr=st.floats(0.0, 1.0))
def test_one_to_one_and_never_below_threshold(match, sim, thr):
    rows, cols = match(sim, thr)
    assert rows.dtype == cols.dtype == np.int64 and rows.shape == cols.shape
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0)  # sorted by row
    assert np.all(sim[rows, cols] >= thr)


@settings(max_examples=100, deadline=None)
@given(sim=matrices(elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])), thr=st.sampled_from([0.0, 0.3, 0.5]))
def test_greedy_follows_documented_tie_rule(sim, thr):
    rows, cols = greedy_match(sim, thr)
    assert list(zip(rows.tolist(), cols.tolist())) == _reference_greedy(sim, thr)


@settings(max_examples=80, deadline=None)
@given(sim=matrices(distinct=True), thr=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_independent_of_row_and_column_order(sim, thr, seed):
    rng = np.random.default_rng(seed)
    pr, pc = rng.permutation(sim.shape[0]), rng.permutation(sim.shape[1])
    permuted = sim[pr][:, pc]
    # greedy: with distinct values the same pairs come back
    r0, c0 = greedy_match(sim, thr)
    r1, c1 = greedy_match(permuted, thr)
    assert set(zip(r0.tolist(), c0.tolist())) == set(zip(pr[r1].tolist(), pc[c1].tolist()))
    # hungarian: the optimum value is order independent (distinct entries can still tie in sums)
    h0, g0 = hungarian_match(sim, thr)
    h1, g1 = hungarian_match(permuted, thr)
    assert sim[h0, g0].sum() == pytest.approx(permuted[h1, g1].sum(), abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 7), extra=st.integers(0, 3), seed=st.integers(0, 2**32 - 1), thr=st.floats(0.35, 0.6))
def test_greedy_equals_hungarian_on_permutation_like_matrices(n, extra, seed, thr):
    """One clear partner per row (>= 0.6), everything else < 0.3: both matchers find that permutation."""
    rng = np.random.default_rng(seed)
    m = n + extra
    sim = rng.uniform(0.0, 0.3, (n, m))
    partner = rng.permutation(m)[:n]
    sim[np.arange(n), partner] = rng.uniform(0.6, 1.0, n)
    drop = rng.uniform(size=n) < 0.2  # some rows have no admissible partner at all
    sim[np.arange(n)[drop], partner[drop]] = rng.uniform(0.0, 0.3, drop.sum())
    g = greedy_match(sim, thr)
    h = hungarian_match(sim, thr)
    np.testing.assert_array_equal(g[0], h[0])
    np.testing.assert_array_equal(g[1], h[1])
    np.testing.assert_array_equal(g[0], np.arange(n)[~drop])
    np.testing.assert_array_equal(g[1], partner[~drop])


@settings(max_examples=60, deadline=None)
@given(sim=matrices(), thr=st.floats(0.0, 1.0))
def test_hungarian_is_optimal_and_at_least_greedy(sim, thr):
    assume(sim.shape[0] <= 5 and sim.shape[1] <= 5)
    rows, cols = hungarian_match(sim, thr)
    best = 0.0
    n, m = sim.shape
    # brute force over all partial one-to-one assignments of rows to columns (or none)
    for choice in itertools.product(range(-1, m), repeat=n):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)):
            continue
        total = sum(sim[r, c] for r, c in enumerate(choice) if c >= 0 and sim[r, c] >= thr)
        best = max(best, total)
    assert sim[rows, cols].sum() == pytest.approx(best, abs=1e-9)
    gr, gc = greedy_match(sim, thr)
    assert sim[gr, gc].sum() <= best + 1e-9


@pytest.mark.parametrize("match", MATCHERS)
def test_nan_and_empty(match):
    sim = np.array([[np.nan, 0.9], [0.8, np.nan]])
    rows, cols = match(sim, 0.5)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = match(np.full((2, 2), np.nan), 0.0)
    assert rows.size == cols.size == 0
    for shape in [(0, 0), (0, 3), (3, 0)]:
        rows, cols = match(np.zeros(shape), 0.0)
        assert rows.shape == cols.shape == (0,) and rows.dtype == np.int64
    with pytest.raises(MatchingInputError, match="similarity"):
        match(np.zeros(3), 0.5)
    with pytest.raises(MatchingInputError, match="threshold"):
        match(np.zeros((2, 2)), float("nan"))


def test_greedy_differs_from_hungarian_where_expected():
    """The classic case: greedy takes the single best pair, Hungarian the best total."""
    sim = np.array([[0.9, 0.8], [0.7, 0.1]])
    assert list(zip(*[x.tolist() for x in greedy_match(sim, 0.05)])) == [(0, 0), (1, 1)]
    assert list(zip(*[x.tolist() for x in hungarian_match(sim, 0.05)])) == [(0, 1), (1, 0)]
    # threshold excludes (1, 1): greedy then leaves row 1 unmatched
    assert list(zip(*[x.tolist() for x in greedy_match(sim, 0.5)])) == [(0, 0)]
