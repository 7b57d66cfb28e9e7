"""The steps after a policy's answer: cap to [1, full rank], round up, break-even test.

Each is a small pure function so a caller can switch one off or swap it.
"""

from __future__ import annotations

import math
import numbers

from lowrank_edge.errors import CompressionError


def cap_rank(rank: object, full_rank: int, layer_name: str) -> int:
    """Check a policy's answer is an integer >= 1 and cap it at `full_rank`."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise CompressionError(
            f"rank policy returned {rank!r} for layer '{layer_name}'; expected an integer >= 1"
        )
    return min(int(rank), full_rank)


def round_rank(rank: int, multiple: int | None, full_rank: int) -> int:
    """Round `rank` up to a multiple of `multiple` (e.g. 8 for SIMD), never above full rank."""
    if not multiple or multiple <= 1:
        return min(rank, full_rank)
    return min(math.ceil(rank / multiple) * multiple, full_rank)


def worth_factorising(rank: int, matrix_shape: tuple[int, int]) -> bool:
    """Break-even rule: factor only if r*(m+n) < m*n, i.e. the pair is strictly smaller."""
    m, n = matrix_shape
    return rank * (m + n) < m * n
