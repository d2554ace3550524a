"""``python -m lsx.cli.docs [--check]``: generate the job reference ``docs/jobs.md`` (``make docs``).

Why generated: a hand-written list of every job's keys and defaults goes stale the day someone adds
a key. This page is written from what the code reads: each job's config ``conf/analysis/<job>.yaml``
(keys, defaults as written, their comments) and its module's docstring (``lsx/jobs/registry.py``
maps job names to modules), plus the presets whose defaults select the job. ``--check`` exits 1 when
the committed page differs from a fresh generation (``tests/test_docs.py`` checks the same).
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
            return rest[:i].strip(), rest[i + 1:].strip()
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
        lines += [f"| key (`analysis.…`) | default | meaning |", "|---|---|---|"]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsx.cli.docs", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=PAGE, help="where to write the page (default: docs/jobs.md)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the page differs from a fresh generation")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'stale: run `make docs`'}")
        return 0 if same else 1
    from lsx.utils.io import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out} ({len(jobs())} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
