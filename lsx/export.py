"""``python -m lsx.export <job_dir> --format vts|vtp|csv [--log]`` (implementation: :mod:`lsx.cli.export`)."""

from lsx.cli.export import cli

if __name__ == "__main__":
    cli()
