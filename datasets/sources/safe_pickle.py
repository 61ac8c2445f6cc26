"""A restricted unpickler for data files that are pickles (Planetoid's ``ind.*``): it admits only the numpy and
scipy types such files hold, so a malicious pickle cannot run code (``os.system``, ``eval``, ``subprocess``...).

Pickles from Python 2 name ``__builtin__`` and old module paths (``numpy.core.multiarray``, ``scipy.sparse.csr``);
these are mapped to today's objects.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np
import scipy.sparse as sp

from sciml.datasets.sources._common import fail

__all__ = ["safe_load", "safe_loads", "UnsafePickleError", "ALLOWED", "SparseStub", "is_sparse", "sparse_to_dense"]


def _reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct as fn  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _scalar() -> Any:
    try:
        from numpy._core.multiarray import scalar as fn
    except ImportError:  # pragma: no cover
        from numpy.core.multiarray import scalar as fn
    return fn


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED`."""


#: (module, name) -> factory of the admitted object. Everything else is refused.
ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    ALLOWED[(_mod, "scalar")] = _scalar
ALLOWED[("numpy", "ndarray")] = lambda: np.ndarray
ALLOWED[("numpy", "dtype")] = lambda: np.dtype
class SparseStub:
    """An inert stand-in for a pickled scipy sparse matrix.

    Unpickling a real scipy matrix lets the pickle set arbitrary attributes (``BUILD`` with a ``(state, slotstate)``
    pair calls ``setattr``, and scipy's ``shape`` setter reshapes through its C routines on unchecked arrays: heap
    corruption). A stub only records a plain ``dict`` state; the arrays are checked and densified by
    :func:`sparse_to_dense`, never handed to scipy.
    """
    __slots__ = ("state",)
    kind = ""

    def __setstate__(self, state: Any) -> None:
        if type(state) is not dict or not all(type(k) is str for k in state):
            raise UnsafePickleError(f"refused {self.kind} state of type {type(state).__name__} "
                                    "(only a plain dict of attributes is allowed)")
        if hasattr(self, "state"):
            raise UnsafePickleError(f"refused a second state for one {self.kind}")
        self.state = dict(state)

    def __reduce__(self) -> Any:  # never re-pickle a stub as if it were a matrix
        raise TypeError("SparseStub cannot be pickled")


class _CsrStub(SparseStub):
    __slots__ = ()
    kind = "csr_matrix"


class _CscStub(SparseStub):
    __slots__ = ()
    kind = "csc_matrix"


class _CooStub(SparseStub):
    __slots__ = ()
    kind = "coo_matrix"


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to what Python 3 pickles use it for: ``str`` -> ``bytes`` in latin-1."""
    if type(obj) is not str or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1") \
            or errors != "strict":
        raise UnsafePickleError(f"refused _codecs.encode({type(obj).__name__}, {encoding!r}, {errors!r}) "
                                "(only the latin1 conversion of a str is allowed)")
    return obj.encode("latin1")


for _mod in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
    ALLOWED[(_mod, "csr_matrix")] = lambda: _CsrStub
for _mod in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
    ALLOWED[(_mod, "csc_matrix")] = lambda: _CscStub
for _mod in ("scipy.sparse.coo", "scipy.sparse._coo", "scipy.sparse"):
    ALLOWED[(_mod, "coo_matrix")] = lambda: _CooStub
# Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1"); only that conversion is admitted
ALLOWED[("_codecs", "encode")] = lambda: _latin1_encode
ALLOWED[("collections", "defaultdict")] = lambda: __import__("collections").defaultdict
ALLOWED[("collections", "OrderedDict")] = lambda: __import__("collections").OrderedDict
for _mod in ("__builtin__", "builtins"):
    for _name, _obj in (("list", list), ("dict", dict), ("set", set), ("tuple", tuple), ("int", int),
                        ("float", float), ("long", int), ("frozenset", frozenset)):
        ALLOWED[(_mod, _name)] = (lambda o=_obj: o)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        factory = ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(f"refused to load global {module}.{name} (only numpy arrays, scipy sparse "
                                    "matrices and plain containers are allowed)")
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id (not a plain data pickle)")


def _check_objects(obj: Any, depth: int = 0) -> None:
    """Refuse object arrays (they can hide arbitrary payloads) and absurd nesting."""
    if depth > 50:
        raise UnsafePickleError("nesting too deep")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise UnsafePickleError("refused an array of Python objects (dtype=object)")
    if isinstance(obj, SparseStub):
        if not hasattr(obj, "state"):
            raise UnsafePickleError(f"{obj.kind} without a state")
        _check_objects(obj.state, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_objects(k, depth + 1)
            _check_objects(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_objects(v, depth + 1)


def safe_loads(data: bytes, *, source: str | os.PathLike = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with the restricted unpickler.

    Raises:
        DataFormatError: the pickle is corrupt, truncated, or names a type that is not allowed (message names
            ``source``).
    """
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
        _check_objects(obj)
    except UnsafePickleError as err:
        raise fail(source, f"unsafe pickle: {err}") from None
    except Exception as err:  # any corruption: EOF, bad opcode, bad reduce arguments...
        raise fail(source, f"corrupt or truncated pickle ({type(err).__name__}: {err})") from None
    return obj


def safe_load(path: str | os.PathLike, *, encoding: str = "latin1") -> Any:
    """Read the pickle file at ``path`` with :func:`safe_loads`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise fail(path, f"cannot read: {err.strerror or err}") from None
    return safe_loads(data, source=path, encoding=encoding)


def is_sparse(obj: Any) -> bool:
    """Whether ``obj`` is an unpickled sparse matrix (a :class:`SparseStub`) or a real scipy sparse matrix."""
    return isinstance(obj, SparseStub) or sp.issparse(obj)


def sparse_to_dense(obj: Any, source: str | os.PathLike, *, max_elements: int = 2**28) -> np.ndarray:
    """A dense copy of an unpickled sparse matrix (a :class:`SparseStub`, or a scipy matrix), after checking its
    arrays.

    Unpickling fills a matrix's attributes directly, without scipy's checks; scipy's own ``todense`` trusts them and
    can crash the interpreter on out-of-range indices. So the structure is checked here and densified with numpy;
    scipy never sees the unchecked arrays.
    """
    if isinstance(obj, SparseStub):
        state, kind = getattr(obj, "state", {}), obj.kind
    else:
        state = getattr(obj, "__dict__", {})
        kind = ("csr_matrix" if isinstance(obj, sp.csr_matrix) else "csc_matrix" if isinstance(obj, sp.csc_matrix)
                else "coo_matrix" if isinstance(obj, sp.coo_matrix) else type(obj).__name__)
    shape = state.get("_shape", state.get("shape"))
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise fail(source, f"sparse matrix with an invalid shape {shape!r}") from None
    if rows < 0 or cols < 0 or rows * cols > max_elements:
        raise fail(source, f"sparse matrix shape {rows}x{cols} is negative or too large")

    def arr(name: str, integer: bool) -> np.ndarray:
        a = state.get(name)
        if not isinstance(a, np.ndarray) or a.ndim != 1 or not (
                np.issubdtype(a.dtype, np.integer) if integer else
                (np.issubdtype(a.dtype, np.number) or a.dtype == bool)):
            raise fail(source, f"sparse matrix attribute {name!r} is missing or not a 1-D "
                               f"{'integer' if integer else 'numeric'} array")
        return a

    data = arr("data", False)
    if kind in ("csr_matrix", "csc_matrix"):
        major, minor = (rows, cols) if kind == "csr_matrix" else (cols, rows)
        indices, indptr = arr("indices", True), arr("indptr", True)
        if len(indptr) != major + 1 or (len(indptr) and (indptr[0] != 0 or indptr[-1] != len(indices)
                                                         or (np.diff(indptr) < 0).any())):
            raise fail(source, "sparse matrix has an invalid row pointer (indptr)")
        if len(data) != len(indices):
            raise fail(source, f"sparse matrix has {len(data)} values but {len(indices)} indices")
        if len(indices) and (indices.min() < 0 or indices.max() >= minor):
            raise fail(source, "sparse matrix has an index outside its shape")
        r = np.repeat(np.arange(major), np.diff(indptr))
        c = indices.astype(np.int64)
        if kind == "csc_matrix":
            r, c = c, r
    elif kind == "coo_matrix":
        coords = state.get("coords")
        r, c = (coords if coords is not None else (state.get("row"), state.get("col")))
        if not all(isinstance(a, np.ndarray) and a.ndim == 1 and np.issubdtype(a.dtype, np.integer) for a in (r, c)) \
                or len(r) != len(data) or len(c) != len(data):
            raise fail(source, "sparse COO matrix with invalid row/col arrays")
        if len(r) and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
            raise fail(source, "sparse matrix has an index outside its shape")
    else:
        raise fail(source, f"unsupported sparse matrix type {kind}")
    out = np.zeros((rows, cols), dtype=np.result_type(data.dtype, np.float32) if data.dtype != bool else np.float32)
    np.add.at(out, (r, c), data)
    return out
