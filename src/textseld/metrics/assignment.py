"""Batched minimum-cost assignment that reproduces scipy's linear_sum_assignment.

The SELD metric solves one tiny assignment problem per (clip, frame, class)
cell, hundreds of thousands of them. Calling scipy once per cell dominates
the run time, so cells of equal size (R rows, Q columns) are solved together
by enumerating every assignment (R, Q <= 6 gives at most 720 of them) and
taking the cheapest. Where the optimum is unique this is what scipy returns.
Where several assignments tie (common with 1-D absolute-difference costs,
e.g. every prediction on one side of every reference), which one scipy picks
depends on its internals, and the pick changes the distance errors paired
with it; those cells are handed to scipy itself, one call each, so that the
result is the official one in every case.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_ENUMERATED = 5040  # assignments per cell above which scipy solves every cell
TIE_TOLERANCE = 1e-9  # relative gap below which two assignment costs count as tied


@cache
def _injections(n_from: int, n_to: int) -> np.ndarray:
    """All injective maps {0..n_from-1} -> {0..n_to-1}: (P, n_from) int64."""
    return np.asarray(list(itertools.permutations(range(n_to), n_from)), dtype=np.int64).reshape(-1, n_from)


def _n_injections(n_from: int, n_to: int) -> int:
    count = 1
    for i in range(n_from):
        count *= n_to - i
    return count


def batched_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve n assignment problems of one size at once.

    cost: (n, R, Q) float64. Returns (rows, cols), each (n, K) int64 with
    K = min(R, Q), rows ascending per cell, such that for every cell i
    `(rows[i], cols[i])` equals `scipy.optimize.linear_sum_assignment(cost[i])`.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, n_rows, n_cols = cost.shape
    k = min(n_rows, n_cols)
    rows = np.empty((n, k), dtype=np.int64)
    cols = np.empty((n, k), dtype=np.int64)
    if n == 0 or k == 0:
        return rows, cols
    transpose = n_rows > n_cols
    work = cost.transpose(0, 2, 1) if transpose else cost  # (n, k, m) with k <= m
    m = work.shape[2]
    if _n_injections(k, m) > MAX_ENUMERATED:
        tied = np.ones(n, dtype=bool)
    else:
        maps = _injections(k, m)  # (P, k)
        # total cost of every assignment: sum over the k matched rows
        totals = work[:, np.arange(k)[None, :], maps].sum(axis=2)  # (n, P)
        best = np.argmin(totals, axis=1)
        chosen = maps[best]  # (n, k)
        if totals.shape[1] > 1:
            two = np.partition(totals, 1, axis=1)[:, :2]
            tied = two[:, 1] - two[:, 0] <= TIE_TOLERANCE * np.maximum(1.0, np.abs(two[:, 0]))
        else:
            tied = np.zeros(n, dtype=bool)
        if transpose:
            # chosen[i, q] = row matched to column q; scipy lists rows ascending
            order = np.argsort(chosen, axis=1)
            rows[:] = np.take_along_axis(chosen, order, axis=1)
            cols[:] = order
        else:
            rows[:] = np.arange(k)[None, :]
            cols[:] = chosen
    for i in np.flatnonzero(tied):
        r, c = linear_sum_assignment(cost[i])
        rows[i], cols[i] = r, c
    return rows, cols
