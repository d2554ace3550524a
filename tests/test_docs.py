"""The docs stay true: generated pages are current, every relative link resolves, every command shown composes.

Commands are composed in-process (``lsx.config.compose_config`` and the pre-Hydra checks of ``lsx.cli.checks``,
what ``--cfg job`` does without printing), so the whole file runs in seconds.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lsx.cli import docs as docs_gen

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"(?:^|\s)-m\s+lsx\.(train|analyze)(?:\s|$)")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…|\[[a-z]")  # <job>, [overrides], "..."
MAX_SWEEP_POINTS = 2


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (duplicates numbered as GitHub does)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if not m:
            continue
        s = slug(m.group(1))
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return out


def links(page: Path) -> list[str]:
    """Relative link targets of a page, outside code blocks and code spans."""
    text = INLINE_CODE.sub("x", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def shown_commands() -> list[tuple[str, str, str, list[str]]]:
    """(page, line, entry, overrides) of every ``python -m lsx.train|analyze`` command in a fenced block or
    a code span; lines with placeholders (``<job>``, ``[overrides]``, ``...``) are left out, and so is the
    generated docs/jobs.md (its ``analysis=<job>`` lines come from the registry and link to existing configs), and
    commands that read a user's own ``--config-dir``."""
    out = []
    for page in PAGES:
        if page == ROOT / "docs" / "jobs.md":
            continue
        text = page.read_text()
        candidates = [ln for block in FENCE.findall(text) for ln in block.splitlines()[1:-1]]
        candidates += [span.strip("`") for span in INLINE_CODE.findall(FENCE.sub("", text))]
        for line in candidates:
            line = line.strip().removeprefix("$ ")
            m = COMMAND.search(line)
            if not m or PLACEHOLDER.search(line) or "--config-dir" in line:
                continue  # a user's own config directory (docs/byo.md; tests/test_byo.py runs that example as written)
            tokens = shlex.split(line[m.end(1) :], comments=True)
            out.append((_page_id(page), line, m.group(1), tokens))
    return out


def test_generated_pages_are_current():
    """docs/jobs.md and the preset list equal a fresh generation (run `make docs` after changing a job or preset)."""
    assert (ROOT / "docs" / "jobs.md").read_text() == docs_gen.render(), "docs/jobs.md is stale: run `make docs`"
    presets = (ROOT / "docs" / "presets.md").read_text()
    assert docs_gen.render_presets_page(presets) == presets, "docs/presets.md's preset list is stale: run `make docs`"
    assert docs_gen.main(["--check"]) == 0


def test_job_reference_covers_every_job_and_key():
    page = (ROOT / "docs" / "jobs.md").read_text()
    for name in docs_gen.jobs():
        assert f"## `{name}`" in page
    _, keys = docs_gen.parse_job_config((ROOT / "conf" / "analysis" / "surface2d.yaml").read_text())
    by_path = {k.path: k for k in keys}
    assert by_path["norm"].default == "filter" and "layer" in by_path["norm"].comment
    assert by_path["convexity.hessian_every"].default == "5" and "job" not in by_path


def test_config_parser_reads_comments_and_block_lists():
    header, keys = docs_gen.parse_job_config(
        "# what the job does\njob: x\n# a note on a\na: 1  # the a\nlist:\n  - {k: 1}\n  - {k: 2}\nsub:\n  b: '#x'  # the b\n"
        "# trailing note\n"
    )
    by_path = {k.path: k for k in keys}
    assert header == "what the job does"
    assert by_path["a"].comment == "a note on a the a"
    assert by_path["list"].default == "[{k: 1}, {k: 2}]"
    assert by_path["sub.b"].default == "'#x'" and by_path["sub.b"].comment == "the b trailing note"


def test_slugs_follow_github():
    assert slug("Faults, provenance and sharing") == "faults-provenance-and-sharing"
    assert slug("Sharded evaluation (`make bench-scaling`)") == "sharded-evaluation-make-bench-scaling"
    assert slug("`surface_kinds`") == "surface_kinds"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve(page):
    """Every relative link points at a file of this repository, and its #anchor at a heading of that page."""
    bad = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if ROOT not in dest.parents and dest != ROOT:
            bad.append(f"{target}: outside the repository (the repo must explain itself)")
        elif not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{_page_id(page)}: " + "; ".join(bad)


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert "make test" in text  # .ci/run runs the README's test command
    assert "../shared" not in text
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlinked = [_page_id(p) for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages not linked from README.md's documentation table: {unlinked}"
    prose = re.sub(r"<!-- (results|presets):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)
    assert len(prose.splitlines()) < 150, "README.md is a front page: move reference material to docs/"


def test_commands_are_found():
    found = shown_commands()
    entries = {e for _, _, e, _ in found}
    assert len(found) >= 20 and entries == {"train", "analyze"}
    assert any(page == "README.md" for page, *_ in found)


def test_shown_commands_compose():
    """Each command shown composes as `--cfg job` would: known keys, existing groups and scales, and (where the
    machine can run it) values that pass validation."""
    from contextlib import nullcontext

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lsx.cli import resolvers  # noqa: F401  (the config's own resolvers)
    from lsx.cli.checks import _overrides, unknown_key_message
    from lsx.cli.validate import validate_config
    from lsx.config import CONF_DIR, compose_config, sweep_points, to_container
    from lsx.utils.errors import DatasetUnavailable

    bad, seen = [], set()
    initialized = GlobalHydra.instance().is_initialized()
    hydra_ctx = nullcontext() if initialized else initialize_config_dir(str(CONF_DIR), version_base="1.3")
    with hydra_ctx:  # one Hydra initialization for every command (compose_config reuses it)
        for page, line, entry, argv in shown_commands():
            if (entry, tuple(argv)) in seen:
                continue
            seen.add((entry, tuple(argv)))
            multirun = any(a in ("-m", "--multirun") for a in argv)
            for point in sweep_points(_overrides(argv), multirun, limit=MAX_SWEEP_POINTS):
                point = [o for o in point if not o.startswith(("hydra/launcher=", "hydra."))]
                try:
                    c = to_container(compose_config(point))
                    c.pop("hydra", None)
                    validate_config(c)
                    if entry == "analyze" and not c.get("analysis"):
                        bad.append(f"{page}: {line!r}: no analysis= (lsx.analyze refuses it)")
                except DatasetUnavailable:
                    pass  # a torchvision data set on a machine without torchvision: composes, runs elsewhere
                except ValueError as err:
                    if "GPU" not in str(err):  # trainer=gpu/ddp composes; it runs where a GPU is visible
                        bad.append(f"{page}: {line!r}: {err}")
                except Exception as err:  # noqa: BLE001  (Hydra's errors: an unknown key, a bad group choice)
                    why = unknown_key_message(argv) or f"{type(err).__name__}: {str(err).splitlines()[0]}"
                    bad.append(f"{page}: {line!r}: {why}")
    assert not bad, "\n".join(bad)


def test_reproduce_commands_name_presets():
    presets = {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    bad = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            for m in re.finditer(r"-m lsx\.reproduce((?: [a-z][^\s`]*)+)", line):  # hydra/launcher=x: an option
                names = [t for t in m.group(1).split() if "=" not in t]
                bad += [f"{_page_id(page)}: {n}" for n in names if n not in presets]
    assert not bad, f"lsx.reproduce commands naming no preset: {bad}"
