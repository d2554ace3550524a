"""The values of ``analysis.align`` — the one definition the command line's validation and the jobs share.

Why a module of its own: ``lsx.cli.validate`` checks ``analysis.align`` before anything is trained, and
importing ``align.py`` for it would load scipy's optimizers (~0.4 s); this module imports nothing (its
package imports torch, which validation has loaded by then).
"""

from __future__ import annotations

from typing import Any

ALIGN_METHODS = ("none", "weight", "activation")


def check_align(method: Any) -> str:
    """``analysis.align`` as a method name (null means ``none``); one line naming the valid ones otherwise."""
    if method is None:
        return "none"
    if method not in ALIGN_METHODS:
        raise ValueError(f"analysis.align={method!r}; valid: {', '.join(ALIGN_METHODS)}")
    return str(method)
