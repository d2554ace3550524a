"""``python -m lsx.aggregate <sweep_dir> [--x optimizer.lr] [--y metrics.width_mean] [--wandb]``
(implementation: :mod:`lsx.cli.aggregate`)."""

from lsx.cli.aggregate import cli

if __name__ == "__main__":
    cli()
