"""``python -m lsx.reproduce [preset ...] [scale=cpu] [seeds=N] [override ...]``: run presets' claims (implementation: :mod:`lsx.cli.reproduce`)."""
from lsx.cli.reproduce import cli

if __name__ == "__main__":
    cli()
