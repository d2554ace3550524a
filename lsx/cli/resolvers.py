"""OmegaConf resolvers used by the Hydra configs (registered on import of the entry points)."""

from __future__ import annotations

import os
import uuid

from omegaconf import OmegaConf

from lsx.utils import shape_resolver  # noqa: F401  (registers ${shape:KEY}: the data's shape in a model._target_ config)

# one id per launching process: run/sweep directories of concurrent launches never collide,
# even when started in the same microsecond on different machines of a cluster
_UID = f"{os.getpid() % 100000:05d}{uuid.uuid4().hex[:4]}"

if not OmegaConf.has_resolver("lsx_uid"):
    OmegaConf.register_new_resolver("lsx_uid", lambda: _UID)
