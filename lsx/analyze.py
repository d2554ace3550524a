"""``python -m lsx.analyze analysis=<job> [experiment=...] [scale=cpu]``: run one analysis job
(implementation: :mod:`lsx.cli.analyze`)."""

from lsx.cli.analyze import cli

if __name__ == "__main__":
    cli()
