"""Mode connectivity up to permutation: permutation specs traced from a model, weight and activation
matching (Ainsworth et al. 2023), REPAIR (Jordan et al. 2023) and the loss barrier (Entezari et al. 2022).

No Hydra, Lightning or W&B here: jobs call :func:`align.align_models` and the functions below.
"""

from .apply import identity_perms, interpolate_state, permute_state, random_perms, state_distance
from .barrier import barrier
from .spec import Axis, PermutationSpec, UnsupportedModel, derive_spec

__all__ = [
    "Axis",
    "PermutationSpec",
    "UnsupportedModel",
    "barrier",
    "derive_spec",
    "identity_perms",
    "interpolate_state",
    "permute_state",
    "random_perms",
    "state_distance",
]
