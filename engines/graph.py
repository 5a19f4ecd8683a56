"""Small ONNX graph helpers shared by the graph rewrites (``engines.int8``, ``calibration.rewrite``)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["graph_maps", "static_shape", "constant", "used_names", "drop_unused", "keep_needed", "prune_outputs"]


def graph_maps(model: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(tensor name -> the node writing it, tensor name -> the nodes reading it)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def static_shape(model: Any, name: str) -> list[int] | None:
    """A tensor's shape from the graph's value_info / inputs / outputs (-1 for an unknown dimension), or None."""
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name:
            return [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    return None


def constant(model: Any, name: str) -> np.ndarray | None:
    """The value of a constant tensor: an initializer, a Constant node, or an Identity copy of an initializer
    (PyTorch's exporter shares equal parameters that way)."""
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in model.graph.node:
        if name in n.output:
            if n.op_type == "Constant":
                return numpy_helper.to_array(n.attribute[0].t)
            if n.op_type == "Identity":
                return constant(model, n.input[0])
            return None
    return None


def node_reads(n: Any) -> set[str]:
    """The tensor names one node reads: its inputs and, for Loop/If/Scan, every name its subgraphs read."""
    reads = set(n.input)
    for a in n.attribute:
        if a.type == a.GRAPH:
            reads |= used_names(a.g)
        elif a.type == a.GRAPHS:
            for g in a.graphs:
                reads |= used_names(g)
    return reads


def used_names(graph: Any) -> set[str]:
    """Every tensor name a node of ``graph`` reads, inside subgraphs too (a Loop or If body reads outer
    initializers by name: a rewrite that drops "unused" initializers must see those reads)."""
    used: set[str] = set()
    for n in graph.node:
        used |= node_reads(n)
    used.update(o.name for o in graph.output)
    return used


def drop_unused(model: Any) -> None:
    """Remove Identity/Constant nodes and initializers nothing reads any more (ONNX Runtime warns about each)."""
    used = used_names(model.graph)
    for n in [n for n in model.graph.node if n.op_type in ("Identity", "Constant") and n.output[0] not in used]:
        model.graph.node.remove(n)
    used = used_names(model.graph)
    for t in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(t)


def keep_needed(graph: Any, known: set[str] | frozenset[str] = frozenset()) -> int:
    """Keep, in place, only the nodes ``graph``'s outputs need (a node whose outputs are all in ``known``, values
    already given as initializers, is not needed) and the initializers still read; returns the nodes removed."""
    need = {o.name for o in graph.output}
    alive = []
    for n in reversed(list(graph.node)):
        if any(o in need for o in n.output) and not all(o in known for o in n.output):
            alive.append(n)
            need |= node_reads(n)
    removed = len(graph.node) - len(alive)
    if removed:
        alive.reverse()
        del graph.node[:]
        graph.node.extend(alive)
    used = used_names(graph)
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return removed


def prune_outputs(model: Any, keep: list[str] | tuple[str, ...]) -> int:
    """Keep only the graph outputs ``keep`` and the nodes they need, in place; returns the nodes removed.

    Why: ONNX Runtime runs every node of the graph on each call, whatever outputs are
    fetched, so an output nobody reads still costs its nodes (and its copy) unless it is cut
    from the graph.  Raises ``ValueError`` for a name that is not an output.
    """
    names = [o.name for o in model.graph.output]
    missing = [k for k in keep if k not in names]
    if missing:
        raise ValueError(f"not graph outputs: {missing} (have {names})")
    outs = [o for o in model.graph.output if o.name in keep]
    del model.graph.output[:]
    model.graph.output.extend(outs)
    removed = keep_needed(model.graph)
    used = used_names(model.graph)
    kept = [v for v in model.graph.value_info if v.name in used]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    return removed
