"""Exceptions that the command line turns into one line, importable without torch or Lightning.

Why here: the checks that run before Hydra (``lsx.cli.checks``) must stay light — a cache hit must not
pay for importing Lightning — yet they catch errors raised deep in the data code.
"""

from __future__ import annotations


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be loaded here; the message says how to get it."""
