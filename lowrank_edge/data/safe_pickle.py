"""Unpickle numpy arrays without running arbitrary code.

A restricted `pickle.Unpickler` that resolves only the few globals numpy arrays
need (`_reconstruct`, `ndarray`, `dtype`, `scalar`); anything else is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from lowrank_edge.errors import DataFormatError


def _multiarray() -> Any:
    """numpy's multiarray module (`numpy._core` in numpy 2, `numpy.core` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


_MULTIARRAY_NAMES = {"_reconstruct", "scalar"}
_MULTIARRAY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray"}
_NUMPY_NAMES = {"ndarray": np.ndarray, "dtype": np.dtype}


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle asked for a global outside the numpy allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits only what plain numpy arrays need."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY_MODULES and name in _MULTIARRAY_NAMES:
            return getattr(_multiarray(), name)
        if module == "numpy" and name in _NUMPY_NAMES:
            return _NUMPY_NAMES[name]
        raise RefusedGlobalError(f"{module}.{name}")


def load_numpy_pickle(data: bytes, source: str, encoding: str = "latin1") -> Any:
    """Unpickle `data` (e.g. a Python-2 pickle of arrays) allowing numpy arrays only.

    `source` names the file in error messages.
    """
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
    except RefusedGlobalError as error:
        raise DataFormatError(
            f"{source}: refusing to unpickle {error}: only numpy arrays are allowed"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataFormatError(
            f"{source}: not a readable pickle of numpy arrays ({error})"
        ) from None
