"""Import the user's module of registered Keras layers before a model is loaded.

A `.keras` file names each custom class by its registered name; Keras finds it only if the
module holding `@keras.saving.register_keras_serializable` ran first. Loading still uses
safe_mode=True: importing the module is the user's explicit choice, a lambda inside the file
stays refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from lowrank_edge.errors import LowrankEdgeError


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def _import_file(path: Path) -> ModuleType:
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a Python module: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does, so pickled/registered names resolve
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_name(name: str) -> ModuleType:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # "importable from the working directory", as `python -m` would see it
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        if added:
            sys.path.remove(cwd)


def import_custom_objects(spec: str) -> ModuleType:
    """Import `spec` (a module name importable from the working directory, or a .py file);
    one clear error naming it if it cannot be imported."""
    try:
        if _looks_like_path(spec):
            path = Path(spec)
            if not path.is_file():
                raise LowrankEdgeError(f"--custom-objects {spec}: file not found")
            return _import_file(path)
        return _import_name(spec)
    except LowrankEdgeError:
        raise
    except Exception as error:  # the user's module may raise anything while importing
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise LowrankEdgeError(
            f"--custom-objects {spec}: could not import it: {type(error).__name__}"
            + (f": {detail}" if detail else "")
        ) from error
