"""Which weight axes share a permutation, read from the model's own graph (torch.fx).

Why from the graph: a hand-written spec per architecture goes stale when a model changes, and a
user model gets none. Tracing follows every tensor through the forward pass: a Linear/Conv starts a
new group of hidden units on its output axis and joins its input axis to whatever group flows in;
norm layers, elementwise activations, pooling and dropout pass a group through (their parameters and
running statistics follow its channels); ``x + y`` merges the groups of both operands — a residual
stream is one permutation; ``flatten`` of a C×H×W map keeps the channel group with blocks of H·W
entries. Groups that reach the network's input or output are fixed (not permuted).
An operation outside this set raises :class:`UnsupportedModel` naming it (one line).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
# modules and functions that map channel c to channel c (elementwise or per-channel spatial ops)
_PASS_MODULES = (
    nn.ReLU,
    nn.Tanh,
    nn.GELU,
    nn.ELU,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.SiLU,
    nn.Softplus,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
_PASS_FUNCTIONS = (
    F.relu,
    torch.relu,
    torch.tanh,
    F.gelu,
    F.elu,
    torch.sigmoid,
    F.silu,
    F.leaky_relu,
    F.dropout,
    F.max_pool2d,
    F.avg_pool2d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.adaptive_avg_pool1d,
)
NONLINEAR = (nn.ReLU, nn.Tanh, nn.GELU, nn.ELU, nn.Sigmoid, nn.LeakyReLU, nn.SiLU, nn.Softplus)
_NONLINEAR_FUNCTIONS = (F.relu, torch.relu, torch.tanh, F.gelu, F.elu, torch.sigmoid, F.silu, F.leaky_relu)
_ADD = (operator.add, operator.iadd, torch.add)
_FLATTEN = (torch.flatten,)


class UnsupportedModel(ValueError):
    """The model's graph holds an operation whose effect on hidden-unit order is not known."""


@dataclass(frozen=True)
class Axis:
    """One axis of one state tensor that a permutation reorders: in blocks of ``block`` entries.
    ``buffer``: a running statistic (moves with its channel, but is not a weight to match)."""

    key: str
    axis: int
    block: int = 1
    buffer: bool = False


@dataclass
class PermutationSpec:
    """Permutation groups (name → the axes it reorders, its size) and where its units can be observed.

    ``observe``: per group, fx node names whose output carries the group on dim 1 (post-nonlinearity
    outputs: the "units" activation matching correlates). ``preact``: (node, affine module, group) of
    every hidden pre-activation that REPAIR rescales — the output of a Linear/Conv, or of the norm
    layer right after it; the affine module is where a rescale can be folded in.
    """

    groups: dict[str, list[Axis]]
    sizes: dict[str, int]
    observe: dict[str, list[str]] = field(default_factory=dict)
    preact: list[tuple[str, str, str]] = field(default_factory=list)

    def axes_of(self, key: str) -> list[tuple[str, Axis]]:
        return [(g, ax) for g, axes in self.groups.items() for ax in axes if ax.key == key]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def new(self) -> int:
        i = len(self.parent)
        self.parent[i] = i
        return i

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        return min(ra, rb)


def _describe(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(modules[str(node.target)]).__name__})"
    name = getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {name!r}"


def trace(model: nn.Module) -> torch.fx.GraphModule:
    """The model's fx graph; a model fx cannot trace raises UnsupportedModel with fx's reason."""
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as err:  # fx raises many types; the first line of its message names the construct
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsupportedModel(f"cannot trace {type(model).__name__} with torch.fx: {first}") from None


def derive_spec(model: nn.Module, example: torch.Tensor) -> PermutationSpec:
    """The permutation spec of ``model`` (traced on ``example``, a batch of its inputs)."""
    gm = trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(example[:2])
    modules = dict(gm.named_modules())
    uf = _UnionFind()
    fixed = {uf.new()}  # the input's channels
    group_of: dict[str, int] = {}  # node name -> union-find id of its channel axis (dim 1 / last dim for 2-D)
    block_of: dict[str, int] = {}  # flattened outputs: entries per channel
    members: list[tuple[int, Axis]] = []
    observe: list[tuple[int, str]] = []
    preact: list[tuple[str, str, int]] = []
    producer: dict[str, str] = {}  # node name -> the Linear/Conv module it comes from (for norm-after-linear)

    def in_group(node: torch.fx.Node, where: torch.fx.Node) -> int:
        if not isinstance(node, torch.fx.Node) or node.name not in group_of:
            raise UnsupportedModel(f"cannot follow channels into {_describe(where, modules)}: its input is not a traced tensor")
        return group_of[node.name]

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            group_of[node.name] = next(iter(fixed))
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, torch.fx.Node):
                raise UnsupportedModel("the model returns a structure, not one tensor of logits")
            fixed.add(in_group(out, node))
        elif node.op == "call_module":
            m = modules[node.target]
            src = node.args[0]
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups != 1:
                    raise UnsupportedModel(f"{_describe(node, modules)} is a grouped convolution (groups={m.groups})")
                g_in = in_group(src, node)
                members.append((g_in, Axis(f"{node.target}.weight", 1, block_of.get(src.name, 1))))
                g = uf.new()
                members.append((g, Axis(f"{node.target}.weight", 0)))
                if m.bias is not None:
                    members.append((g, Axis(f"{node.target}.bias", 0)))
                group_of[node.name] = g
                producer[node.name] = node.target
                if m.bias is not None:
                    preact.append((node.name, node.target, g))
            elif isinstance(m, NORMS):
                if isinstance(m, nn.GroupNorm) and m.num_groups != 1:
                    raise UnsupportedModel(
                        f"{_describe(node, modules)} normalizes groups of channels " f"(num_groups={m.num_groups})"
                    )
                g = in_group(src, node)
                params = {name for name, _ in m.named_parameters(recurse=False)}
                for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                    if t is not None and t.is_floating_point() and t.dim() >= 1:
                        members.append((g, Axis(f"{node.target}.{name}", 0, buffer=name not in params)))
                group_of[node.name] = g
                if src.name in producer and (m.weight is not None):
                    preact = [p for p in preact if p[0] != src.name]
                    preact.append((node.name, node.target, g))
            elif isinstance(m, _PASS_MODULES) or isinstance(m, nn.Flatten):
                _pass_through(node, src, m, group_of, block_of, in_group)
                if isinstance(m, NONLINEAR):
                    observe.append((group_of[node.name], node.name))
            else:
                raise UnsupportedModel(f"unsupported operation {_describe(node, modules)} in {type(model).__name__}")
        elif node.op in ("call_function", "call_method"):
            fn = node.target
            if fn in _ADD or fn == "add" or fn == "add_":
                tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
                gs = [in_group(a, node) for a in tensors]
                g = gs[0]
                for other in gs[1:]:
                    g = uf.union(g, other)
                group_of[node.name] = g
                if len({block_of.get(a.name, 1) for a in tensors}) > 1:
                    raise UnsupportedModel(f"{_describe(node, modules)} adds tensors of different layouts")
                if tensors and tensors[0].name in block_of:
                    block_of[node.name] = block_of[tensors[0].name]
            elif fn in _PASS_FUNCTIONS or fn in ("relu", "tanh", "sigmoid", "contiguous", "relu_"):
                _pass_through(node, node.args[0], None, group_of, block_of, in_group)
                if fn in _NONLINEAR_FUNCTIONS or fn in ("relu", "tanh", "sigmoid", "relu_"):
                    observe.append((group_of[node.name], node.name))
            elif fn in _FLATTEN or fn in ("flatten", "view", "reshape"):
                _pass_through(node, node.args[0], "flatten", group_of, block_of, in_group)
            else:
                raise UnsupportedModel(f"unsupported operation {_describe(node, modules)} in {type(model).__name__}")
        elif node.op == "get_attr":
            raise UnsupportedModel(
                f"{type(model).__name__} uses the tensor {node.target!r} directly in forward "
                "(only nn.Linear/Conv/norm modules are permuted)"
            )
    fixed_roots = {uf.find(f) for f in fixed}
    state = model.state_dict()
    names: dict[int, str] = {}
    groups: dict[str, list[Axis]] = {}
    sizes: dict[str, int] = {}
    for gid, ax in members:
        root = uf.find(gid)
        if root in fixed_roots:
            continue
        name = names.setdefault(root, f"P{len(names)}")
        groups.setdefault(name, []).append(ax)
        n = state[ax.key].shape[ax.axis] // ax.block
        if sizes.setdefault(name, n) != n:
            raise UnsupportedModel(f"group {name}: axis {ax.axis} of {ax.key} has {n} units, others {sizes[name]}")
    obs: dict[str, list[str]] = {}
    for gid, node_name in observe:
        root = uf.find(gid)
        if root in names:
            obs.setdefault(names[root], []).append(node_name)
    pre = [(n, mod, names[uf.find(g)]) for n, mod, g in preact if uf.find(g) in names]
    return PermutationSpec(groups, sizes, obs, pre)


def _pass_through(node, src, m, group_of, block_of, in_group) -> None:
    """Output channels = input channels; a flatten of a C×H×W map keeps C in blocks of H·W."""
    g = in_group(src, node)
    group_of[node.name] = g
    block = block_of.get(src.name, 1)
    if m == "flatten" or isinstance(m, nn.Flatten):
        shape = src.meta["tensor_meta"].shape
        out_shape = node.meta["tensor_meta"].shape
        if len(out_shape) != 2 or len(shape) < 2:
            raise UnsupportedModel(
                f"flatten/view of {tuple(shape)} to {tuple(out_shape)}: " "only (N, C, ...) → (N, C·...) is supported"
            )
        spatial = 1
        for s in shape[2:]:
            spatial *= int(s)
        block *= spatial
    if block > 1:
        block_of[node.name] = block
