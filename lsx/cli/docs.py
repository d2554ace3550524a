"""``python -m lsx.cli.docs [--check]``: generate the job reference ``docs/jobs.md`` and the preset list (``make docs``).

Why generated: a hand-written list of every job's keys and defaults goes stale the day someone adds
a key. This page is written from what the code reads: each job's config ``conf/analysis/<job>.yaml``
(keys, defaults as written, their comments) and its module's docstring (``lsx/jobs/registry.py``
maps job names to modules), plus the presets whose defaults select the job. The list of presets in
``docs/presets.md`` (between ``<!-- preset-list:begin -->`` and ``<!-- preset-list:end -->``) is written
from ``conf/experiment/*.yaml`` the same way. ``--check`` exits 1 when a committed page differs from a
fresh generation (``tests/test_docs.py`` checks the same).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lsx.config import CONF_DIR

ROOT = CONF_DIR.parent
PAGE = ROOT / "docs" / "jobs.md"
PRESETS_PAGE = ROOT / "docs" / "presets.md"
PRESET_MARKERS = ("<!-- preset-list:begin -->", "<!-- preset-list:end -->")
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")
_COMMENT = re.compile(r"(^|\s)#\s?(?P<text>.*)$")


@dataclass
class Key:
    """One documented config key: its dotted path, its default as written in the YAML, and its comment."""

    path: str
    default: str
    comment: str


def _split_comment(rest: str) -> tuple[str, str]:
    """``value  # comment`` → (value, comment); a ``#`` inside quotes is part of the value."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1 :].strip()
    return rest.strip(), ""


def _flow(value: Any) -> str:
    """A parsed value in one line of YAML flow style (for block lists, whose text spans several lines)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6).strip()


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def parse_job_config(text: str) -> tuple[str, list[Key]]:
    """(header comment, documented keys) of one ``conf/analysis/*.yaml``; ``job`` itself is left out.

    Comment-only lines before the first key are the header; later ones belong to the next key (or to the
    last key when nothing follows). Keys of block mappings are dotted (``convexity.enabled``).
    """
    data = yaml.safe_load(text) or {}
    header: list[str] = []
    keys: list[Key] = []
    pending: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing block mappings
    seen_key = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("- "):
            continue  # blank, or an item of a block list (its value is read from the parsed YAML)
        if stripped.startswith("#"):
            (pending if seen_key else header).append(stripped.lstrip("#").strip())
            continue
        m = _KEY.match(line)
        if not m:
            continue
        seen_key = True
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = _split_comment(m.group("rest"))
        path = [k for _, k in stack] + [m.group("key")]
        parsed = _lookup(data, path)
        note = " ".join([*pending, comment]).strip()
        pending = []
        if not value and isinstance(parsed, dict):
            stack.append((indent, m.group("key")))  # a block mapping: its children are the rows
            if note:
                keys.append(Key(".".join(path), "", note))
            continue
        if path == ["job"]:
            continue
        keys.append(Key(".".join(path), value if value else _flow(parsed), note))
    if pending and keys:
        keys[-1].comment = " ".join([keys[-1].comment, *pending]).strip()
    return " ".join(header).strip(), keys


def module_docstring(module: str) -> str:
    """The docstring of ``lsx.jobs.x`` read from its source (no import: a job's module pulls in plots and numerics)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def _markdown(doc: str) -> str:
    """reST inline markup of the docstrings → Markdown (``x`` and :func:`x` → `x`)."""
    doc = re.sub(r":(?:func|class|mod|meth|data|attr):`~?([^`]+)`", r"`\1`", doc)
    return doc.replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def presets_by_job() -> dict[str, list[str]]:
    """Job name → the presets in ``conf/experiment`` whose defaults select it (``override /analysis: <job>``)."""
    out: dict[str, list[str]] = {}
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults") or []:
            if isinstance(entry, dict) and entry.get("override /analysis"):
                out.setdefault(entry["override /analysis"], []).append(path.stem)
    return out


def jobs() -> dict[str, str]:
    """Job name → module, as ``lsx/jobs/registry.py`` declares them (read from its source: importing it pulls in torch)."""
    tree = ast.parse((ROOT / "lsx" / "jobs" / "registry.py").read_text())
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "declare":
            name, module = (ast.literal_eval(a) for a in node.args[:2])
            out[name] = module
    return out


def job_section(name: str, module: str, presets: list[str]) -> str:
    cfg_path = CONF_DIR / "analysis" / f"{name}.yaml"
    header, keys = parse_job_config(cfg_path.read_text()) if cfg_path.is_file() else ("", [])
    src = module.replace(".", "/") + ".py"
    lines = [f"## `{name}`", ""]
    if header:
        lines += [_markdown(header), ""]
    doc = _markdown(module_docstring(module))
    if doc:
        lines += [doc, ""]
    lines.append(f"- Run: `python -m lsx.analyze analysis={name}`")
    lines.append(f"- Code: [`{src}`](../{src}); config: [`conf/analysis/{name}.yaml`](../conf/analysis/{name}.yaml)")
    if presets:
        lines.append("- Presets that run it: " + ", ".join(f"`experiment={p}`" for p in presets))
    lines.append("")
    if keys:
        lines += ["| key (`analysis.…`) | default | meaning |", "|---|---|---|"]
        for k in keys:
            default = f"`{_cell(k.default)}`" if k.default else ""
            lines.append(f"| `{k.path}` | {default} | {_cell(k.comment)} |")
    else:
        lines.append("No options of its own (it reads the top-level config: model, data, optimizer, training, `optima.seeds`).")
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole ``docs/jobs.md`` page."""
    table = jobs()
    presets = presets_by_job()
    names = sorted(table)
    head = [
        "# Analysis job reference",
        "",
        "<!-- generated by `python -m lsx.cli.docs` (make docs) from conf/analysis/*.yaml and the job modules' "
        "docstrings; do not edit -->",
        "",
        "Every job runs as `python -m lsx.analyze analysis=<job> [experiment=<preset>] [scale=cpu] [overrides]`; "
        "its keys are set as `analysis.<key>=<value>`. Defaults are shown as written in the job's config "
        "(`${seed}` is the top-level `seed`). What a job writes and how it resumes: [analyses.md](analyses.md).",
        "",
        "| job | module | presets |",
        "|---|---|---|",
    ]
    for n in names:
        head.append(f"| [`{n}`](#{n}) | `{table[n]}` | {', '.join(f'`{p}`' for p in presets.get(n, []))} |")
    body = [job_section(n, table[n], presets.get(n, [])) for n in names]
    return "\n".join(head) + "\n\n" + "\n".join(body)


def _preset_summary(text: str) -> str:
    """The first line of a preset's header comment (after ``# @package``), without a trailing dash or comma."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") and "@package" not in line:
            return line.lstrip("#").strip().rstrip("—-,;").strip()
        if line and not line.startswith("#"):
            break
    return ""


def presets_block() -> str:
    """The table of presets (job, scales, unit, claims), read from ``conf/experiment/*.yaml``."""
    rows = ["| preset | what it targets (the preset's header) | job | scales | unit | claims |", "|---|---|---|---|---|---|"]
    by_job = {p: j for j, ps in presets_by_job().items() for p in ps}
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        text = path.read_text()
        cfg = yaml.safe_load(text) or {}
        unit = (cfg.get("reproduce") or {}).get("unit") or {}
        unit_text = unit.get("what") or (f"`{unit['key']}`" if unit.get("key") else "")
        claims = [c.get("id", "?") for c in cfg.get("claims") or []]
        job = by_job.get(path.stem, "")
        scales = ", ".join(["paper", *(cfg.get("scales") or {})])
        rows.append(
            f"| [`{path.stem}`](../conf/experiment/{path.name}) | {_cell(_preset_summary(text))} | "
            + (f"[`{job}`](jobs.md#{job})" if job else "")
            + f" | {scales} | {_cell(str(unit_text))} | "
            + (f"{len(claims)}: " + ", ".join(f"`{c}`" for c in claims) if claims else "none")
            + " |"
        )
    return "\n".join(rows) + "\n"


def render_presets_page(text: str) -> str:
    """``text`` (docs/presets.md) with its preset-list block regenerated; ValueError without the markers."""
    begin, end = PRESET_MARKERS
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{PRESETS_PAGE} has no {begin} ... {end} block")
    note = "<!-- generated by `python -m lsx.cli.docs` (make docs) from conf/experiment/*.yaml; do not edit -->"
    return pattern.sub(lambda _: f"{begin}\n{note}\n\n{presets_block()}{end}", text, count=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsx.cli.docs", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=PAGE, help="where to write the job reference (default: docs/jobs.md)")
    ap.add_argument("--presets", type=Path, default=PRESETS_PAGE, help="the page with the preset list (default: docs/presets.md)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a page differs from a fresh generation")
    args = ap.parse_args(argv)
    try:
        pages = {args.out: render(), args.presets: render_presets_page(args.presets.read_text())}
    except (OSError, ValueError) as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    if args.check:
        stale = [p for p, text in pages.items() if not (p.is_file() and p.read_text() == text)]
        for p in pages:
            print(f"{p}: {'stale: run `make docs`' if p in stale else 'up to date'}")
        return 1 if stale else 0
    from lsx.utils.io import atomic_write_text

    for path, text in pages.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
