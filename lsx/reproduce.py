"""``python -m lsx.reproduce [preset ...] [seeds=10-15] [replication=16-21] [jobs=N | hydra/launcher=NAME] [override ...]``:
run presets' claims (implementation: :mod:`lsx.cli.reproduce`; through a Hydra launcher: :mod:`lsx.cli.reproduce_launch`)."""

from lsx.cli.reproduce import cli

if __name__ == "__main__":
    cli()
