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


# Largest array a pickle may declare; the readers of each study pass their own limits.
DEFAULT_MAX_BYTES = 1 << 30


def _check_declared(shape: Any, dtype: Any, max_bytes: int, source: str) -> None:
    """Refuse, before numpy allocates it, an array whose declared size exceeds ``max_bytes``."""
    try:
        dims = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        itemsize = np.dtype(dtype).itemsize if dtype is not None else 8
    except (TypeError, ValueError, OverflowError):
        raise InputError(source, "pickle", f"array shape {shape!r} / dtype {dtype!r}", "a numeric array") from None
    if any(d < 0 for d in dims):
        raise InputError(source, "pickle", f"negative array shape {dims}", "a numeric array")
    size = itemsize
    for d in dims:
        size *= d
    if size > max_bytes:
        raise InputError(source, "pickle", f"declares an array of shape {dims} ({size:,} bytes)",
                         f"at most {max_bytes:,} bytes")


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str, max_bytes: int):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.source = source
        self.max_bytes = max_bytes

    def _guard(self, module: str, name: str, target: Any) -> Any:
        """Constructors that allocate from a declared shape check the shape first."""
        if name == "ndarray":
            def ndarray(shape, dtype=float, *args, **kwargs):
                _check_declared(shape, dtype, self.max_bytes, self.source)
                return np.ndarray(shape, dtype, *args, **kwargs)
            return ndarray
        if name == "_reconstruct":
            def reconstruct(subtype, shape, dtype):
                _check_declared(shape, dtype, self.max_bytes, self.source)
                if getattr(subtype, "__name__", None) == "ndarray":  # our guarded constructor
                    subtype = np.ndarray
                return target(subtype, shape, dtype)
            return reconstruct
        return target

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._guard(module, name, _ALLOWED[(module, name)])
        except KeyError:
            raise InputError(
                self.source, "pickle", f"forbidden global {module}.{name}", "a pickled numpy array only"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise InputError(self.source, "pickle", "persistent id", "a pickled numpy array only")


def loads_array(data: bytes, source: str | Path = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Unpickle ``data`` (read from ``source``, used in messages) into a numeric ndarray.

    Only numpy arrays are admitted (no other global is resolved), and no array larger than
    ``max_bytes`` is allocated: a declared shape is checked before numpy builds it (the array
    data itself must be in ``data``, so it is bounded by the file's size)."""
    try:
        obj = _ArrayUnpickler(data, str(source), max_bytes).load()
    except InputError:
        raise
    except Exception as exc:  # truncated or corrupt pickles raise many kinds of errors
        raise InputError(source, "pickle", f"cannot unpickle: {type(exc).__name__}: {exc}",
                         "a pickled numpy array") from None
    if not isinstance(obj, np.ndarray):
        raise InputError(source, "pickle", f"holds a {type(obj).__name__}", "a numpy ndarray")
    if obj.dtype.kind not in "biuf":
        raise InputError(source, "pickle", f"array dtype {obj.dtype}", "a bool, integer or float array")
    if obj.nbytes > max_bytes:
        raise InputError(source, "pickle", f"array of {obj.nbytes:,} bytes", f"at most {max_bytes:,} bytes")
    return obj


def load_array(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read ``path`` and unpickle it with :func:`loads_array`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, "file", f"cannot read: {exc.strerror or exc}", "a readable .pkl file") from None
    return loads_array(data, path, max_bytes)
