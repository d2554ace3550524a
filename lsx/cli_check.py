"""Check command-line overrides before Hydra runs, so an unknown key lists the valid ones.

Hydra reports a misspelt key as "Key 'epochz' is not in struct"; researchers want to see
what the valid keys at that level are. Group choices (model=..., data=...) are left to
Hydra, whose message already lists the available options.
"""
from __future__ import annotations

import sys

from omegaconf import OmegaConf


def unknown_key_message(argv: list[str]) -> str | None:
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    dotted = [a.split("=", 1)[0] for a in args if "." in a.split("=", 1)[0]]
    dotted = [k for k in dotted if not k.startswith(("+", "~", "++", "hydra."))]
    if not dotted:
        return None
    groups = [a for a in args if "." not in a.split("=", 1)[0] and not a.startswith(("+", "~"))]
    from lsx.config import _compose

    try:
        cfg = _compose(groups)
    except Exception:  # let Hydra itself report bad group choices
        return None
    for key in dotted:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if node is None:
            top = ", ".join(k for k in cfg.keys() if k != "hydra")
            return f"unknown key {key!r}: no config node {parent!r}; valid top-level keys: {top}"
        if OmegaConf.is_dict(node) and leaf not in node:
            return f"unknown key {key!r}; valid keys under {parent!r}: {', '.join(str(k) for k in node.keys())}"
    return None


def exit_on_unknown_keys(argv: list[str] | None = None) -> None:
    msg = unknown_key_message(list(sys.argv[1:] if argv is None else argv))
    if msg:
        print(f"lsx: error: {msg}", file=sys.stderr)
        sys.exit(2)
