"""The first layer on a plane of parameter space, from outputs computed once: evaluation below the forward floor.

Why: a convolution or linear layer is linear in its weights, and the data are fixed. At θ0 + Σ_k c_k d_k
the first layer's pre-bias output on a chunk is therefore ``C0 + Σ_k c_k D_k`` with ``C0 = layer(x; W0)``
and ``D_k = layer(x; W of d_k)`` computed once per surface — a few multiply-adds per output element
instead of a convolution. Whatever follows that is per-channel affine is applied exactly on top: the
layer's bias at the point, or, when BatchNorm was folded into it (:class:`~lsx.landscape.engine.evaluator.
InferenceGraph`), ``s·(C0 + Σ c_k D_k) + b_folded`` with ``s = γ/√(σ²+ε)`` of the point. Everything after
the first layer (non-linear in the weights) runs as usual, through a copy of the forward graph whose
input is the first layer's output (:attr:`FirstLayerPlane.tail`).

It applies when the model traces with torch.fx and its input reaches a Conv/Linear module only
through shape operations (flatten, view, reshape), and that module runs once; :meth:`FirstLayerPlane.build`
returns None (with :attr:`reason`) otherwise, and the evaluator runs the whole model.
"""

from __future__ import annotations

import operator
from typing import Sequence

import torch
import torch.fx
from torch import nn

from .flat import FlatParams

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_Layer = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
_BN = nn.modules.batchnorm._BatchNorm
# per chunk: the (K+1, M) block of C0 and the D_k, the output's shape in memory order, the permutation back
_Chunk = tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]
_SHAPE_MODULES = (nn.Flatten, nn.Identity)
_SHAPE_FUNCTIONS = (torch.flatten, torch.reshape, operator.getitem)
_SHAPE_METHODS = ("flatten", "view", "reshape", "contiguous")


class _Captured(Exception):
    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


class FirstLayerPlane:
    """Precomputed first-layer outputs for one θ0 and set of directions, and the rest of the network.

    Build with :meth:`build` (None when the model's first layer cannot be isolated); then
    :meth:`prepare` (θ0, directions, chunks per split) before a surface, :meth:`forward` per chunk.
    """

    reason: str = ""

    def __init__(
        self,
        gm: torch.fx.GraphModule,
        layer_name: str,
        layer: _Layer,
        raw_layer: _Layer,
        bn: _BN | None,
        tail: torch.fx.GraphModule,
        flat: FlatParams,
    ) -> None:
        self.gm = gm
        self.layer = layer  # the module the graph calls (a folded conv when BN was folded)
        self.raw_layer = raw_layer  # the model's own conv/linear (its weight is in the flat layout)
        self.bn = bn  # the folded BatchNorm, or None
        self.tail = tail
        self.layer_name = layer_name
        by_tensor = {id(t): e for e, t in zip(flat.entries, flat._tensors)}
        self.weight_entry = by_tensor.get(id(raw_layer.weight))
        self.flat = flat
        self.cache: dict[str, list[_Chunk]] = {}
        self.active = False

    @classmethod
    def build(
        cls,
        gm: torch.fx.GraphModule | None,
        model: nn.Module,
        flat: FlatParams,
        pairs: Sequence[tuple[nn.Module, nn.Module, nn.Module]] = (),
    ) -> "FirstLayerPlane | str":
        """The plane helper for ``gm`` (the fused graph, or None to trace ``model``), or a reason string why not."""
        if gm is None:
            try:
                gm = torch.fx.symbolic_trace(model)
            except Exception as err:  # noqa: BLE001 - any tracing failure means "not applicable"
                return f"the model does not trace with torch.fx ({type(err).__name__})"
        modules = dict(gm.named_modules())
        inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            return f"the model takes {len(inputs)} inputs; the first-layer plane needs one"
        node = inputs[0]
        while True:
            if len(node.users) != 1:
                return "the input is read by more than one operation"
            (node,) = node.users
            if node.op == "call_module" and isinstance(modules.get(node.target), _LAYERS):
                break
            is_shape = (
                (node.op == "call_module" and isinstance(modules.get(node.target), _SHAPE_MODULES))
                or (node.op == "call_function" and node.target in _SHAPE_FUNCTIONS)
                or (node.op == "call_method" and node.target in _SHAPE_METHODS)
            )
            if not is_shape:
                return f"the input reaches {node.op} {node.target} before any conv/linear layer"
        layer_node = node
        layer = modules[layer_node.target]
        if sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == layer_node.target) != 1:
            return "the first layer module runs more than once"
        raw: nn.Module = layer
        bn: nn.Module | None = None
        for fused, conv, norm in pairs:
            if fused is layer:
                raw, bn = conv, norm
        if not (isinstance(layer, _LAYERS) and isinstance(raw, _LAYERS) and (bn is None or isinstance(bn, _BN))):
            return "the first layer was folded into something other than a conv/linear layer and its BatchNorm"
        if not raw.weight.requires_grad:
            return "the first layer's weight is frozen (not in the flat layout)"
        # the rest of the network: a copy of the graph whose input is the first layer's output
        g = torch.fx.Graph()
        env: dict[torch.fx.Node, torch.fx.Node] = {}
        out = g.graph_copy(gm.graph, env)
        g.output(out)
        new_layer = env[layer_node]
        first = next(iter(g.nodes))
        with g.inserting_before(first):
            h = g.placeholder("first_layer_out")
        new_layer.replace_all_uses_with(h)
        g.erase_node(new_layer)
        tail = torch.fx.GraphModule(gm, g)
        tail.graph.eliminate_dead_code()
        for n in [n for n in tail.graph.nodes if n.op == "placeholder" and n.name != h.name]:
            if n.users:
                return "the input is used after the first layer"
            tail.graph.erase_node(n)
        tail.graph.lint()
        tail.recompile()
        plane = cls(gm, layer_node.target, layer, raw, bn, tail.eval(), flat)
        if plane.weight_entry is None:
            return "the first layer's weight is not in the flat layout"
        return plane

    # ------------------------------------------------------------------ per surface
    @property
    def fan_in(self) -> int:
        """Multiply-adds per output element of the first layer (inputs × kernel size / groups)."""
        raw = self.raw_layer
        if isinstance(raw, nn.Linear):
            return int(raw.in_features)
        k = 1
        for n in raw.kernel_size:
            k *= int(n)
        return int(raw.in_channels // raw.groups) * k

    def _layer_input(self, xb: torch.Tensor) -> torch.Tensor:
        """What the first layer receives for input ``xb`` (after flatten/view), via a pre-hook that stops the pass."""

        def grab(_m, args):
            raise _Captured(args[0])

        handle = self.layer.register_forward_pre_hook(grab)
        try:
            self.gm(xb)
        except _Captured as c:
            return c.value
        finally:
            handle.remove()
        raise RuntimeError("the first layer was not reached")  # pragma: no cover - build() checked the path

    def _linear_part(self, inp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The layer without bias at ``weight`` (linear in it)."""
        raw = self.raw_layer
        if isinstance(raw, nn.Linear):
            return nn.functional.linear(inp, weight)
        return raw._conv_forward(inp, weight, None)

    @torch.inference_mode()
    def prepare(
        self,
        theta0: torch.Tensor,
        directions: torch.Tensor,
        chunks: dict[str, list[tuple[torch.Tensor, torch.Tensor]]],
        budget_bytes: int,
    ) -> bool:
        """Compute C0 and D_k for every chunk; False (and nothing kept) when they would exceed ``budget_bytes``."""
        self.cache, self.active = {}, False
        e = self.weight_entry
        if e is None:  # build() returns no plane without it
            raise RuntimeError("the first layer's weight is not in the flat layout")
        dtype = self.raw_layer.weight.dtype
        weights = [theta0[e.start : e.stop].view(e.shape).to(dtype)] + [
            d[e.start : e.stop].view(e.shape).to(dtype) for d in directions
        ]
        fmt = (
            torch.channels_last
            if self.raw_layer.weight.dim() == 4 and self.raw_layer.weight.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        weights = [w.contiguous(memory_format=fmt) for w in weights]
        total = 0
        cache: dict[str, list[_Chunk]] = {}
        for split, parts in chunks.items():
            cache[split] = []
            for xb, _ in parts:
                inp = self._layer_input(xb)
                outs = [self._linear_part(inp, w) for w in weights]
                total += sum(o.numel() * o.element_size() for o in outs)
                if total > budget_bytes:
                    return False
                # one (K+1, M) block per chunk, laid out in memory as the real layer's output is: the rest of
                # the network then gets the memory format it was tuned for (a 1-channel input makes NCHW and
                # channels_last ambiguous, and max-pooling NCHW maps is ~12x slower here than channels_last)
                perm = _memory_order(self.layer(inp))
                stacked = torch.stack([o.permute(perm).reshape(-1) for o in outs])
                cache[split].append((stacked, tuple(outs[0].permute(perm).shape), _inverse(perm)))
        self.cache, self.active = cache, True
        return True

    def release(self) -> None:
        self.cache, self.active = {}, False

    def forward(self, split: str, index: int, coefficients: torch.Tensor) -> torch.Tensor:
        """The network's output on chunk ``index`` of ``split`` at θ0 + Σ c_k d_k (parameters already loaded)."""
        stacked, shape, inv = self.cache[split][index]
        coef = coefficients.to(stacked.dtype)
        h = torch.mv(stacked.T, coef).view(shape).permute(inv)  # C0 + Σ c_k D_k in one pass
        ch = 1 if h.dim() > 2 else -1
        view = [1] * h.dim()
        view[ch] = -1
        bn, folded_bias = self.bn, self.layer.bias
        if bn is not None:  # folded BN: s·(conv without bias) + folded bias; the folded module holds both
            if bn.running_var is None or folded_bias is None:
                raise RuntimeError("a folded BatchNorm needs its running variance and the folded layer's bias")
            s = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                s = s * bn.weight
            h.mul_(s.view(view)).add_(folded_bias.view(view))
        elif self.raw_layer.bias is not None:
            h.add_(self.raw_layer.bias.view(view))
        return self.tail(h)


def _memory_order(t: torch.Tensor) -> tuple[int, ...]:
    """Dimension order of ``t`` from outermost to innermost in memory (so permute+reshape copies nothing)."""
    return tuple(sorted(range(t.dim()), key=lambda d: (-t.stride(d), -t.shape[d])))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)
