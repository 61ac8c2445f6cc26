r"""Interoperability with `DGL <https://www.dgl.ai>`_: DGL graphs to PyG ``Data``/``Batch`` and sciml-h5 graph
collections, and back, without losing anything a homogeneous ``DGLGraph`` holds.

DGL is an optional extra (``pip install 'sciml[dgl]'``); nothing else in sciml imports it, and this module imports
it only inside its functions, through :func:`import_dgl`. See docs/dgl.md.

**What is kept.** The edge list in DGL's edge-id order (so self-loops, multi-edges and the order of edge features
survive), the number of nodes (isolated nodes included), every node and edge feature tensor with its dtype and
shape, the graph boundaries of a batched graph (``batch_num_nodes`` / ``batch_num_edges`` ↔ PyG's ``Batch`` with
its ``batch`` vector and ``ptr``), and graph-level tensors (the ``labels`` dict of ``dgl.save_graphs``, one row per
graph).

**Names.** DGL's and PyG's conventions differ, so a few names are translated:

=========================================  ==============================================================
DGL                                        PyG ``Data`` attribute
=========================================  ==============================================================
``g.ndata["feat"]``, ``g.ndata["label"]``  ``x``, ``y`` (node-level)
``g.ndata["_ID"]``, ``g.ndata["_TYPE"]``   ``n_id``, ``node_type`` (DGL's ``NID``/``NTYPE``)
``g.ndata[k]``                             ``k``
``g.edata["feat"]``                        ``edge_attr``
``g.edata[k]``                             ``edge_<k>`` (``weight`` -> ``edge_weight``, ``_ID`` -> ``edge__ID``)
graph-level ``graph_data[k]``              ``k`` (one row per graph)
=========================================  ==============================================================

``node_aliases=`` / ``edge_aliases=`` replace the two alias tables (``{}`` keeps DGL's node names; edge features
always get the ``edge_`` prefix unless aliased, which is how :func:`to_dgl` and the writer recognise them). Every
conversion checks that each name comes back unchanged: a node feature that the inverse would rename (``ndata["x"]``
would come back as ``feat``), a node feature named ``edge_...`` or ``_...``, or two features with one PyG name is a
``ValueError`` naming the feature and the fix.

**Levels on the way back.** :func:`to_dgl` decides per attribute: ``levels={key: "node"|"edge"|"graph"}`` when
given; else ``edge_*`` and the ``edge_aliases`` values are edge-level; a tensor with ``num_nodes`` rows is
node-level; anything else is graph-level. :func:`h5_to_dgl` takes the levels from the file, so it never guesses.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["import_dgl", "dgl_available", "DGLCompatibilityWarning", "from_dgl", "to_dgl", "dgl_to_h5",
           "h5_to_dgl", "dgl_records", "writer_levels", "NODE_ALIASES", "EDGE_ALIASES"]

#: DGL node feature name -> PyG attribute (any other node feature keeps its name). ``_ID``/``_TYPE`` are DGL's
#: ``dgl.NID``/``dgl.NTYPE`` (subgraphs, samplers, ``to_homogeneous``); PyG does not store names starting with ``_``.
NODE_ALIASES: Mapping[str, str] = types.MappingProxyType({"feat": "x", "label": "y", "_ID": "n_id",
                                                          "_TYPE": "node_type"})
#: DGL edge feature name -> PyG attribute (any other edge feature ``k`` becomes ``edge_<k>``).
EDGE_ALIASES: Mapping[str, str] = types.MappingProxyType({"feat": "edge_attr"})

#: PyG attributes that describe the structure (never copied as features).
_STRUCTURE_KEYS = frozenset({"edge_index", "batch", "ptr", "num_nodes"})
_INSTALL_HINT = "pip install 'sciml[dgl]' (DGL 2.1.0 with packaging and pandas; see docs/dgl.md)"


# ------------------------------------------------------------------------------------------------ import helper
class DGLCompatibilityWarning(UserWarning):
    """Issued once per process when DGL is imported with ``dgl.graphbolt`` replaced by a stub."""


_STATE: dict[str, Any] = {"module": None, "stubbed": False, "warned": False}


def _graphbolt_library_name(torch_version: str) -> str:
    """The file name DGL's ``dgl.graphbolt`` loads for ``torch_version`` (as DGL spells it per platform)."""
    if sys.platform.startswith("darwin"):
        return f"libgraphbolt_pytorch_{torch_version}.dylib"
    if sys.platform.startswith("win"):
        return f"graphbolt_pytorch_{torch_version}.dll"
    return f"libgraphbolt_pytorch_{torch_version}.so"


def _torch_release() -> str:
    return torch.__version__.split("+", maxsplit=1)[0]


def _dgl_package_dir() -> Path | None:
    """The installed ``dgl`` package folder, found without importing it (``None`` when DGL is not installed)."""
    try:
        spec = importlib.util.find_spec("dgl")
    except (ImportError, ValueError):  # ValueError: sys.modules["dgl"] is None or has no __spec__
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def _dgl_version() -> str:
    try:
        from importlib.metadata import version

        return version("dgl")
    except Exception:  # noqa: BLE001 - metadata missing in an odd install: only used in messages
        return "?"


def _make_graphbolt_stub() -> types.ModuleType:
    """A stand-in for ``dgl.graphbolt``: importable, every attribute missing with a message that says why, and a
    placeholder ``FusedCSCSamplingGraph`` class for the ``isinstance`` checks in DGL's data loading code."""
    stub = types.ModuleType("dgl.graphbolt", "Stub installed by sciml.gnn.interop.import_dgl: DGL has no graphbolt "
                                             f"build for torch {_torch_release()}.")

    class FusedCSCSamplingGraph:  # never instantiated: isinstance(x, it) is False for every x
        """Placeholder: graphbolt is unavailable for this torch."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"dgl.graphbolt.{name} is unavailable: the installed DGL has no graphbolt build for "
                             f"torch {_torch_release()} (sciml imported DGL without it; see docs/dgl.md)")

    stub.FusedCSCSamplingGraph = FusedCSCSamplingGraph  # type: ignore[attr-defined]
    stub.__getattr__ = __getattr__  # type: ignore[method-assign]
    stub.__sciml_stub__ = True  # type: ignore[attr-defined]
    return stub


def _forget_dgl_modules(before: set[str]) -> None:
    """Drop the ``dgl`` modules a failed import left half-initialised (those not there before it)."""
    for name in [n for n in sys.modules if (n == "dgl" or n.startswith("dgl.")) and n not in before]:
        del sys.modules[name]


def _missing_dependency_message(err: BaseException) -> str | None:
    text = str(err)
    if "setuptools.extern" in text or "packaging" in text:
        return "DGL needs the package `packaging`"
    if "pandas" in text:
        return "DGL needs the package `pandas`"
    return None


def _raised_in_graphbolt(err: BaseException, package: Path) -> bool:
    """Whether ``err`` came from importing ``dgl.graphbolt`` (its message or a frame of its source)."""
    if "graphbolt" in str(err).lower():
        return True
    folder = str(package / "graphbolt")
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(folder):
            return True
        tb = tb.tb_next
    return False


def _import_real_dgl() -> types.ModuleType:
    before = set(sys.modules)
    try:
        return importlib.import_module("dgl")
    except BaseException:
        _forget_dgl_modules(before)
        raise


def dgl_available() -> bool:
    """Whether DGL is installed and not hidden (``sys.modules["dgl"] = None``); does not import it."""
    if "dgl" in sys.modules:
        return sys.modules["dgl"] is not None
    return _dgl_package_dir() is not None


def import_dgl() -> types.ModuleType:
    """Import DGL and return the module, working around a missing graphbolt build when needed.

    PyPI's Linux DGL stops at 2.1.0, whose wheel carries ``dgl/graphbolt/libgraphbolt_pytorch_<v>.so`` only for
    torch 2.0–2.2; with a newer torch, ``import dgl`` fails while loading ``dgl.graphbolt`` (DGL's new sampling
    library, which links against libtorch's C++ ABI). DGL's core (graphs, message passing, ``dgl.nn``, sampling,
    ``dgl.dataloading``, ``save_graphs``/``load_graphs``) talks to torch through DLPack and works. So:

    * if the graphbolt library for the installed torch exists, DGL is imported as is;
    * if it does not (or importing DGL fails inside ``dgl.graphbolt``), ``sys.modules["dgl.graphbolt"]`` is set to
      a stub before ``import dgl`` and a :class:`DGLCompatibilityWarning` is issued, once per process.
      ``dgl.graphbolt`` and ``dgl.sparse`` are then unavailable.

    Idempotent: later calls return the same module without warning again. A DGL the caller imported already is
    returned as is. ``DGLBACKEND`` defaults to ``pytorch`` (so DGL does not write ``~/.dgl/config.json``).

    Raises:
        ImportError: DGL is not installed (or hidden with ``sys.modules["dgl"] = None``), or it cannot be imported
            even with the stub; the message says what to install.
    """
    if "dgl" in sys.modules:
        module = sys.modules["dgl"]
        if module is None:
            raise ImportError(f"DGL is not available (sys.modules['dgl'] is None): {_INSTALL_HINT}")
        _STATE["module"] = module
        return module
    package = _dgl_package_dir()
    if package is None:
        raise ImportError(f"DGL is not installed: {_INSTALL_HINT}")
    os.environ.setdefault("DGLBACKEND", "pytorch")
    library = _graphbolt_library_name(_torch_release())
    has_build = (package / "graphbolt" / library).exists()
    reason = f"no {library} in {package / 'graphbolt'}"
    if has_build:
        try:
            module = _import_real_dgl()
        except (ImportError, OSError) as err:
            if not _raised_in_graphbolt(err, package):
                hint = _missing_dependency_message(err)
                raise ImportError(f"importing DGL {_dgl_version()} failed: {type(err).__name__}: {err}"
                                  + (f" ({hint}: {_INSTALL_HINT})" if hint else "")) from err
            # e.g. the library exists but does not load, or graphbolt needs `torchdata.datapipes` (torchdata < 0.10)
            reason = f"importing dgl.graphbolt failed ({type(err).__name__}: {err})"
        else:
            _STATE["module"] = module
            return module
    stub = _make_graphbolt_stub()
    sys.modules["dgl.graphbolt"] = stub
    try:
        module = _import_real_dgl()
    except BaseException as err:
        sys.modules.pop("dgl.graphbolt", None)
        hint = _missing_dependency_message(err)
        raise ImportError(f"importing DGL {_dgl_version()} (with dgl.graphbolt stubbed: {reason}) failed: "
                          f"{type(err).__name__}: {err}" + (f" ({hint}: {_INSTALL_HINT})" if hint else "")) from err
    module.graphbolt = stub  # type: ignore[attr-defined]
    _STATE.update(module=module, stubbed=True)
    if not _STATE["warned"]:
        _STATE["warned"] = True
        warnings.warn(f"DGL {_dgl_version()} has no usable graphbolt for torch {_torch_release()} ({reason}); "
                      "sciml imported DGL with `dgl.graphbolt` replaced by a stub. DGL's core (graphs, message "
                      "passing, dgl.nn, sampling, save/load_graphs) works; dgl.graphbolt and dgl.sparse do not. "
                      "See docs/dgl.md.", DGLCompatibilityWarning, stacklevel=2)
    return module


# ------------------------------------------------------------------------------------------------- name mapping
class _NameMap:
    """The DGL <-> PyG name mapping of one conversion (module doc), with its inverse."""

    def __init__(self, node_aliases: Mapping[str, str] | None, edge_aliases: Mapping[str, str] | None) -> None:
        self.node = dict(NODE_ALIASES if node_aliases is None else node_aliases)
        self.edge = dict(EDGE_ALIASES if edge_aliases is None else edge_aliases)
        for which, aliases in (("node_aliases", self.node), ("edge_aliases", self.edge)):
            targets = list(aliases.values())
            if len(set(targets)) != len(targets):
                raise ValueError(f"{which} maps two names to the same attribute: {aliases}")
        self.node_back = {v: k for k, v in self.node.items()}
        self.edge_back = {v: k for k, v in self.edge.items()}

    def is_edge_attr(self, name: str) -> bool:
        """Whether PyG attribute ``name`` is edge-level by name."""
        return name in self.edge_back or name.startswith("edge_")

    def to_pyg_node(self, key: str) -> str:
        return self.node.get(key, key)

    def to_pyg_edge(self, key: str) -> str:
        return self.edge.get(key, f"edge_{key}")

    def to_dgl_node(self, name: str) -> str:
        return self.node_back.get(name, name)

    def to_dgl_edge(self, name: str) -> str:
        if name in self.edge_back:
            return self.edge_back[name]
        return name[len("edge_"):] if name.startswith("edge_") else name

    def check(self, g: Any, graph_keys: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """DGL feature name -> PyG attribute for ``g.ndata`` and ``g.edata``; raises where a name could not come
        back unchanged (a collision, a name the inverse maps elsewhere, a PyG-reserved name)."""
        node = {k: self.to_pyg_node(k) for k in g.ndata.keys()}
        edge = {k: self.to_pyg_edge(k) for k in g.edata.keys()}
        seen: dict[str, str] = {}
        for where, mapping in (("ndata", node), ("edata", edge)):
            back = self.to_dgl_node if where == "ndata" else self.to_dgl_edge
            which = "node_aliases" if where == "ndata" else "edge_aliases"
            for k, name in mapping.items():
                feature = f"g.{where}[{k!r}]"
                if not isinstance(k, str) or not k:
                    raise ValueError(f"g.{where} has a feature with a non-string or empty name {k!r}")
                if name in _STRUCTURE_KEYS:
                    raise ValueError(f"{feature} would become the PyG attribute {name!r}, which describes the graph "
                                     f"structure; rename the feature or pass {which}={{...}}")
                if name.startswith("_"):
                    raise ValueError(f"{feature} would become {name!r}: PyG does not store attributes starting "
                                     f"with '_'; pass {which}={{{k!r}: ...}}")
                if where == "ndata" and self.is_edge_attr(name):
                    raise ValueError(f"{feature} would become {name!r}, a name reserved for edge features; rename "
                                     "it or pass node_aliases={...}")
                if where == "edata" and not self.is_edge_attr(name):
                    raise ValueError(f"{feature} would become {name!r}; edge attributes must be named 'edge_...' "
                                     "or be an edge_aliases value, so that they are recognised on the way back")
                if back(name) != k:
                    raise ValueError(f"{feature} would become {name!r}, which converts back to "
                                     f"g.{where}[{back(name)!r}] (the aliases map {back(name)!r} to {name!r}); "
                                     f"rename it, or pass {which}={{}} to keep DGL's names")
                if name in seen:
                    raise ValueError(f"{feature} and {seen[name]} would both become the PyG attribute {name!r}; "
                                     f"rename one or pass {which}={{...}}")
                seen[name] = feature
        for k in graph_keys:
            if k in seen or k in _STRUCTURE_KEYS or k.startswith("_") or self.is_edge_attr(k):
                raise ValueError(f"graph-level {k!r} collides with "
                                 f"{seen.get(k, 'a structure or edge attribute name')}; rename it")
        return node, edge


# ----------------------------------------------------------------------------------------------- DGL -> PyG
def _check_homogeneous(dgl: Any, g: Any, who: str) -> None:
    if not isinstance(g, dgl.DGLGraph):
        raise TypeError(f"{who}: expected a dgl.DGLGraph, got {type(g).__name__}")
    if len(g.ntypes) != 1 or len(g.canonical_etypes) != 1:
        raise ValueError(f"{who}: only homogeneous graphs convert (this one has node types {g.ntypes} and edge "
                         f"types {g.canonical_etypes}); use dgl.to_homogeneous(g, ndata=..., edata=...) first")


def _check_graph_data(graph_data: Mapping[str, Any] | None, num_graphs: int, who: str) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for k, v in (graph_data or {}).items():
        if not isinstance(v, Tensor):
            raise TypeError(f"{who}: graph_data[{k!r}] must be a tensor with one row per graph, got "
                            f"{type(v).__name__}")
        if v.dim() == 0 or v.size(0) != num_graphs:
            raise ValueError(f"{who}: graph_data[{k!r}] has shape {tuple(v.shape)}, expected {num_graphs} rows "
                             "(one per graph)")
        out[k] = v
    return out


def dgl_records(g: Any, graph_data: Mapping[str, Tensor] | None = None, *,
                node_aliases: Mapping[str, str] | None = None,
                edge_aliases: Mapping[str, str] | None = None) -> list[Any]:
    """One PyG ``Data`` per graph of ``g`` (a batched ``DGLGraph`` gives one per member graph, with local node ids).

    Args:
        g (dgl.DGLGraph): a homogeneous graph, batched or not.
        graph_data (dict[str, Tensor], optional): graph-level tensors with ``g.batch_size`` rows (the ``labels``
            of ``dgl.load_graphs``); graph ``i`` gets ``value[i:i+1]``.
        node_aliases, edge_aliases: the name mapping (see the module doc). (default: :data:`NODE_ALIASES`,
            :data:`EDGE_ALIASES`)
    """
    dgl = import_dgl()
    from torch_geometric.data import Data

    _check_homogeneous(dgl, g, "from_dgl")
    num_graphs = int(g.batch_size)
    graph_data = _check_graph_data(graph_data, num_graphs, "from_dgl")
    node_names, edge_names = _NameMap(node_aliases, edge_aliases).check(g, graph_data)
    src, dst = g.edges(order="eid")
    src, dst = src.long(), dst.long()
    nodes = g.batch_num_nodes().long().tolist()
    edges = g.batch_num_edges().long().tolist()
    if sum(nodes) != g.num_nodes() or sum(edges) != g.num_edges():
        raise ValueError(f"from_dgl: batch_num_nodes/batch_num_edges sum to {sum(nodes)}/{sum(edges)}, but the "
                         f"graph has {g.num_nodes()} nodes and {g.num_edges()} edges")
    ndata = {name: g.ndata[k] for k, name in node_names.items()}
    edata = {name: g.edata[k] for k, name in edge_names.items()}
    records = []
    n0 = e0 = 0
    for i, (n, e) in enumerate(zip(nodes, edges)):
        s, d = src[e0:e0 + e] - n0, dst[e0:e0 + e] - n0
        if e and (int(torch.minimum(s, d).min()) < 0 or int(torch.maximum(s, d).max()) >= n):
            raise ValueError(f"from_dgl: an edge of graph {i} of the batch joins a node of another graph (its "
                             f"edges {e0}..{e0 + e - 1} must stay within nodes {n0}..{n0 + n - 1})")
        attrs: dict[str, Any] = {name: v[n0:n0 + n] for name, v in ndata.items()}
        attrs.update({name: v[e0:e0 + e] for name, v in edata.items()})
        attrs.update({k: v[i:i + 1] for k, v in graph_data.items()})
        records.append(Data(edge_index=torch.stack([s, d]), num_nodes=n, **attrs))
        n0 += n
        e0 += e
    return records


def from_dgl(g: Any, graph_data: Mapping[str, Tensor] | None = None, *, batch: bool | None = None,
             node_aliases: Mapping[str, str] | None = None, edge_aliases: Mapping[str, str] | None = None) -> Any:
    """A homogeneous ``DGLGraph`` as a PyG ``Data``, or a ``Batch`` for a batched graph.

    ``edge_index = stack(g.edges(order="eid"))`` (edge ids, self-loops and multi-edges kept), ``num_nodes`` set
    explicitly (isolated nodes kept), node and edge features renamed as in the module doc. Feature tensors are
    sliced, not copied, and keep their dtype. A batched graph (``g.batch_size > 1``) becomes a ``Batch`` whose
    ``batch``/``ptr`` reproduce ``g.batch_num_nodes()`` and whose per-graph edge slices reproduce
    ``g.batch_num_edges()``.

    Args:
        g (dgl.DGLGraph): the graph.
        graph_data (dict[str, Tensor], optional): graph-level tensors, ``g.batch_size`` rows each (the ``labels`` of
            ``dgl.load_graphs``); they become graph-level attributes (``[1, ...]`` on a ``Data``, ``[B, ...]`` on a
            ``Batch``).
        batch (bool, optional): ``True``: always a ``Batch``; ``False``: always one ``Data`` (graph boundaries
            dropped: the nodes and edges of all member graphs form one graph); ``None``: a ``Batch`` exactly when
            ``g.batch_size > 1``. (default: :obj:`None`)
        node_aliases (dict[str, str], optional): DGL node feature name -> PyG name. (default: :data:`NODE_ALIASES`)
        edge_aliases (dict[str, str], optional): DGL edge feature name -> PyG name (``edge_attr``/``edge_*``).
            (default: :data:`EDGE_ALIASES`)

    Raises:
        TypeError: ``g`` is not a ``DGLGraph``. ValueError: a heterogeneous graph, a name collision, graph data
            without one row per graph.
    """
    dgl = import_dgl()
    from torch_geometric.data import Batch, Data

    _check_homogeneous(dgl, g, "from_dgl")
    as_batch = g.batch_size > 1 if batch is None else bool(batch)
    if as_batch:
        return Batch.from_data_list(dgl_records(g, graph_data, node_aliases=node_aliases,
                                                edge_aliases=edge_aliases))
    graph_data = _check_graph_data(graph_data, int(g.batch_size), "from_dgl")
    node_names, edge_names = _NameMap(node_aliases, edge_aliases).check(g, graph_data)
    src, dst = g.edges(order="eid")
    attrs: dict[str, Any] = {name: g.ndata[k] for k, name in node_names.items()}
    attrs.update({name: g.edata[k] for k, name in edge_names.items()})
    attrs.update(graph_data)
    return Data(edge_index=torch.stack([src.long(), dst.long()]), num_nodes=int(g.num_nodes()), **attrs)


# ----------------------------------------------------------------------------------------------- PyG -> DGL
def _levels_of(data: Any, num_nodes: int, num_edges: int, num_graphs: int, is_batch: bool,
               levels: Mapping[str, str], names: _NameMap) -> dict[str, str]:
    """PyG attribute -> ``node``/``edge``/``graph`` (the rule of the module doc), checked against the sizes."""
    out: dict[str, str] = {}
    for key in data.keys():
        if key in _STRUCTURE_KEYS:
            continue
        value = data[key]
        level = levels.get(key)
        if level is None:
            if names.is_edge_attr(key):
                level = "edge"
            elif isinstance(value, Tensor) and value.dim() >= 1 and value.size(0) == num_nodes:
                level = "node"
            else:
                level = "graph"
        if level not in ("node", "edge", "graph"):
            raise ValueError(f"to_dgl: levels[{key!r}] must be 'node', 'edge' or 'graph', got {level!r}")
        rows = {"node": num_nodes, "edge": num_edges, "graph": num_graphs if is_batch else None}[level]
        if isinstance(value, Tensor):
            if rows is not None and (value.dim() == 0 or value.size(0) != rows):
                raise ValueError(f"to_dgl: {level}-level {key!r} has shape {tuple(value.shape)}, expected {rows} "
                                 f"rows; pass levels={{{key!r}: ...}} if its level was guessed wrong")
        elif level != "graph":
            raise ValueError(f"to_dgl: {level}-level {key!r} must be a tensor, got {type(value).__name__}")
        out[key] = level
    return out


def _graph_value(key: str, value: Any, num_graphs: int, is_batch: bool) -> Tensor:
    """A graph-level attribute as a tensor with one row per graph."""
    if isinstance(value, Tensor):
        return value if is_batch or (value.dim() >= 1 and value.size(0) == 1) else value.unsqueeze(0)
    items = value if is_batch and isinstance(value, (list, tuple)) else [value]
    if len(items) != num_graphs or not all(isinstance(v, (bool, int, float)) for v in items):
        raise ValueError(f"to_dgl: graph-level {key!r} ({type(value).__name__}) cannot be stored in DGL: only "
                         "tensors and numbers are; drop it before converting")
    return torch.tensor(items)


def _batch_counts(data: Any, num_nodes: int, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes and edges per graph of a PyG ``Batch`` (``ptr`` / ``batch`` and the per-graph edge slices)."""
    num_graphs = int(data.num_graphs)
    batch = data.batch if data.batch is not None else torch.zeros(num_nodes, dtype=torch.long, device=src.device)
    ptr = getattr(data, "ptr", None)
    nodes = ptr.diff() if ptr is not None else torch.bincount(batch, minlength=num_graphs)
    slices = getattr(data, "_slice_dict", None) or {}
    if "edge_index" in slices:
        edges = torch.as_tensor(slices["edge_index"]).diff()
    else:
        owner = batch[src]
        if owner.numel() and bool((owner.diff() < 0).any()):
            raise ValueError("to_dgl: the edges of the Batch are not grouped by graph")
        edges = torch.bincount(owner, minlength=num_graphs)
    if src.numel() and not bool((batch[src] == batch[dst]).all()):
        raise ValueError("to_dgl: an edge of the Batch joins nodes of two different graphs")
    return nodes.long(), edges.long()


def to_dgl(data: Any, *, levels: Mapping[str, str] | None = None, with_graph_data: bool = False,
           node_aliases: Mapping[str, str] | None = None, edge_aliases: Mapping[str, str] | None = None,
           idtype: torch.dtype = torch.int64) -> Any:
    """A PyG ``Data`` (or ``Batch``) as a homogeneous ``DGLGraph`` (batched for a ``Batch``): the inverse of
    :func:`from_dgl`.

    Edge ``j`` of ``edge_index`` becomes DGL edge id ``j``; ``g.num_nodes() == data.num_nodes``; node- and
    edge-level attributes go to ``g.ndata``/``g.edata`` under their DGL names (module doc); for a ``Batch``,
    ``g.batch_num_nodes()``/``g.batch_num_edges()`` are its graphs' node and edge counts.

    Args:
        data (torch_geometric.data.Data or Batch): the graph(s).
        levels (dict[str, str], optional): ``key -> "node" | "edge" | "graph"`` where the rule of the module doc
            guesses wrong. (default: :obj:`None`)
        with_graph_data (bool): also return the graph-level attributes, ``{name: tensor with one row per graph}``
            (the ``labels`` of ``dgl.save_graphs``). Without it, a graph-level attribute is an error, since a
            ``DGLGraph`` cannot hold it. (default: :obj:`False`)
        node_aliases, edge_aliases: the mapping used by :func:`from_dgl`, inverted here. (default: the module's)
        idtype (torch.dtype): DGL's index dtype, ``torch.int64`` or ``torch.int32``. (default: ``torch.int64``)

    Returns:
        ``dgl.DGLGraph``, or ``(graph, graph_data)`` with ``with_graph_data=True``.
    """
    dgl = import_dgl()
    from torch_geometric.data import Batch, Data

    if not isinstance(data, Data) and not isinstance(data, Batch):
        raise TypeError(f"to_dgl: expected a torch_geometric.data.Data or Batch, got {type(data).__name__}")
    if idtype not in (torch.int32, torch.int64):
        raise ValueError(f"to_dgl: idtype must be torch.int32 or torch.int64, got {idtype}")
    is_batch = isinstance(data, Batch)
    num_nodes = data.num_nodes
    if num_nodes is None:
        raise ValueError("to_dgl: the graph has no nodes (no node-level tensor and no num_nodes)")
    num_nodes = int(num_nodes)
    edge_index = data.edge_index
    if edge_index is None:
        edge_index = torch.zeros(2, 0, dtype=torch.long)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"to_dgl: edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"to_dgl: edge_index holds node ids outside 0..{num_nodes - 1}")
    src, dst = edge_index[0].long(), edge_index[1].long()
    num_edges = int(src.numel())
    num_graphs = int(data.num_graphs) if is_batch else 1
    names = _NameMap(node_aliases, edge_aliases)
    level_of = _levels_of(data, num_nodes, num_edges, num_graphs, is_batch, levels or {}, names)

    g = dgl.graph((src.to(idtype), dst.to(idtype)), num_nodes=num_nodes, idtype=idtype, device=src.device)
    graph_data: dict[str, Tensor] = {}
    for key, level in level_of.items():
        value = data[key]
        if level == "node":
            g.ndata[names.to_dgl_node(key)] = value
        elif level == "edge":
            name = names.to_dgl_edge(key)
            if not name:
                raise ValueError(f"to_dgl: edge attribute {key!r} has no name after the 'edge_' prefix")
            g.edata[name] = value
        else:
            graph_data[key] = _graph_value(key, value, num_graphs, is_batch)
    if is_batch:
        nodes, edges = _batch_counts(data, num_nodes, src, dst)
        g.set_batch_num_nodes(nodes.to(idtype).to(g.device))
        g.set_batch_num_edges(edges.to(idtype).to(g.device))
    if with_graph_data:
        return g, graph_data
    if graph_data:
        raise ValueError(f"to_dgl: graph-level attribute(s) {', '.join(map(repr, graph_data))} cannot be stored on "
                         "a DGLGraph; pass with_graph_data=True to get them as a dict (the labels of "
                         "dgl.save_graphs), or levels={...} if they are node/edge-level")
    return g


# ----------------------------------------------------------------------------------------------- sciml-h5
def _graph_list(graphs: Any, dgl: Any) -> list[Any]:
    if isinstance(graphs, dgl.DGLGraph):
        return [graphs]
    graphs = list(graphs)
    for i, g in enumerate(graphs):
        if not isinstance(g, dgl.DGLGraph):
            raise TypeError(f"dgl_to_h5: graphs[{i}] is a {type(g).__name__}, not a dgl.DGLGraph")
    return graphs


def dgl_to_h5(graphs: Any, path: str | os.PathLike, graph_data: Mapping[str, Tensor] | None = None, *,
              split: str = "train", source: str = "dgl", config: dict | None = None,
              compression: str | None = None, node_aliases: Mapping[str, str] | None = None,
              edge_aliases: Mapping[str, str] | None = None) -> Path:
    """Write DGL graphs as a sciml-h5 ``graphs`` collection, one record per graph.

    Args:
        graphs (dgl.DGLGraph or list of dgl.DGLGraph): the graphs; a batched graph contributes one record per member
            graph. All graphs need the same feature names, shapes (off the first axis) and dtypes.
        path (str or PathLike): the output file (written atomically by :class:`~sciml.datasets.writer.H5Writer`).
        graph_data (dict[str, Tensor], optional): graph-level tensors with one row per graph in total (the labels
            of ``dgl.save_graphs``). (default: :obj:`None`)
        split (str): the split written. (default: ``"train"``)
        source, config, compression: as for :func:`~sciml.datasets.writer.write_dataset`.
        node_aliases, edge_aliases: the name mapping of :func:`from_dgl`.

    Returns:
        Path: ``path``.
    """
    from sciml.datasets.writer import write_dataset

    dgl = import_dgl()
    graph_list = _graph_list(graphs, dgl)
    total = sum(int(g.batch_size) for g in graph_list)
    graph_data = _check_graph_data(graph_data, total, "dgl_to_h5")
    records: list[Any] = []
    offset = 0
    for g in graph_list:
        b = int(g.batch_size)
        part = {k: v[offset:offset + b] for k, v in graph_data.items()}
        records.extend(dgl_records(g, part, node_aliases=node_aliases, edge_aliases=edge_aliases))
        offset += b
    levels = writer_levels(records[0], graph_keys=graph_data, edge_aliases=edge_aliases) if records else None
    return write_dataset(path, "graphs", {split: records}, source=source, config=config, compression=compression,
                         levels=levels)


def writer_levels(record: Any, *, graph_keys: Iterable[str] = (),
                  edge_aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """The sciml-h5 writer's ``levels`` for a record made by :func:`dgl_records`: graph-level for ``graph_keys``,
    edge-level for ``edge_*`` and the ``edge_aliases`` values, node-level for every other feature (so a first graph
    with one node, or as many nodes as edges, cannot be misread)."""
    names = _NameMap(None, edge_aliases)
    graph_keys = set(graph_keys)
    out = {}
    for key in record.keys():
        if key in _STRUCTURE_KEYS:
            continue
        if key in graph_keys:
            out[key] = "graph"
        elif names.is_edge_attr(key):
            out[key] = "edge"
        else:
            out[key] = "node"
    return out


def h5_to_dgl(path: str | os.PathLike, split: str = "train", *, batch: bool = False,
              indices: Sequence[int] | None = None, node_aliases: Mapping[str, str] | None = None,
              edge_aliases: Mapping[str, str] | None = None, idtype: torch.dtype = torch.int64) -> tuple[Any, dict]:
    """Read a sciml-h5 ``graphs`` collection back into DGL, like ``dgl.load_graphs``.

    The level of every attribute (node, edge, graph) is read from the file, not guessed.

    Args:
        path (str or PathLike): a sciml-h5 ``graphs`` file.
        split (str): the split to read. (default: ``"train"``)
        batch (bool): return one batched ``DGLGraph`` instead of a list. (default: :obj:`False`)
        indices (list of int, optional): the graphs to read. (default: all)
        node_aliases, edge_aliases: the name mapping of :func:`from_dgl`.
        idtype (torch.dtype): DGL's index dtype. (default: ``torch.int64``)

    Returns:
        ``(graphs, graph_data)``: a list of ``DGLGraph`` (or one batched graph) and ``{name: tensor}`` with one
        row per graph, as ``dgl.load_graphs`` returns them.
    """
    from sciml.datasets.reader import GraphDataset

    dgl = import_dgl()
    ds = GraphDataset(path, split)
    try:
        levels = {}
        for key in ds.keys:
            a = ds.info[key]
            levels[key] = ("graph" if a.get("level") != "packed" else
                           "edge" if a.get("ptr") == "edge_ptr" else "node")
        chosen = range(len(ds)) if indices is None else list(indices)
        graphs, rows = [], []
        for i in chosen:
            g, gd = to_dgl(ds[i], levels=levels, with_graph_data=True, node_aliases=node_aliases,
                           edge_aliases=edge_aliases, idtype=idtype)
            graphs.append(g)
            rows.append(gd)
    finally:
        ds.close()
    graph_data = {k: torch.cat([r[k] for r in rows]) for k in (rows[0] if rows else {})}
    if batch:
        return (dgl.batch(graphs) if graphs else dgl.graph(([], []), idtype=idtype)), graph_data
    return graphs, graph_data
