"""Copy benchmark tables into docs/benchmarks.md: every ``<!-- bench:NAME -->`` … ``<!-- /bench:NAME -->`` block.

Why: published benchmark numbers are only ever what a benchmark printed, never typed by hand. Each benchmark
prints its markdown between such markers; this script replaces the page's block of the same name with it.

Usage: ``python benchmarks/bench_surface.py | tee bench_surface.md; python benchmarks/update_readme.py bench_surface.md``
(several files, or ``-`` for stdin; ``--readme PATH`` for another file than docs/benchmarks.md). Blocks of the same name from
several files (e.g. one run per ``--only`` case) are concatenated in the order given.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BLOCK = re.compile(r"<!-- bench:([\w-]+) -->\n.*?<!-- /bench:\1 -->", re.S)


def blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in BLOCK.finditer(text)}


def replace_blocks(readme: str, new: dict[str, str]) -> str:
    """The README with each named block replaced; ValueError names a block the README has no markers for."""
    have = blocks(readme)
    missing = sorted(set(new) - set(have))
    if missing:
        raise ValueError(
            f"the page has no <!-- bench:{missing[0]} --> … <!-- /bench:{missing[0]} --> block; "
            f"it has: {', '.join(sorted(have)) or 'none'}"
        )
    return BLOCK.sub(lambda m: new.get(m.group(1), m.group(0)), readme)


def concatenate(first: str, second: str) -> str:
    """One block holding both blocks' contents (first, a blank line, then second)."""
    head, *body1 = first.splitlines()
    body1 = body1[:-1]
    body2 = second.splitlines()[1:-1]
    return "\n".join([head, *body1, "", *body2, first.splitlines()[-1]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", nargs="+", help="benchmark output files ('-' for stdin)")
    ap.add_argument("--readme", default=str(PAGE), help="the page holding the blocks (default: docs/benchmarks.md)")
    args = ap.parse_args()
    new: dict[str, str] = {}
    for name in args.outputs:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        found = blocks(text)
        if not found:
            sys.exit(f"error: no <!-- bench:NAME --> block in {name}")
        for key, block in found.items():
            new[key] = concatenate(new[key], block) if key in new else block
    path = Path(args.readme)
    try:
        text = replace_blocks(path.read_text(), new)
    except ValueError as err:
        sys.exit(f"error: {err}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"updated {', '.join(sorted(new))} in {path}")


if __name__ == "__main__":
    main()
