"""Load a pickled numpy array without running arbitrary code.

Pickles are untrusted input: a pickle can import and call any global. The unpickler here admits
only the globals that a pickled ``numpy.ndarray`` refers to (protocols 0-5, numpy 1.x and 2.x
module names) and rejects everything else with an :class:`InputError` before calling it.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import numpy._core.multiarray as _multiarray
import numpy._core.numeric as _numeric

from medrepro.errors import InputError


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it for bytes, limited to the latin-1 codec."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return codecs.encode(obj, "latin1", errors)


# (module, name) -> object. numpy 1.x wrote ``numpy.core.*``, numpy 2 writes ``numpy._core.*``;
# both resolve to the numpy 2 objects (no import of the deprecated ``numpy.core`` shim).
_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise InputError(
                self.source, "pickle", f"forbidden global {module}.{name}", "a pickled numpy array only"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise InputError(self.source, "pickle", "persistent id", "a pickled numpy array only")


def loads_array(data: bytes, source: str | Path = "<bytes>") -> np.ndarray:
    """Unpickle ``data`` (read from ``source``, used in messages) into a numeric ndarray."""
    try:
        obj = _ArrayUnpickler(data, str(source)).load()
    except InputError:
        raise
    except Exception as exc:  # truncated or corrupt pickles raise many kinds of errors
        raise InputError(source, "pickle", f"cannot unpickle: {type(exc).__name__}: {exc}",
                         "a pickled numpy array") from None
    if not isinstance(obj, np.ndarray):
        raise InputError(source, "pickle", f"holds a {type(obj).__name__}", "a numpy ndarray")
    if obj.dtype.kind not in "biuf":
        raise InputError(source, "pickle", f"array dtype {obj.dtype}", "a bool, integer or float array")
    return obj


def load_array(path: str | Path) -> np.ndarray:
    """Read ``path`` and unpickle it with :func:`loads_array`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, "file", f"cannot read: {exc.strerror or exc}", "a readable .pkl file") from None
    return loads_array(data, path)
