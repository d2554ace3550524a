"""``python -m lsx.train [overrides]``: train one model (cached by config hash, resumable)
(implementation: :mod:`lsx.cli.train`)."""

from lsx.cli.train import cli

if __name__ == "__main__":
    cli()
