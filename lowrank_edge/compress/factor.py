"""Pure numpy factorisation of a kernel into two kernels of rank r.

W (m, n) = U S V^T is truncated to rank r and split evenly: A = U_r sqrt(S_r) (m, r) and
B = sqrt(S_r) V_r^T (r, n), so neither factor carries all the scale (better conditioned for
fine-tuning and quantisation). Other factorisers (whitened, layer by layer) do not split evenly;
`balance_factors` rescales any pair so each rank component carries equal norm on both sides,
and `canonical_signs` fixes each component's sign, which an SVD or eigensolver leaves
arbitrary (so the same statistics summed in another order give the same factors);
`factor_kernels`, which every factoriser's pair passes through on its way to layer kernels,
applies both in float64 before the cast. A takes the kernel's leading axes
back: a Conv2D kernel (kh, kw, cin, cout) gives A (kh, kw, cin, r) and B (1, 1, r, cout); a
Dense kernel gives A (in, r) and B (r, out).
"""

from __future__ import annotations

import numpy as np

from lowrank_edge.compress.spectrum import kernel_matrix


def factor_matrix(matrix: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-`rank` factors (A, B) of `matrix` with A @ B ~= matrix, in float64."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64), full_matrices=False)
    if not 1 <= rank <= len(s):
        raise ValueError(f"rank must be in [1, {len(s)}], got {rank}")
    root = np.sqrt(s[:rank])
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def factor_kernels(
    a: np.ndarray, b: np.ndarray, kernel_shape: tuple[int, ...], dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Matrix factors (m, r), (r, n) balanced (`balance_factors`) and reshaped to layer kernels
    (..., r), (1, ..., 1, r, n) in `dtype`, each component's sign fixed (`canonical_signs`)."""
    a, b = balance_factors(np.asarray(a, np.float64), np.asarray(b, np.float64))
    a, b = canonical_signs(a, b)
    rank = a.shape[1]
    ones = (1,) * (len(kernel_shape) - 2)
    return (
        np.asarray(a).reshape(*kernel_shape[:-1], rank).astype(dtype),
        np.asarray(b).reshape(*ones, rank, kernel_shape[-1]).astype(dtype),
    )


def split_kernel(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a kernel (..., n) into (..., rank) and (1, ..., 1, rank, n), in its own dtype."""
    kernel = np.asarray(kernel)
    a, b = factor_matrix(kernel_matrix(kernel), rank)
    return factor_kernels(a, b, kernel.shape, kernel.dtype)


def balance_factors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) rescaled per rank component so that ||A[..., i]|| == ||B[..., i, :]||.

    A is (..., r) and B (..., r, n) (matrices or layer kernels); the product A.B is unchanged
    up to rounding. Balanced pairs suit float16, weight decay and training (a whitened pair
    can be 1e-3 against 1e1). A component with a zero side is left as it is. In A's dtype.
    """
    a, b = np.asarray(a), np.asarray(b)
    wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
    rank = a.shape[-1]
    norm_a = np.linalg.norm(wide_a.reshape(-1, rank), axis=0)
    norm_b = np.linalg.norm(np.moveaxis(wide_b, -2, 0).reshape(rank, -1), axis=1)
    usable = (norm_a > 0) & (norm_b > 0)
    scale = np.sqrt(np.where(usable, norm_b, 1.0) / np.where(usable, norm_a, 1.0))
    balanced_b = wide_b / np.expand_dims(scale, -1)
    return (wide_a * scale).astype(a.dtype), balanced_b.astype(b.dtype)


def canonical_signs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matrix factors (m, r), (r, n) with component i negated on both sides wherever the
    largest-magnitude entry of B's row i is negative (sklearn's `svd_flip` convention).

    A @ B is unchanged exactly. An SVD's signs are arbitrary: two workers whose statistics
    differ by float rounding can get a component back negated, which would make their
    factors differ by twice their size while their products agree.
    """
    a, b = np.asarray(a), np.asarray(b)
    largest = b[np.arange(b.shape[0]), np.argmax(np.abs(b), axis=1)]
    signs = np.where(largest < 0, -1.0, 1.0).astype(b.dtype)
    return a * signs.astype(a.dtype), b * signs[:, None]
