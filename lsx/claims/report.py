"""The reproduction report: ``report.json`` (what the README block is generated from) and a
self-contained ``report.html`` (images embedded as base64, no external resource: readable offline).

One section per paper (sanity checks apart), one per preset inside it, one card per claim: the paper's
statement and value, what a unit is and how many each set had, and per unit set (discovery,
replication) lsx's statistic with its 95% interval and n, the set's verdict, the statistic's table and
each compared model's final train loss and test accuracy (flagged when unmatched); then the headline
verdict, the figures, run time, failed jobs, links to every job directory, and what the numbers were
computed on (code versions, torch, threads, CPU, Python).
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from lsx.plots import interactive
from lsx.utils.io import atomic_write_json, atomic_write_text

from .figures import draw_figure
from .records import JobRecord
from .replication import HEADLINES, UNSTABLE, evaluate_replicated
from .statistics import get_statistic_plot
from .units import SETS
from .verdicts import CLAIM_KEYS, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, FailedJob

# preset name prefix → the paper it targets (DESIGN.md); the report groups its sections by paper
PAPERS = {
    "li": "Li, Xu, Taylor, Studer, Goldstein 2018 — Visualizing the loss landscape of neural nets",
    "fort": "Fort & Jastrzebski 2019 — Large scale structure of neural network loss landscapes",
    "draxler": "Draxler, Veschgini, Salmhofer, Hamprecht 2018 — Essentially no barriers in neural network energy landscape",
    "xu": "Xu, Li, Li, Zhan — Visualizing, rethinking and mining the loss landscape",
    # the permutation presets (entezari_width also holds Ainsworth et al.'s claims; each claim's source names its paper)
    "entezari": "Entezari et al. 2022; Ainsworth et al. 2023 — Permutation invariance and linear mode connectivity; Git Re-Basin",
    "jordan": "Jordan et al. 2023 — REPAIR: renormalizing permuted activations for interpolation repair",
}
SANITY = "lsx sanity checks (no paper)"
COLOURS = {
    REPRODUCED: "#1a7f37",
    NOT_REPRODUCED: "#cf222e",
    INCONCLUSIVE: "#9a6700",
    UNSTABLE: "#8250df",
    NOT_TESTABLE: "#57606a",
}


def paper_of(preset: str, kind: str = "paper") -> str:
    return SANITY if kind == "sanity" else PAPERS.get(preset.split("_", 1)[0], SANITY)


# ----------------------------------------------------------------------------- building
def build_preset_report(run: Any, out_dir: Path) -> dict[str, Any]:
    """Evaluate a :class:`lsx.cli.reproduce.PresetRun`'s claims on each unit set, combine them into a
    headline (:mod:`lsx.claims.replication`) and draw the figures (paths relative to out_dir)."""
    plan = run.plan
    out_dir = Path(out_dir)
    records: dict[str, list[JobRecord]] = {name: [] for name in SETS}
    failed: dict[str, list[FailedJob]] = {name: [] for name in SETS}
    for j in run.jobs:
        if j["status"] == "failed":
            failed[j["set"]].append(FailedJob(list(j["overrides"]), j["reason"], j.get("unit")))
        else:
            records[j["set"]].append(JobRecord.from_dir(j["job_dir"]))
    fig_dir = out_dir / "figures" / plan.preset
    claims = []
    for claim in plan.claims:
        headline, reason, results = evaluate_replicated(claim, records, failed, plan.train_loss_ratio, plan.scale)
        sets = {
            name: _set_dict(claim, res, records[name], fig_dir / f"claim_{claim['id']}_{name}.png", out_dir)
            for name, res in results.items()
        }
        units = {
            **plan.unit.to_dict(),
            "planned": {n: len(plan.seeds[n]) for n in SETS},
            "n": {n: (sets[n].get("estimate") or {}).get("n", 0) for n in SETS},
        }
        claims.append(
            {**{k: claim.get(k) for k in CLAIM_KEYS}, "verdict": headline, "reason": reason, "units": units, "sets": sets}
        )
    every = [r for name in SETS for r in records[name]]
    figures = []
    for k, spec in enumerate(plan.figures):
        fig = {"figure": spec["figure"], "args": spec["args"], "path": None}
        try:
            fig["path"] = _rel(draw_figure(spec, every, fig_dir / f"figure_{k}_{spec['figure']}.png"), out_dir)
        except Exception as err:
            fig["error"] = f"{type(err).__name__}: {err}"
        figures.append(fig)
    elapsed = [j.get("elapsed_s") for j in run.jobs if j.get("elapsed_s") is not None]
    n_failed = sum(len(f) for f in failed.values())
    threads = Counter(str(j.get("torch_threads")) for j in run.jobs if j["status"] != "failed")
    return {
        "preset": plan.preset,
        "kind": plan.kind,
        "paper": paper_of(plan.preset, plan.kind),
        "header": plan.header,
        "scale": plan.scale,
        "unit": plan.unit.to_dict(),
        "seeds": plan.seeds,
        "budget_min": plan.budget_min,
        "train_loss_ratio": plan.train_loss_ratio,
        "run_time_s": run.run_time_s,
        "compute_s": round(sum(elapsed), 2),
        "n_jobs": len(run.jobs),
        "n_failed": n_failed,
        "jobs": run.jobs,
        "figures": figures,
        "claims": claims,
        "job_code_versions": job_code_versions(every),
        "job_torch_threads": dict(sorted(threads.items())),
    }


def _set_dict(claim: dict[str, Any], res: Any, records: Sequence[JobRecord], plot_path: Path, out_dir: Path) -> dict[str, Any]:
    """One set's result as report.json stores it: the ClaimResult without the claim's own keys, plus its plot.

    ``matching`` stays: in a ClaimResult it is the set's matched-training result (flag, measure, spread,
    missed targets, waived), not the claim's declared waiver that the claim entry carries."""
    d = {k: v for k, v in res.to_dict().items() if k not in CLAIM_KEYS or k == "matching"}
    if d.get("estimate"):  # report.json sorts keys: keep the statistic's column order for the table
        d["estimate"]["columns"] = list(dict.fromkeys(k for row in res.estimate.table for k in row))
    d["plot"] = None
    plot = get_statistic_plot(str(claim["statistic"]))
    if plot is not None and res.estimate is not None and records:
        try:
            d["plot"] = _rel(plot(list(records), res.estimate, plot_path, **claim["args"]), out_dir)
        except Exception as err:  # a figure must not cost the verdict
            d["plot_error"] = f"{type(err).__name__}: {err}"
    return d


def job_code_versions(records: Sequence[JobRecord]) -> dict[str, int]:
    """How many of the jobs each code version computed. The job cache is keyed by config, not by code, so a
    report may rest on jobs computed by older code: the report says which, and how many. A job computed by
    an older commit whose code fingerprint equals this code's (every file it depends on is identical; see
    :mod:`lsx.utils.fingerprint`) counts as this version: recomputing it would give the same bits."""
    return dict(sorted(Counter(effective_code_version(r) for r in records).items()))


def effective_code_version(record: JobRecord) -> str:
    from lsx.jobs import registry  # noqa: F401  (declares the jobs)
    from lsx.jobs.base import JOBS
    from lsx.utils.fingerprint import job_fingerprint
    from lsx.utils.version import code_version

    version = record.code_version or "unknown"
    now = code_version()
    if version != now and record.job in JOBS and record.code_fingerprint == job_fingerprint(JOBS[record.job]):
        return now
    return version


def merged_code_versions(sections: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(sum((Counter(s.get("job_code_versions") or {}) for s in sections), Counter()).items()))


def cached_jobs(sections: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(jobs the run took from the job cache, all jobs) over report sections: a cached job's compute time is
    its original one, not this run's."""
    jobs = [j for s in sections for j in s.get("jobs") or []]
    return sum(j.get("status") == "cached" for j in jobs), len(jobs)


def code_versions_text(counts: dict[str, int] | None) -> str:
    """``"abc (12 jobs), def-dirty (3 jobs)"``; empty for a report from before versions were recorded."""
    return ", ".join(f"{v} ({n} job{'s' if n != 1 else ''})" for v, n in (counts or {}).items())


def _rel(path: Path, root: Path) -> str:
    return str(Path(path).resolve().relative_to(root.resolve()))


def summarize(sections: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Headline counts, the paper claims apart from the sanity checks (which test lsx, not a paper)."""
    counts = {kind: {v: 0 for v in HEADLINES} for kind in ("paper", "sanity")}
    for s in sections:
        for c in s["claims"]:
            counts[s.get("kind", "paper")][c["verdict"]] = counts[s.get("kind", "paper")].get(c["verdict"], 0) + 1
    return counts


def write_report(
    sections: Sequence[dict[str, Any]],
    out_dir: Path,
    command: Sequence[str] = (),
    env: dict[str, Any] | None = None,
    run_time_s: float | None = None,
) -> dict[str, Any]:
    """Write report.json and report.html into ``out_dir`` (outputs only); presets from an earlier report
    that this run did not include are kept, so ``lsx.reproduce x`` updates only x's section."""
    from lsx.utils.version import code_version

    out_dir = Path(out_dir)
    for s in sections:
        s.setdefault("environment", env or {})
    merged = {s["preset"]: s for s in _previous_sections(out_dir)}
    kept = sorted(set(merged) - {s["preset"] for s in sections})
    merged.update({s["preset"]: s for s in sections})
    ordered = sorted(merged.values(), key=lambda s: (s.get("kind") == "sanity", s["paper"], s["preset"]))
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code_version": code_version(),
        "command": "python -m lsx.reproduce " + " ".join(command),
        "environment": env or {},
        "run_time_s": run_time_s,
        "kept_from_earlier_runs": kept,  # their environment and run time are in their own sections
        "summary": summarize(ordered),
        "presets": ordered,
        "job_code_versions": merged_code_versions(ordered),
    }
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.html", render_html(report, out_dir))
    return report


def _previous_sections(out_dir: Path) -> list[dict[str, Any]]:
    """Sections of an earlier report.json whose preset still exists (older formats without unit sets are dropped)."""
    path = out_dir / "report.json"
    if not path.is_file():
        return []
    from lsx.config import CONF_DIR

    try:
        sections = list(json.loads(path.read_text()).get("presets") or [])
    except (ValueError, AttributeError):
        return []
    return [
        s
        for s in sections
        if (CONF_DIR / "experiment" / f"{s.get('preset')}.yaml").is_file() and all("sets" in c for c in s.get("claims") or [])
    ]


# ----------------------------------------------------------------------------- HTML
def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def _e(v: Any) -> str:
    return html.escape(fmt(v))


def paper_estimate_text(spec: Any) -> str:
    """A claim's ``paper_estimate`` as one line: the paper's own number on the statistic's scale and where it
    comes from, or why there is none ("—" when the claim does not state it)."""
    if not isinstance(spec, dict):
        return "—"
    if "none" in spec:
        return f"none: {spec['none']}" + (f" Threshold: {spec['threshold']}" if spec.get("threshold") else "")
    if "range" in spec:
        a, b = spec["range"]
        return f"{fmt(a)} to {fmt(b)} ({spec.get('from')})"
    return f"{fmt(spec.get('value'))} ({spec.get('from')})"


def _img(out_dir: Path, rel: str | None, alt: str) -> str:
    if not rel or not (out_dir / rel).is_file():
        return ""
    data = base64.b64encode((out_dir / rel).read_bytes()).decode()
    return (
        f'<figure><img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _table(rows: Sequence[dict[str, Any]], cls: str, flag_key: str | None = None, columns: Sequence[str] | None = None) -> str:
    if not rows:
        return ""
    cols: list[str] = list(columns or [])
    for r in rows:
        cols += [k for k in r if k not in cols and k != flag_key]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        flagged = flag_key and r.get(flag_key)
        body.append(f'<tr{" class=flagged" if flagged else ""}>' + "".join(f"<td>{_e(r.get(c))}</td>" for c in cols) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _verdict(v: str) -> str:
    return (
        f'<span class="verdict" data-verdict="{html.escape(v)}" style="background:{COLOURS.get(v, "#555")}">'
        f'{html.escape(v)}</span>'
    )


def interval_text(est: dict[str, Any] | None) -> str:
    """``value [lo, hi], n = k`` of an estimate dict; ``—`` without one."""
    if not est:
        return "—"
    return f"{fmt(est.get('value'))} [{fmt(est.get('lo'))}, {fmt(est.get('hi'))}], n = {fmt(est.get('n'))}"


def matching_text(d: dict[str, Any]) -> str:
    """The set's matched-training check, whatever fields it has: ``matching`` (flag, reason, ...) when the
    verdict code records one, else the train-loss spread flag."""
    m = d.get("matching")
    if isinstance(m, dict) and m:
        rest = "; ".join(f"{k} = {fmt(v)}" for k, v in m.items() if k not in ("flag", "reason"))
        return (
            ("unmatched training" if m.get("flag") else "matched training")
            + (f": {m['reason']}" if m.get("reason") else "")
            + (f" ({rest})" if rest else "")
        )
    if d.get("train_loss_flag"):
        return f"unmatched training: final train losses differ by {fmt(d.get('train_loss_spread'))}x"
    return ""


def unmatched(d: dict[str, Any]) -> bool:
    m = d.get("matching")
    return bool(m.get("flag")) if isinstance(m, dict) else bool(d.get("train_loss_flag"))


def _set_html(preset: str, cid: str, name: str, d: dict[str, Any], out_dir: Path) -> str:
    est = d.get("estimate") or {}
    compared = [
        {
            k: r.get(k)
            for k in ("group_key", "group", "seed", "train_loss", "test_acc", "epochs_run", "steps", "stopped_by", "flag")
        }
        for r in d.get("compared") or []
    ]
    key = next((r["group_key"] for r in compared if r.get("group_key")), None)
    for r in compared:
        r.pop("group_key")
        if key:
            r[key] = r.pop("group")
        else:
            r.pop("group")
    match = matching_text(d)
    flag = f'<p class="{"flag" if unmatched(d) else "match"}">{html.escape(match)}</p>' if match else ""
    failed = ""
    if d.get("failed"):
        items = "".join(
            f"<li><code>{html.escape(' '.join(f['overrides']))}</code>: {html.escape(f['reason'])}</li>" for f in d["failed"]
        )
        failed = f'<div class="failed"><b>Failed jobs (excluded):</b><ul>{items}</ul></div>'
    plot_err = f'<p class="flag">plot failed: {html.escape(d["plot_error"])}</p>' if d.get("plot_error") else ""
    return f"""
  <div class="set" id="claim-{html.escape(preset)}-{html.escape(cid)}-{name}">
  <h5>{name} set {_verdict(d['verdict'])}</h5>
  <dl>
    <dt>statistic</dt><dd><span class="value">{html.escape(interval_text(est))}</span><br>
      <small>{_e(est.get('method'))}</small></dd>
    <dt>verdict</dt><dd>{_verdict(d['verdict'])} — {_e(d.get('reason'))}</dd>
  </dl>
  {failed}
  {_table(est.get('table') or [], 'stat-table', columns=est.get('columns')) or '<p>—</p>'}
  <h6>Compared models: final train loss and test accuracy</h6>
  {flag}
  {_table(compared, 'compared', 'flag') or '<p>no trained models recorded (the job trains none)</p>'}
  {_img(out_dir, d.get('plot'), f"{preset}: {cid} ({name})")}{plot_err}
  </div>"""


def _claim_html(preset: str, c: dict[str, Any], out_dir: Path) -> str:
    u = c.get("units") or {}
    units = f"a unit is {html.escape(str(u.get('what')))} (<code>{html.escape(str(u.get('key')))}</code>); " + ", ".join(
        f"{n}: {_e((u.get('n') or {}).get(n))} of {_e((u.get('planned') or {}).get(n))} planned" for n in SETS
    )
    sets = "".join(_set_html(preset, c["id"], name, d, out_dir) for name, d in (c.get("sets") or {}).items())
    return f"""
<section class="claim" id="claim-{html.escape(preset)}-{html.escape(c['id'])}">
  <h4>{html.escape(c['id'])} {_verdict(c['verdict'])}</h4>
  <dl>
    <dt>paper</dt><dd>{_e(c.get('source'))}</dd>
    <dt>statement</dt><dd>{_e(c.get('statement'))}</dd>
    <dt>paper value</dt><dd>{_e(c.get('paper_value'))}</dd>
    <dt>paper, on the statistic's scale</dt><dd>{html.escape(paper_estimate_text(c.get('paper_estimate')))}</dd>
    <dt>lsx statistic</dt><dd><b>{html.escape(str(c.get('statistic')))}</b> {html.escape(json.dumps(c.get('args') or {}))}</dd>
    <dt>decision</dt><dd>{html.escape(json.dumps(c.get('decision')))}</dd>
    <dt>units</dt><dd>{units}</dd>
    <dt>headline</dt><dd>{_verdict(c['verdict'])} — {_e(c.get('reason'))}</dd>
    {f"<dt>note</dt><dd>{_e(c.get('note'))}</dd>" if c.get('note') else ""}
  </dl>
  <div class="sets">{sets}</div>
</section>"""


def _preset_html(s: dict[str, Any], out_dir: Path) -> str:
    figs = "".join(
        _img(out_dir, f.get("path"), f"{s['preset']}: {f['figure']}")
        or f'<p class="flag">figure {html.escape(f["figure"])} failed: {_e(f.get("error"))}</p>'
        for f in s.get("figures") or []
    )
    jobs = "".join(
        f"<li>{html.escape(str(j.get('set')))} unit {_e(j.get('unit'))}: {html.escape(j['status'])} in {_e(j.get('wall_s'))} s: "
        f"<code>{html.escape(' '.join(o for o in j['overrides'] if not o.startswith('experiment=')))}</code>"
        + (
            f' → <a href="{html.escape(Path(j["job_dir"]).as_uri())}">{html.escape(Path(j["job_dir"]).name)}</a>'
            if j.get("job_dir")
            else ""
        )
        + (f" — {html.escape(j['reason'])}" if j.get("reason") else "")
        + "</li>"
        for j in s.get("jobs") or []
    )
    budget = f", budget ~{_e(s.get('budget_min'))} min" if s.get("budget_min") else ""
    seeds = s.get("seeds") or {}
    return f"""
<section class="preset" id="preset-{html.escape(s['preset'])}">
  <h3><code>{html.escape(s['preset'])}</code>{' (sanity check)' if s.get('kind') == 'sanity' else ''}</h3>
  <p class="header">{html.escape(s.get('header') or '')}</p>
  <p class="meta">scale <b>{_e(s['scale'])}</b>; a unit is {html.escape(str((s.get('unit') or {}).get('what')))};
     discovery units {_e(seeds.get('discovery'))}, replication units {_e(seeds.get('replication'))};
     {s['n_jobs']} job(s), {s['n_failed']} failed;
     run time {_e(s['run_time_s'])} s (jobs' own compute {_e(s.get('compute_s'))} s){budget};
     train-loss factor {_e(s.get('train_loss_ratio'))};
     torch threads of the jobs {_e(s.get('job_torch_threads'))}{_versions_html(s.get('job_code_versions'))}</p>
  {''.join(_claim_html(s['preset'], c, out_dir) for c in s['claims'])}
  {f'<h4>Figures</h4>{figs}' if figs else ''}
  {interactive.report_section(s.get("jobs") or [])}
  <details><summary>Jobs ({s['n_jobs']})</summary><ul class="jobs">{jobs}</ul></details>
</section>"""


def _versions_html(counts: dict[str, int] | None) -> str:
    text = code_versions_text(counts)
    return f"; jobs computed by code <code>{html.escape(text)}</code>" if text else ""


def summary_text(summary: dict[str, dict[str, int]]) -> str:
    """``paper claims: 3 reproduced, ...; sanity checks (no paper): 2 reproduced``."""
    names = {"paper": "paper claims", "sanity": "sanity checks (no paper)"}
    return "; ".join(
        f"{names.get(kind, kind)}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        for kind, counts in summary.items()
        if any(counts.values()) or kind == "paper"
    )


def environment_text(env: dict[str, Any] | None) -> str:
    e = env or {}
    if not e:
        return ""
    how = f"jobs through hydra/launcher={e['launcher']}" if e.get("launcher") else f"{e.get('jobs')} worker(s)"
    return (
        f"torch {e.get('torch')}, {e.get('torch_threads')} torch thread per job, {how}, "
        f"CPU {e.get('cpu')} ({e.get('cores')} cores), Python {e.get('python')}"
    )


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328;
  line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.5em}
.verdict{color:#fff;border-radius:4px;padding:1px 7px;font-size:.85em;font-weight:600;white-space:nowrap}
.claim{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;margin:1em 0;background:#f6f8fa}
dl{display:grid;grid-template-columns:9em 1fr;gap:.2em .8em;margin:.4em 0}dt{font-weight:600;color:#57606a}dd{margin:0}
table{border-collapse:collapse;margin:.4em 0;font-size:.88em;background:#fff}
th,td{border:1px solid #d0d7de;padding:2px 7px;text-align:right}
th{background:#eaeef2}tr.flagged td{background:#ffebe9}.flag{color:#cf222e}.failed{color:#cf222e}
img.fig{max-width:100%;border:1px solid #d0d7de;background:#fff}figure{margin:.6em 0}figcaption{font-size:.8em;color:#57606a}
.summary td,.summary th{text-align:left}code{font-size:.9em}.match{color:#1a7f37}
.summary{width:100%}.summary td{overflow-wrap:anywhere}
.set{border-left:3px solid #d0d7de;padding-left:.8em;margin:.6em 0}
"""


def render_html(report: dict[str, Any], out_dir: Path) -> str:
    out_dir = Path(out_dir)
    papers: dict[str, list[dict[str, Any]]] = {}
    for s in report["presets"]:
        papers.setdefault(s["paper"], []).append(s)
    rows = "".join(
        f'<tr><td>{html.escape(s["paper"].split(" — ")[0])}</td>'
        f'<td><a href="#preset-{html.escape(s["preset"])}">{html.escape(s["preset"])}</a></td>'
        f'<td><a href="#claim-{html.escape(s["preset"])}-{html.escape(c["id"])}">{html.escape(c["id"])}</a></td>'
        f'<td>{_e(c.get("paper_value"))}</td><td>{html.escape(str((c.get("units") or {}).get("what")))}</td>'
        + "".join(
            f'<td>{html.escape(interval_text(d.get("estimate")))} {_verdict(d["verdict"])}</td>' for d in c["sets"].values()
        )
        + f'<td>{_verdict(c["verdict"])}</td></tr>'
        for s in report["presets"]
        for c in s["claims"]
    )
    body = "".join(
        f'<section class="paper"><h2>{html.escape(p)}</h2>{"".join(_preset_html(s, out_dir) for s in ss)}</section>'
        for p, ss in papers.items()
    )
    env = environment_text(report.get("environment"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lsx reproduction report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>lsx reproduction report</h1>
<p>Generated {html.escape(report['generated_at'])} by <code>{html.escape(report['command'])}</code> at code version
<code>{html.escape(str(report['code_version']))}</code>{_report_versions_html(report)}{f"; {html.escape(env)}" if env else ""}.
Every claim is decided on two disjoint sets of independent units (discovery and replication), each from its statistic's
95% interval and the claim's decision rule: <b>reproduced</b> when the interval lies on the claimed side, <b>not
reproduced</b> when it lies on the other, <b>inconclusive</b> when it crosses the boundary, when there are too few units,
when a metric is missing or when a job failed. The headline is reproduced / not reproduced only when both sets agree,
<b>unstable</b> when one set says reproduced and the other not reproduced, else inconclusive.</p>
<p id="summary-counts"><b>{html.escape(summary_text(report["summary"]))}</b></p>
<table class="summary"><thead><tr><th>paper</th><th>preset</th><th>claim</th><th>paper value</th><th>unit</th>
<th>discovery [95% interval], n</th><th>replication [95% interval], n</th><th>headline</th></tr></thead>
<tbody>{rows}</tbody></table>
{body}
{interactive.page_scripts(body)}
</body></html>
"""


def _report_versions_html(report: dict[str, Any]) -> str:
    text = code_versions_text(report.get("job_code_versions"))
    if not text:
        return ""
    cached, total = cached_jobs(report.get("presets") or [])
    taken = f"; {cached} of {total} jobs were taken from the job cache" if cached else ""
    return (
        f"; the jobs were computed by code <code>{html.escape(text)}</code>{taken} (a cached job counts as this "
        "code's when every file it depends on is unchanged, else it keeps the version that computed it)"
    )


# ----------------------------------------------------------------------------- W&B
def log_wandb(report: dict[str, Any], out_dir: Path, logger_cfg: dict[str, Any]) -> None:
    """The report's claim table and figures as one W&B run of job type ``reproduce``."""
    import wandb

    from lsx.tracking.wandb_setup import finish, init_kwargs

    kw = init_kwargs(
        dict(logger_cfg, group="reproduce"),
        "reproduce",
        "reproduce",
        str(out_dir),
        {"command": report["command"], "presets": [s["preset"] for s in report["presets"]]},
    )
    run = wandb.init(**{k: v for k, v in kw.items() if v is not None})
    cols: list[str | int] = [
        "paper",
        "preset",
        "claim",
        "statement",
        "paper_value",
        "paper_estimate",
        "statistic",
        "unit",
        "discovery",
        "discovery_verdict",
        "replication",
        "replication_verdict",
        "verdict",
        "reason",
    ]
    table = wandb.Table(columns=cols)
    images = {}
    for s in report["presets"]:
        for c in s["claims"]:
            d, r = c["sets"]["discovery"], c["sets"]["replication"]
            table.add_data(
                s["paper"],
                s["preset"],
                c["id"],
                c.get("statement"),
                fmt(c.get("paper_value")),
                paper_estimate_text(c.get("paper_estimate")),
                c.get("statistic"),
                (c.get("units") or {}).get("what"),
                interval_text(d.get("estimate")),
                d["verdict"],
                interval_text(r.get("estimate")),
                r["verdict"],
                c["verdict"],
                c["reason"],
            )
            for name, sd in c["sets"].items():
                if sd.get("plot"):
                    images[f"{s['preset']}/{c['id']}/{name}"] = wandb.Image(str(Path(out_dir) / sd["plot"]))
        for f in s.get("figures") or []:
            if f.get("path"):
                images[f"{s['preset']}/{f['figure']}"] = wandb.Image(str(Path(out_dir) / f["path"]))
    run.log({"claims": table, **images})
    run.summary.update(
        {f"{kind}_n_{k.replace(' ', '_')}": v for kind, counts in report["summary"].items() for k, v in counts.items()}
    )
    finish()
