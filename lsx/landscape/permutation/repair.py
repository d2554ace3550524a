"""REPAIR (Jordan et al. 2023): renormalize the interpolated network's pre-activations.

Interpolating two aligned networks shrinks the variance of hidden units ("variance collapse"). REPAIR
gives every hidden pre-activation unit of the network at α the statistics interpolated from the
endpoints': mean (1−α)μ_a + αμ_b and std (1−α)σ_a + ασ_b, measured on a fixed input set. The rescale
y ← σ_t/σ·(y − μ) + μ_t is folded into the layer that produces y (the Linear/Conv weights and bias,
or the affine parameters of the norm layer right after it), so the repaired network is an ordinary
network. Layers are repaired in graph order within one pass over the inputs, each measured after the
layers before it are repaired, so every unit ends with exactly its target statistics on those inputs.

BatchNorm "reset" (re-estimating running statistics at α, Jordan et al.'s RESET) is
``lsx.landscape.engine.bn_policy.reestimate_bn``; a model in eval mode is repaired as it evaluates.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.fx
from torch import nn
from torch.nn.modules.conv import _ConvNd

from .activations import unit_stats, units
from .spec import NORMS, PermutationSpec, UnsupportedModel, trace

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def preact_stats(model: nn.Module, spec: PermutationSpec, inputs: torch.Tensor, batch_size: int | None = None) -> Stats:
    """(mean, std) of every hidden pre-activation unit REPAIR acts on."""
    return unit_stats(model, [n for n, _, _ in spec.preact], inputs, batch_size)


def target_stats(stats_a: Stats, stats_b: Stats, alpha: float) -> Stats:
    """The endpoints' statistics interpolated at α (b's in a's unit order: measure b after aligning it)."""
    a = float(alpha)
    return {k: ((1 - a) * ma + a * stats_b[k][0], (1 - a) * sa + a * stats_b[k][1]) for k, (ma, sa) in stats_a.items()}


@torch.no_grad()
def repair(model: nn.Module, spec: PermutationSpec, targets: Stats, inputs: torch.Tensor, eps: float = 1e-5) -> nn.Module:
    """Fold REPAIR's rescale into ``model`` in place (eval mode) so its pre-activations match ``targets``."""
    if not spec.preact:
        raise UnsupportedModel(f"{type(model).__name__} has no hidden Linear/Conv with a bias or norm layer to rescale")
    model.eval()
    gm = trace(model)
    modules = dict(gm.named_modules())
    sites = {n: mod for n, mod, _ in spec.preact}
    used = [mod for mod in sites.values()]
    if len(set(used)) != len(used):
        raise UnsupportedModel("a module REPAIR rescales is called more than once in the forward pass")

    class _Repairing(torch.fx.Interpreter):
        def run_node(self, node: torch.fx.Node):
            out = super().run_node(node)
            if node.name not in sites:
                return out
            u = units(out).double()
            mean, std = u.mean(0), u.std(0, unbiased=False)
            t_mean, t_std = (v.double() for v in targets[node.name])
            scale = t_std / (std + eps)
            shift = t_mean - scale * mean
            _fold(modules[sites[node.name]], scale, shift)
            shape = (1, -1) + (1,) * (out.dim() - 2)
            return out * scale.to(out.dtype).view(shape) + shift.to(out.dtype).view(shape)

    _Repairing(gm).run(inputs)
    return model


def _fold(m: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """y ← scale·y + shift for the module's output channels, written into its parameters."""
    if isinstance(m, NORMS):
        if m.weight is None or m.bias is None:
            raise UnsupportedModel(f"{type(m).__name__} has no affine parameters to fold REPAIR's rescale into")
        m.weight.mul_(scale.to(m.weight.dtype))
        m.bias.mul_(scale.to(m.bias.dtype)).add_(shift.to(m.bias.dtype))
        return
    # the other sites spec.preact names are Linear/Conv layers with a bias
    if not isinstance(m, (nn.Linear, _ConvNd)) or m.bias is None:
        raise UnsupportedModel(f"{type(m).__name__} is neither a norm layer nor a Linear/Conv with a bias to fold REPAIR into")
    view = (-1,) + (1,) * (m.weight.dim() - 1)
    m.weight.mul_(scale.to(m.weight.dtype).view(view))
    m.bias.mul_(scale.to(m.bias.dtype)).add_(shift.to(m.bias.dtype))


def repaired_state(
    model: nn.Module, spec: PermutationSpec, state: Mapping[str, torch.Tensor], targets: Stats, inputs: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The REPAIRed version of ``state`` (loaded into ``model``, which is left holding it)."""
    model.load_state_dict(state)
    repair(model, spec, targets, inputs)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
