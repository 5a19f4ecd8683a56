"""A model of the authors' Lua graph construction, written from the Lua, not from ``mca``.

``train/models/hg-attention.lua`` (with ``layers/Residual.lua``, ``ResidualPool.lua`` and
``AttentionPartsCRF.lua``) builds an nngraph ``gModule`` by calling modules on nodes.  nngraph's
``gModule:__init`` (gmodule.lua) then fills ``gModule.modules`` in the order of
``self.fg:topsort()``: ``outnode:graph()`` (a breadth-first walk adding an edge from each node to each of
its inputs, in call order), ``Graph:reverse()`` into the forward graph, and ``Graph:topsort()``
(torch/graph init.lua), which reverses once more and lists the nodes in post-order of a depth-first
walk from the root, the dummy output node.  This module re-does those steps in Python (graph, edges,
reverse, roots, post-order visit) and builds the same modules as the Lua (nested ``nn.Sequential`` /
``nn.ConcatTable`` containers, ReLUs, pools, shared CRF clones), so the expected order of the
parametrised modules comes out of the construction itself.

Each parametrised module is labelled by where the Lua builds it, written as the PyTorch module path it
corresponds to (``stacks.2.hourglass.low2.up.1.pool_branch.3`` is the first 3x3 convolution of the
pooled branch of the second unit of the 32x32 upper branch of stack 3).  That correspondence is the only
knowledge of ``mca`` used here; the order is nngraph's.  ``n_modual`` (``8 / nStack`` in the Lua) is 1,
as in the released 8-stack graph (``mca`` builds that branch structure at every depth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# ----------------------------------------------------------------------------- nn modules (what the Lua builds)
@dataclass(eq=False)
class LuaModule:
    cls: str
    children: list["LuaModule"] = field(default_factory=list)  # containers
    label: str | None = None  # parametrised modules: the PyTorch counterpart's path
    shape: tuple[int, ...] = ()  # convolution weight (out, in, kh, kw) or batch norm (channels,)
    shares: "LuaModule | None" = None  # spConv:clone('weight', 'bias', ...)

    @property
    def kind(self) -> str:
        return "bn" if self.cls.endswith("BatchNormalization") else "conv"

    @property
    def num_params(self) -> int:
        if self.cls.endswith("BatchNormalization"):
            return 2 * self.shape[0]
        o, i, kh, kw = self.shape
        return o * i * kh * kw + o


def conv(cin: int, cout: int, k: int, label: str) -> LuaModule:
    return LuaModule("nn.SpatialConvolution", label=label, shape=(cout, cin, k, k))


def bn(c: int, label: str) -> LuaModule:
    return LuaModule("nn.SpatialBatchNormalization", label=label, shape=(c,))


def plain(cls: str) -> LuaModule:
    return LuaModule(cls)


def seq(*mods: LuaModule) -> LuaModule:
    return LuaModule("nn.Sequential", list(mods))


def concat(*mods: LuaModule) -> LuaModule:
    return LuaModule("nn.ConcatTable", list(mods))


# ----------------------------------------------------------------------------- torch/graph + nngraph
class Node:
    """graph.Node / nngraph.Node: ``data`` is shared between the copies reverse() makes, ``children`` is not."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data, self.children, self.visited, self.marked = data, [], False, False

    def add(self, child: "Node") -> None:  # graph.Node:add (no duplicates)
        if child not in self.children:
            self.children.append(child)

    def visit(self, post: Any) -> None:
        """Node:visit(pre, post) with pre marking visited: depth first, children in order (iteratively: the
        released graph nests thousands of nodes deep)."""
        if self.visited:
            return
        self.visited = True
        stack = [(self, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(node.children):
                stack[-1] = (node, i + 1)
                child = node.children[i]
                if not child.visited:
                    child.visited = True
                    stack.append((child, 0))
            else:
                stack.pop()
                post(node)

    def graph(self) -> "Graph":
        """Node:graph(): breadth first from this node, an edge to every child."""
        g, queue, seen = Graph(), [self], {id(self)}
        while queue:
            node = queue.pop(0)
            for child in node.children:
                g.add(node, child)
                if id(child) not in seen:
                    seen.add(id(child))
                    queue.append(child)
        return g


class Graph:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.index: dict[int, int] = {}
        self.edges: list[tuple[Node, Node]] = []

    def add(self, a: Node, b: Node) -> None:
        self.edges.append((a, b))
        for n in (a, b):
            if id(n) not in self.index:
                self.nodes.append(n)
                self.index[id(n)] = len(self.nodes)
        a.add(b)

    def reverse(self) -> tuple["Graph", dict[int, Node]]:
        rg, copies = Graph(), {}
        for a, b in self.edges:
            ca = copies.setdefault(id(a), Node(a.data))
            cb = copies.setdefault(id(b), Node(b.data))
            rg.add(cb, ca)
        return rg, copies

    def roots(self) -> list[Node]:
        tos = {id(b) for _, b in self.edges}
        roots = {id(a): a for a, _ in self.edges if id(a) not in tos}
        return sorted(roots.values(), key=lambda n: self.index[id(n)])

    def topsort(self) -> list[Node]:
        rg, copies = self.reverse()
        back = {id(c): self.nodes[self.index[k] - 1] for k, c in copies.items()}
        roots = rg.roots()
        if len(roots) > 1:
            root = Node({"dummy": True})
            for r in roots:
                root.add(r)
        else:
            root = roots[0]
        order: list[Node] = []
        root.visit(lambda n: order.append(back[id(n)]) if id(n) in back else None)
        if len(order) != len(self.nodes):
            raise ValueError("graph has cycles")
        return order


def call(module: LuaModule, *inputs: Node) -> Node:
    """``module(input)`` / ``module({a, b})`` in nngraph: a node holding the module, inputs as children."""
    node = Node({"module": module})
    for inp in inputs:
        if inp in node.children:
            raise ValueError("nngraph: don't pass the same input twice")
        node.add(inp)
    return node


def gmodule_modules(inputs: list[Node], outputs: list[Node]) -> list[LuaModule]:
    """``nn.gModule(inputs, outputs).modules``: the modules of ``fg:topsort()`` in order (gmodule.lua)."""
    outnode = Node({"input": []})
    for o in outputs:
        outnode.add(o)
    innode = Node({"input": []})
    assert len(inputs) == 1
    inputs[0].add(innode)
    bg = outnode.graph()
    fg, _ = bg.reverse()
    return [n.data["module"] for n in fg.topsort() if "module" in n.data]


# ----------------------------------------------------------------------------- layers/*.lua
def _conv_block(cin: int, cout: int, name: str) -> LuaModule:
    return seq(bn(cin, f"{name}.conv_block.0"), plain("cudnn.ReLU"), conv(cin, cout // 2, 1, f"{name}.conv_block.2"),
               bn(cout // 2, f"{name}.conv_block.3"), plain("cudnn.ReLU"),
               conv(cout // 2, cout // 2, 3, f"{name}.conv_block.5"), bn(cout // 2, f"{name}.conv_block.6"),
               plain("cudnn.ReLU"), conv(cout // 2, cout, 1, f"{name}.conv_block.8"))


def _skip(cin: int, cout: int, name: str) -> LuaModule:
    return plain("nn.Identity") if cin == cout else seq(conv(cin, cout, 1, f"{name}.skip"))


def residual(cin: int, cout: int, name: str) -> LuaModule:
    return seq(concat(_conv_block(cin, cout, name), _skip(cin, cout, name)), plain("nn.CAddTable"))


def residual_pool(cin: int, cout: int, name: str) -> LuaModule:
    pool = seq(bn(cin, f"{name}.pool_branch.0"), plain("cudnn.ReLU"), plain("nn.SpatialMaxPooling"),
               conv(cin, cout, 3, f"{name}.pool_branch.3"), bn(cout, f"{name}.pool_branch.4"), plain("cudnn.ReLU"),
               conv(cout, cout, 3, f"{name}.pool_branch.6"), plain("nn.SpatialUpSamplingNearest"))
    return seq(concat(_conv_block(cin, cout, name), _skip(cin, cout, name), pool), plain("nn.CAddTable"))


def attention_iter(num_in: int, inp: Node, lrn: int, iters: int, name: str) -> Node:
    u = call(conv(num_in, 1, 3, f"{name}.u_conv"), inp)
    sp = conv(1, 1, lrn, f"{name}.crf_kernel")
    clone = LuaModule(sp.cls, shape=sp.shape, shares=sp)
    q: list[Node] = []
    for i in range(iters):
        c = call(sp, u) if i == 0 else call(clone, q[i - 1])
        q.append(call(plain("nn.Sigmoid"), call(plain("nn.CAddTable"), c, u)))
    return call(plain("nn.CMulTable"), inp, call(plain("nn.Replicate"), q[-1]))


def attention_parts_crf(num_in: int, inp: Node, lrn: int, iters: int, use_part: bool, parts: int, name: str) -> Node:
    if not use_part:
        return attention_iter(num_in, inp, lrn, iters, name)
    pre = []
    for p in range(parts):
        att = attention_iter(num_in, inp, lrn, iters, f"{name}.parts.{p}")
        pre.append(call(conv(num_in, 1, 1, f"{name}.heads.{p}"), att))
    return call(plain("nn.JoinTable"), *pre)


# ----------------------------------------------------------------------------- hg-attention.lua
@dataclass(frozen=True)
class LuaOptions:
    """The Lua's options (released: ``-nStack 8 -LRNKer 11``, 16 MPII maps; ``-trainBg`` adds one)."""

    n_stack: int = 8
    n_feats: int = 256
    n_pool: int = 4
    maps: int = 16
    lrn_ker: int = 11
    iters: int = 3
    part_from: int = 4  # ``if i > 4`` (1-based): stacks 5.. use part attention; the last stack always does
    last_width: int = 512  # ``opt.nFeats * 2``
    stem_mid: int = 128


def _rep_residual(f: int, inp: Node, n_rep: int, name: str) -> Node:
    out: list[Node] = []
    for i in range(n_rep):
        mod = residual(f, f, f"{name}.{i}") if i == 0 else residual_pool(f, f, f"{name}.{i}")
        out.append(call(mod, inp if i == 0 else out[i - 1]))
    return out[-1]


def _hourglass(n: int, f: int, inp: Node, name: str) -> Node:
    pool = call(plain("nn.SpatialMaxPooling"), inp)
    up = _rep_residual(f, inp, n - 1, f"{name}.up") if n > 1 else call(residual(f, f, f"{name}.up.0"), inp)
    low = call(residual(f, f, f"{name}.low1"), pool)
    low2 = _hourglass(n - 1, f, low, f"{name}.low2") if n > 1 else call(residual(f, f, f"{name}.low2"), low)
    low3 = call(residual(f, f, f"{name}.low3"), low2)
    up2 = call(plain("nn.SpatialUpSamplingNearest"), low3)
    return call(plain("nn.CAddTable"), up, up2)


def _lin(cin: int, cout: int, inp: Node, name: str) -> Node:
    c = call(conv(cin, cout, 1, f"{name}.0"), inp)
    return call(plain("cudnn.ReLU"), call(bn(cout, f"{name}.1"), c))


def build(o: LuaOptions = LuaOptions()) -> tuple[list[Node], list[Node]]:
    """``createModel()``: the input and output nodes."""
    inp = call(plain("nn.Identity"))
    x = call(plain("cudnn.ReLU"), call(bn(64, "stem.1"), call(conv(3, 64, 7, "stem.0"), inp)))
    x = call(residual(64, 64, "stem.3"), x)
    x = call(plain("nn.SpatialMaxPooling"), x)
    x = call(residual(64, 64, "stem.5"), x)
    x = call(residual(64, o.stem_mid, "stem.6"), x)
    x = call(plain("nn.SpatialMaxPooling"), x)
    x = call(residual(o.stem_mid, o.stem_mid, "stem.8"), x)
    x = call(residual(o.stem_mid, o.stem_mid, "stem.9"), x)
    inter = [call(residual(o.stem_mid, o.n_feats, "stem.10"), x)]
    out = []
    for i in range(1, o.n_stack + 1):
        s = f"stacks.{i - 1}"
        hg = _hourglass(o.n_pool, o.n_feats, inter[i - 1], f"{s}.hourglass")
        if i == o.n_stack:
            w = o.last_width
            ll1 = _lin(o.n_feats, w, hg, f"{s}.lin1")
            ll2 = _lin(w, w, ll1, f"{s}.lin2")
            att = attention_parts_crf(w, ll2, o.lrn_ker, o.iters, False, o.maps, f"{s}.attention")
            tmp = attention_parts_crf(w, att, o.lrn_ker, o.iters, True, o.maps, f"{s}.head")
        else:
            ll1 = _lin(o.n_feats, o.n_feats, hg, f"{s}.lin1")
            ll2 = _lin(o.n_feats, o.n_feats, ll1, f"{s}.lin2")
            att = attention_parts_crf(o.n_feats, ll2, o.lrn_ker, o.iters, False, o.maps, f"{s}.attention")
            if i > o.part_from:
                tmp = attention_parts_crf(o.n_feats, att, o.lrn_ker, o.iters, True, o.maps, f"{s}.head")
            else:
                tmp = call(conv(o.n_feats, o.maps, 1, f"{s}.head"), att)
        out.append(tmp)
        if i < o.n_stack:
            outmap = call(conv(o.maps, o.n_feats, 1, f"{s}.merge_heatmaps"), tmp)
            ll3 = _lin(o.n_feats, o.n_feats, ll1, f"{s}.merge_features")
            inter.append(call(plain("nn.CAddTable"), inter[i - 1], outmap, ll3))
    return [inp], out


def parametrised(modules: list[LuaModule]) -> list[LuaModule]:
    """Convolutions and batch norms of ``gModule.modules``, containers walked depth first, shared clones once."""
    out: list[LuaModule] = []
    seen: set[int] = set()

    def walk(m: LuaModule) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        if m.label is not None:
            out.append(m)
        for c in m.children:
            walk(c)

    for m in modules:
        if m.shares is None:
            walk(m)
    return out


def released_graph(o: LuaOptions = LuaOptions()) -> tuple[list[LuaModule], list[LuaModule]]:
    """(``gModule.modules`` in nngraph's order, its parametrised modules in order)."""
    mods = gmodule_modules(*build(o))
    return mods, parametrised(mods)


def options_for(cfg: Any) -> LuaOptions:
    """The Lua options that build the graph of an mca config with the released stem (stride 1) and n_modual 1."""
    if cfg.stem_stride != 1 or cfg.hru_upsample != "nearest" or cfg.multi_resolution_attention or cfg.holistic_maps != 1:
        raise ValueError(f"{cfg.name}: not a graph hg-attention.lua builds")
    return LuaOptions(n_stack=cfg.num_stacks, n_feats=cfg.channels, n_pool=cfg.hourglass_depth,
                      maps=cfg.num_joints + int(getattr(cfg, "background_map", False)),  # -trainBg: one more
                      lrn_ker=cfg.attention_kernel, iters=cfg.crf_iterations, part_from=cfg.part_attention_from,
                      last_width=cfg.last_stack_channels, stem_mid=cfg.stem_channels)
