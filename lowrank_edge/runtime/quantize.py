"""Integer I/O of quantized artifacts: real = (q - zero_point) * scale, and back.

Full-integer TFLite models take and return int8/uint8 tensors; callers always work in float32, so
the runners quantize inputs and dequantize outputs with the tensor's own scale and zero point.
"""

from __future__ import annotations

import numpy as np

from lowrank_edge.runtime.manifest import TensorIO


def quantize(x: np.ndarray, io: TensorIO) -> np.ndarray:
    """Float values to the tensor's dtype (rounded, clipped); float tensors are cast only."""
    if not io.quantized:
        return np.asarray(x, dtype=io.dtype)
    dtype = np.dtype(io.dtype)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(io.scale)) + (io.zero_point or 0)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, io: TensorIO) -> np.ndarray:
    """The tensor's values as float32 (integers mapped back through scale and zero point)."""
    if not io.quantized:
        return np.asarray(q, dtype=np.float32)
    shifted = q.astype(np.float32) - np.float32(io.zero_point or 0)
    return shifted * np.float32(io.scale)
