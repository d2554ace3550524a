"""``python -m lsx.claims.compare A B``: which verdicts moved between two reproduction reports.

A verdict deserves trust when it does not move with what should not matter: the torch thread count
(``lsx.reproduce threads=2``), the worker schedule (``jobs=``), another disjoint seed set (``seeds=``,
``replication=``), a code change that should leave results alone. Each report already decides every claim on
two disjoint unit sets; this compares two whole reports claim by claim — headline and per-set verdicts, each
set's estimate and interval — and says what differed in how they were computed (code, torch, threads,
seeds, the thread counts the jobs themselves record). Claims present in one report only are listed.
``--strict`` exits 1 when a headline moved; ``--json`` writes the comparison as a *check* that the README's
results block shows beside each verdict (``lsx.claims.readme``: does it hold under what B changed?);
``--extend CHECK`` adds another run's claims to a committed check.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from lsx.utils.io import atomic_write_text

SETS = ("discovery", "replication")


def load_report(path: str | Path) -> dict[str, Any]:
    """A report.json, or a directory holding one (``outputs/reproduce``, ``docs/reproduce``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise ValueError(f"{path}: no report.json (give a report.json or the directory lsx.reproduce wrote it into)")
    try:
        report = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not a JSON report ({err})") from None
    if not isinstance(report, dict) or "presets" not in report:
        raise ValueError(f"{p}: not an lsx.reproduce report (no 'presets')")
    return report


def _claims(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["preset"], c["id"]): c for s in report["presets"] for c in s.get("claims", [])}


def _estimate(claim: dict[str, Any], name: str) -> dict[str, Any]:
    return ((claim.get("sets") or {}).get(name) or {}).get("estimate") or {}


def _set_verdict(claim: dict[str, Any], name: str) -> str | None:
    return ((claim.get("sets") or {}).get(name) or {}).get("verdict")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _fmt(v: Any) -> str:
    x = _num(v)
    return "–" if x is None else f"{x:.4g}"


def _shift(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """How far B's estimate moved, in A's interval widths (B's where A's interval is a point, e.g. six units
    of ρ = 1; None when either lacks an interval)."""
    va, vb, lo, hi = (_num(a.get("value")), _num(b.get("value")), _num(a.get("lo")), _num(a.get("hi")))
    if va is None or vb is None or lo is None or hi is None:
        return None
    width = hi - lo
    if width <= 0:
        blo, bhi = _num(b.get("lo")), _num(b.get("hi"))
        width = bhi - blo if blo is not None and bhi is not None else 0.0
    return abs(vb - va) / width if width > 0 else (0.0 if vb == va else math.inf)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Claim by claim: headline and set verdicts of both reports, each set's estimate and how far it moved."""
    ca, cb = _claims(a), _claims(b)
    rows = []
    for key in sorted(set(ca) & set(cb)):
        x, y = ca[key], cb[key]
        row: dict[str, Any] = {"preset": key[0], "claim": key[1], "headline": (x.get("verdict"), y.get("verdict"))}
        for name in SETS:
            ea, eb = _estimate(x, name), _estimate(y, name)
            row[name] = {
                "verdict": (_set_verdict(x, name), _set_verdict(y, name)),
                "value": (_num(ea.get("value")), _num(eb.get("value"))),
                "interval": ((_num(ea.get("lo")), _num(ea.get("hi"))), (_num(eb.get("lo")), _num(eb.get("hi")))),
                "shift": _shift(ea, eb),
            }
        row["headline_moved"] = row["headline"][0] != row["headline"][1]
        row["set_moved"] = any(row[n]["verdict"][0] != row[n]["verdict"][1] for n in SETS)
        rows.append(row)
    return {
        "rows": rows,
        "only_a": sorted(set(ca) - set(cb)),
        "only_b": sorted(set(cb) - set(ca)),
        "headline_moved": sum(r["headline_moved"] for r in rows),
        "set_moved": sum(r["set_moved"] for r in rows),
        "differences": environment_differences(a, b),
    }


def _provenance(report: dict[str, Any]) -> dict[str, Any]:
    env = report.get("environment") or {}
    seeds = {s["preset"]: s.get("seeds") for s in report["presets"]}
    job_threads = {s["preset"]: s.get("job_torch_threads") for s in report["presets"]}  # what computed the jobs
    return {
        "code": report.get("code_version"),
        "torch": env.get("torch"),
        "torch threads per job": env.get("torch_threads"),
        "workers": env.get("jobs"),
        "cpu": env.get("cpu"),
        "seeds": seeds,
        "jobs' torch threads": job_threads,
        "command": report.get("command"),
    }


def environment_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(what, A's, B's) for every provenance field that differs; seeds per preset."""
    pa, pb = _provenance(a), _provenance(b)
    out = []
    for k in pa:
        if k in ("seeds", "jobs' torch threads"):  # per preset both ran (the others are listed as such)
            for preset in sorted(set(pa[k]) & set(pb[k])):
                if pa[k].get(preset) != pb[k].get(preset):
                    out.append((f"{k} of {preset}", pa[k].get(preset), pb[k].get(preset)))
        elif pa[k] != pb[k]:
            out.append((k, pa[k], pb[k]))
    return out


def identity(report: dict[str, Any]) -> dict[str, Any]:
    """What names a report: a check compares against exactly this one (the README ignores a check of another)."""
    return {k: report.get(k) for k in ("code_version", "generated_at", "command")}


def to_json(result: dict[str, Any], a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str, label: str) -> str:
    """The comparison as a committed *check*: which headlines held when B reran A's claims (``label`` says
    what B changed, e.g. "2 torch threads"); ``lsx.claims.readme`` reads ``docs/reproduce/checks/*.json``."""
    doc = {"label": label, "a": {"name": name_a, **identity(a)}, "b": {"name": name_b, **identity(b)}, **result}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def extend(check: dict[str, Any], result: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """A committed check (``--json``) with one more rerun's claims added: the comparison of the same
    published report A against another run B on claims the check does not hold yet.

    Why: one check may take several runs (presets that need other seeds, a run done later whose
    predecessor's outputs are gone); each report's identity is kept in ``b_runs``. The result has
    ``compare``'s fields, so ``to_markdown`` and ``to_json`` render it as one comparison."""
    ident = identity(a)
    if {k: check.get("a", {}).get(k) for k in ident} != ident:
        raise ValueError(
            f"--extend: the check compares the report of {check.get('a', {}).get('generated_at')} "
            f"(code {check.get('a', {}).get('code_version')}), not A ({ident['generated_at']}, code {ident['code_version']})"
        )
    have = {(r["preset"], r["claim"]) for r in check["rows"]}
    both = sorted(have & {(r["preset"], r["claim"]) for r in result["rows"]})
    if both:
        shown = ", ".join(f"{p}/{c}" for p, c in both[:3]) + (" ..." if len(both) > 3 else "")
        raise ValueError(
            f"--extend: the check already holds {len(both)} of B's claims ({shown}); leave their presets out with --drop"
        )
    rows = sorted(check["rows"] + result["rows"], key=lambda r: (r["preset"], r["claim"]))
    keys = {(r["preset"], r["claim"]) for r in rows}
    differences = [list(d) for d in check["differences"]]
    differences += [list(d) for d in result["differences"] if list(d) not in differences]
    runs = check.get("b_runs") or [{k: check.get("b", {}).get(k) for k in ident}]
    return {
        "rows": rows,
        "only_a": sorted(k for k in _claims(a) if k not in keys),
        "only_b": sorted({tuple(k) for k in check["only_b"]} | set(result["only_b"])),
        "headline_moved": sum(r["headline_moved"] for r in rows),
        "set_moved": sum(r["set_moved"] for r in rows),
        "differences": differences,
        # a preset one report left out (--drop) that another report holds is not "left out of B"
        "dropped": (dropped := sorted((set(check.get("dropped", [])) | set(result.get("dropped", []))) - {p for p, _ in keys})),
        "dropped_why": {
            p: w for p, w in {**check.get("dropped_why", {}), **result.get("dropped_why", {})}.items() if p in dropped
        },
        "b_runs": runs + [{**identity(b), "kept": list(b.get("kept_from_earlier_runs") or [])}],
    }


def load_check(path: str | Path) -> dict[str, Any]:
    """A check written by ``--json``."""
    try:
        doc = json.loads(Path(path).read_text())
        if not all(k in doc for k in ("a", "b", "rows", "only_b", "differences")):
            raise KeyError("a, b, rows, only_b, differences")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a check written by `lsx.claims.compare --json` ({err})") from None
    return doc


def _arrow(pair: tuple[Any, Any]) -> str:
    x, y = pair
    return f"{x}" if x == y else f"**{x} → {y}**"


def to_markdown(result: dict[str, Any], name_a: str, name_b: str, show_all: bool = False) -> str:
    rows = result["rows"]
    lines = [
        f"# Verdicts: {name_a} (A) against {name_b} (B)",
        "",
        f"{len(rows)} claims in both reports: {result['headline_moved']} headline verdict(s) moved, "
        f"{result['set_moved']} claim(s) with a moved set verdict.",
        "",
    ]
    runs = result.get("b_runs") or []
    if len(runs) > 1:
        lines += [f"B is {len(runs)} reports, each on claims the others did not rerun:", ""]
        for r in runs:
            kept = f" (its last run; {', '.join(r['kept'])} kept from earlier runs into its folder)" if r.get("kept") else ""
            lines.append(f"- code {r.get('code_version')}, {r.get('generated_at')}: `{r.get('command')}`{kept}")
        lines.append("")
    if result["differences"]:
        lines += ["How the reports differ:", ""]
        lines += [f"- {what}: A {va!r}, B {vb!r}" for what, va, vb in result["differences"]]
        lines.append("")
    else:
        lines += ["The reports name the same code, torch, threads, workers, CPU and seeds.", ""]
    if result.get("dropped"):
        why = result.get("dropped_why") or {}
        lines += [f"Left out of B (--drop): {', '.join(p + (f' ({why[p]})' if p in why else '') for p in result['dropped'])}", ""]
    both = {r["preset"] for r in rows}
    for label, keys in (("only in A", result["only_a"]), ("only in B", result["only_b"])):
        whole = sorted({p for p, _ in keys} - both)  # a preset one report did not run: named once
        claims = [f"{p}/{c}" for p, c in keys if p in both]
        if whole:
            lines += [f"Presets {label}: " + ", ".join(whole), ""]
        if claims:
            lines += [f"Claims {label}: " + ", ".join(claims), ""]
    shown = rows if show_all else [r for r in rows if r["headline_moved"] or r["set_moved"]]
    if not shown:
        lines.append("No verdict moved." if rows else "No claim is in both reports.")
    else:
        lines += [
            "Estimates as A → B; shift = |B − A| in widths of A's 95% interval (B's where A's is a point).",
            "",
            "| preset | claim | headline | discovery | estimate (shift) | replication | estimate (shift) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in shown:
            cells = [r["preset"], r["claim"], _arrow(r["headline"])]
            for name in SETS:
                s = r[name]
                shift = "" if s["shift"] is None else f" ({s['shift']:.2f})"
                cells += [_arrow(s["verdict"]), f"{_fmt(s['value'][0])} → {_fmt(s['value'][1])}{shift}"]
            lines.append("| " + " | ".join(cells) + " |")
    shifts = [r[n]["shift"] for r in rows for n in SETS if r[n]["shift"] is not None]
    if shifts:
        lines += ["", f"Largest estimate shift over every claim and set: {max(shifts):.2f} interval widths."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsx.claims.compare", description=__doc__.splitlines()[0])
    ap.add_argument("a", help="report.json (or its directory): the reference")
    ap.add_argument("b", help="report.json (or its directory) to compare with it")
    ap.add_argument("--all", action="store_true", help="list every claim, not only those whose verdicts moved")
    ap.add_argument("--out", help="also write the comparison (markdown) to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a headline verdict moved")
    ap.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"), help="what to call the two reports (default: paths)")
    ap.add_argument(
        "--json",
        metavar="FILE",
        help="also write it as a check (JSON) for the README: docs/reproduce/checks/<name>.json, A = the published report",
    )
    ap.add_argument("--label", help="with --json: what B changed, as the README names it (default: the file's stem)")
    ap.add_argument(
        "--extend",
        metavar="CHECK",
        help="add B's claims to this committed check of the same A (B: another run, e.g. presets rerun later); "
        "--out and --json then write the whole check",
    )
    ap.add_argument(
        "--drop",
        nargs="+",
        default=[],
        metavar="PRESET",
        help="leave these presets of B out (e.g. one whose jobs compute at a fixed thread count, so B did not test them)",
    )
    ap.add_argument(
        "--why",
        metavar="TEXT",
        help="with --drop: why B does not test those presets; the README shows it beside their claims",
    )
    args = ap.parse_args(argv)
    try:
        a, b = load_report(args.a), load_report(args.b)
        if args.why and not args.drop:
            raise ValueError("--why says why presets are left out: name them with --drop")
        unknown = sorted(set(args.drop) - {s["preset"] for s in b["presets"]})
        if unknown:
            raise ValueError(f"--drop {' '.join(unknown)}: not a preset of {args.b}")
        b = dict(b, presets=[s for s in b["presets"] if s["preset"] not in args.drop])
        result = compare(a, b)
        result["dropped"] = sorted(args.drop)
        result["dropped_why"] = {p: args.why.strip() for p in sorted(args.drop)} if args.why else {}
        if args.extend:
            result = extend(load_check(args.extend), result, a, b)
    except ValueError as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    name_a, name_b = args.names or (args.a, args.b)
    text = to_markdown(result, name_a, name_b, args.all)
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    if args.json:
        atomic_write_text(args.json, to_json(result, a, b, name_a, name_b, args.label or Path(args.json).stem))
    return 1 if args.strict and result["headline_moved"] else 0


if __name__ == "__main__":
    sys.exit(main())
