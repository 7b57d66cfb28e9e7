"""Data-aware (whitened) low-rank factors: minimise a layer's output error, not its kernel error.

With calibration inputs X (one row per sample or im2col patch) and a kernel W (m, n), the
output error of factors A (m, r), B (r, n) is ||X (W - A B)||_F. Take S with
S^T S = X^T X + eps*I (the transposed Cholesky factor); then ||X M||_F^2 ~= ||S M||_F^2, so
the best rank-r M is S^-1 * truncate_r(S W), split as A = S^-1 U_r sqrt(s_r),
B = sqrt(s_r) V_r^T. The singular values s of S W are the layer's output spectrum:
sum_{i>r} s_i^2 is the output error left at rank r, the error curve an allocator needs.

Layer by layer (`least_squares_kernel`): with inputs X^ produced by the already-compressed
layers before this one and the original inputs X, the kernel that best reproduces the original
output X W from X^ is W* = (X^T X^ + eps I)^-1 (X^T X + eps I) W; it is then truncated the
same way with S from X^T X^. Pure numpy, float64.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DAMPING = 1e-4


def damping_eps(gram: np.ndarray, damping: float = DEFAULT_DAMPING) -> float:
    """eps = damping * mean(diag(gram)), with a tiny floor for an all-zero gram."""
    scale = float(np.mean(np.diag(gram))) if np.size(gram) else 0.0
    return damping * scale if scale > 0 else 1e-12


def damped(gram: np.ndarray, damping: float = DEFAULT_DAMPING) -> np.ndarray:
    """gram + eps*I (see `damping_eps`): positive definite, so S and S^-1 exist."""
    gram = np.asarray(gram, dtype=np.float64)
    return gram + damping_eps(gram, damping) * np.eye(len(gram))


def whitening_factor(gram: np.ndarray, damping: float = DEFAULT_DAMPING) -> np.ndarray:
    """S with S^T S = gram + eps*I: the transposed Cholesky factor, else an eigen factor."""
    g = damped(gram, damping)
    try:
        return np.linalg.cholesky(g).T
    except np.linalg.LinAlgError:  # not numerically positive definite: fall back to eigh
        values, vectors = np.linalg.eigh((g + g.T) / 2)
        floor = max(float(values.max()), 1e-300) * 1e-12
        return np.sqrt(np.maximum(values, floor))[:, None] * vectors.T


def output_spectrum(gram: np.ndarray, kernel: np.ndarray, damping: float = DEFAULT_DAMPING):
    """Singular values (descending) of S W: the layer's output spectrum on the calibration data."""
    s = whitening_factor(gram, damping)
    return np.linalg.svd(s @ np.asarray(kernel, dtype=np.float64), compute_uv=False)


def whitened_factors(
    gram: np.ndarray, kernel: np.ndarray, rank: int, damping: float = DEFAULT_DAMPING
) -> tuple[np.ndarray, np.ndarray]:
    """Rank-`rank` factors (A, B) minimising ||S (W - A B)||_F, i.e. the output error."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if not 1 <= rank <= min(kernel.shape):
        raise ValueError(f"rank must be in [1, {min(kernel.shape)}], got {rank}")
    if kernel.shape[1] <= kernel.shape[0]:
        return _projected_factors(damped(gram, damping), kernel, rank)
    s = whitening_factor(gram, damping)
    u, values, vt = np.linalg.svd(s @ kernel, full_matrices=False)
    root = np.sqrt(values[:rank])
    a = np.linalg.solve(s, u[:, :rank] * root)
    return a, root[:, None] * vt[:rank]


def _projected_factors(gram: np.ndarray, kernel: np.ndarray, rank: int):
    """The same factors for n <= m without S: with S W = U s V^T, S^-1 U_r = W V_r / s_r, so
    A = W V_r / sqrt(s_r), B = sqrt(s_r) V_r^T, where V_r, s_r^2 are the top eigenpairs of
    W^T (X^T X + eps I) W (n, n): no (m, m) factorisation or solve, no (m, n) SVD."""
    product = kernel.T @ gram @ kernel
    values, vectors = np.linalg.eigh((product + product.T) / 2)
    top = np.argsort(values)[::-1][:rank]
    singular = np.sqrt(np.maximum(values[top], 0.0))
    root = np.sqrt(np.maximum(singular, max(float(singular.max()), 1e-300) * 1e-12))
    v = vectors[:, top]
    return (kernel @ v) / root, root[:, None] * v.T


def least_squares_kernel(
    gram_hat: np.ndarray,
    cross: np.ndarray,
    kernel: np.ndarray,
    damping: float = DEFAULT_DAMPING,
) -> np.ndarray:
    """The kernel M that maps the new inputs X^ onto the original outputs X W: it minimises
    ||X^ M - X W||^2 + eps ||M - W||^2, so M = (X^T X^ + eps I)^-1 (X^T X + eps I) W.

    `cross` is X^T X (rows from X^). The damping pulls M towards the original kernel (not
    towards 0), so M = W exactly when the inputs are unchanged.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    return least_squares_target(
        gram_hat, np.asarray(cross, dtype=np.float64) @ kernel, kernel, damping
    )


def least_squares_target(
    gram_hat: np.ndarray,
    cross_kernel: np.ndarray,
    kernel: np.ndarray,
    damping: float = DEFAULT_DAMPING,
) -> np.ndarray:
    """`least_squares_kernel` from X^T X W (`cross_kernel`, (m, n)) instead of X^T X: the
    product a calibration pass can accumulate without the (m, m) cross moment."""
    gram_hat = np.asarray(gram_hat, dtype=np.float64)
    eps = damping_eps(gram_hat, damping)
    target = np.asarray(cross_kernel, dtype=np.float64) + eps * np.asarray(kernel, np.float64)
    return np.linalg.solve(gram_hat + eps * np.eye(len(gram_hat)), target)
