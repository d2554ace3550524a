"""``python -m lsx.reproduce`` end to end on tiny settings: a two-preset report (quickstart + fort_toy)
with every section, a rerun that is a no-op, failed jobs listed, the README block regenerated
identically, and the HTML rendered by headless Chromium where it is installed."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lsx.claims import readme
from lsx.claims.verdicts import INCONCLUSIVE, VERDICTS
from lsx.cli.reproduce import make_plan, presets_with_claims, reproduce

TINY_QUICKSTART = ["quickstart", "seeds=2", "debug=fast", "analysis.x.num=5", "analysis.y.num=5"]
TINY_TOY = ["fort_toy", "analysis.trials=4", "analysis.steps=300", "analysis.pairs=[[10,3],[12,8]]",
            "analysis.dim_offsets=[-3,-1,0,1,3]", "analysis.tunnel_pair=[10,3]", "analysis.connector_steps=20",
            "analysis.num_segments=4", "analysis.radial_directions=2"]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.imgs, self.links, self.verdicts, self.external = set(), [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.external.append(a)
        if "data-verdict" in a:
            self.verdicts.append(a["data-verdict"])


def _fake_jobs(root: Path) -> tuple[dict, list]:
    """Job directories as the toy_wedges and surface2d jobs write them (results.json, config.yaml and
    the data files the statistics read), without running anything: the fast path of the report."""
    import numpy as np
    import yaml

    rng = np.random.default_rng(0)
    runs = {"fort_toy": [], "quickstart": []}
    for k in range(3):
        d = root / "jobs" / f"toy_{k}"
        d.mkdir(parents=True)
        dims = np.array([4, 6, 7, 8, 10])
        np.savez(d / "toy_wedges.npz", success_D10_n3=np.array([0, 0, 0.5 + 0.1 * k, 1, 1]), dims_D10_n3=dims)
        (d / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "analysis": {"seed": k}}))
        (d / "results.json").write_text(json.dumps({"job": "toy_wedges", "seed": 0, "metrics": {}, "training": [],
                                                    "code_version": "aaa111"}))
        runs["fort_toy"].append({"overrides": ["experiment=fort_toy", "scale=cpu", "seed=0", f"analysis.seed={k}"], "seed": 0,
                                 "status": "ran", "job_dir": str(d), "job": "toy_wedges", "elapsed_s": 1.0, "wall_s": 1.0})
    x = np.linspace(-1, 1, 5)
    for s in range(2):
        for ds in ([101, 202], [303, 404]):
            d = root / "jobs" / f"surface_{s}_{ds[0]}"
            d.mkdir(parents=True)
            z = 0.1 + np.add.outer(x**2, x**2) + 0.01 * rng.random((5, 5))
            np.savez(d / "surface_grid.npz", x=x, y=x, train_loss=z)
            (d / "config.yaml").write_text(yaml.safe_dump({"seed": s, "analysis": {"direction_seeds": ds}}))
            (d / "results.json").write_text(json.dumps({"job": "surface2d", "seed": s, "metrics": {},
                                                        "code_version": "bbb222" if ds[0] == 101 else "ccc333-dirty", "training": [
                {"seed": s, "run_dir": f"/cache/s{s}", "train_loss": 0.1 + s, "train_acc": 0.9, "test_loss": 0.3, "test_acc": 0.8,
                 "epochs_run": 3, "steps": 30, "stopped_by": "epochs"}]}))
            runs["quickstart"].append({"overrides": ["experiment=quickstart", "scale=cpu", f"seed={s}"], "seed": s, "status": "ran",
                                       "job_dir": str(d), "job": "surface2d", "elapsed_s": 1.0, "wall_s": 1.0})
    return runs


@pytest.fixture(scope="module")
def fake_two_presets(tmp_path_factory):
    """The report of a two-preset run built from hand-made job directories (fast)."""
    from lsx.claims.report import build_preset_report, write_report
    from lsx.cli.reproduce import PresetRun

    root = tmp_path_factory.mktemp("fake")
    out = root / "reproduce"
    runs = _fake_jobs(root)
    plans = {p: make_plan(p, seeds=2 if p == "quickstart" else None) for p in ("quickstart", "fort_toy")}
    plans["quickstart"].figures = [{"figure": "metric_vs_key", "args": {"x": "analysis.direction_seeds.0", "y": "training.train_loss"}}]
    sections = [build_preset_report(PresetRun(plans[p], runs[p], 2.0), out) for p in ("quickstart", "fort_toy")]
    return out, write_report(sections, out, ["quickstart", "fort_toy"])


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.slow)])
def report_run(request):
    """Every report check runs on the hand-made jobs (fast) and on a real tiny run (slow)."""
    if request.param == "fake":
        return request.getfixturevalue("fake_two_presets")
    out, report, _, _ = request.getfixturevalue("two_presets")
    return out, report


@pytest.fixture(scope="module")
def two_presets(tmp_path_factory):
    """One tiny run of each preset into one report (the second run keeps the first's section)."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSX_OUTPUT_DIR", str(root / "outputs"))
        mp.setenv("LSX_CACHE_DIR", str(root / "cache"))
        lines: list[str] = []
        reproduce(TINY_TOY, echo=lines.append)
        report = reproduce(TINY_QUICKSTART, echo=lines.append)
        again: list[str] = []
        reproduce(TINY_TOY, echo=again.append)
    return root / "outputs" / "reproduce", report, lines, again


def test_report_has_every_section(report_run):
    out, report = report_run
    assert [s["preset"] for s in report["presets"]] == ["fort_toy", "quickstart"]  # paper sections first
    assert sum(report["summary"].values()) == 4
    for s in report["presets"]:
        assert s["n_failed"] == 0 and s["run_time_s"] > 0 and s["jobs"] and all(f["path"] and not f.get("error") for f in s["figures"])
        for c in s["claims"]:
            assert c["verdict"] in VERDICTS and c["estimate"]["n"] >= 2 and c["plot"]
            assert (out / c["plot"]).stat().st_size > 1000
    qs = next(s for s in report["presets"] if s["preset"] == "quickstart")
    assert len(qs["jobs"]) == 4 and qs["seeds"] == [0, 1]  # 2 direction pairs × seeds=2
    compared = qs["claims"][0]["compared"]
    assert {r["seed"] for r in compared} == {0, 1} and all(r["train_loss"] > 0 and r["test_acc"] is not None for r in compared)
    assert json.loads((out / "report.json").read_text())["summary"] == report["summary"]


def test_report_names_the_code_that_computed_its_jobs(report_run):
    # the job cache is keyed by config, not code: a report built on cached jobs says which code computed them
    out, report = report_run
    by_preset = {s["preset"]: s["job_code_versions"] for s in report["presets"]}
    assert {p: sum(v.values()) for p, v in by_preset.items()} == {"fort_toy": 3, "quickstart": 4}
    total = {}
    for versions in by_preset.values():
        for v, n in versions.items():
            total[v] = total.get(v, 0) + n
    assert report["job_code_versions"] == total == json.loads((out / "report.json").read_text())["job_code_versions"]
    if "aaa111" in total:  # the hand-made jobs
        assert total == {"aaa111": 3, "bbb222": 2, "ccc333-dirty": 2}
        assert "jobs computed by code aaa111 (3 jobs), bbb222 (2 jobs), ccc333-dirty (2 jobs)" in readme.results_block(report)
    else:  # a real run: every job by this checkout's code
        assert set(total) == {report["code_version"]}
    html_text = (out / "report.html").read_text()
    assert all(v in html_text for v in total)


@pytest.mark.slow
def test_real_run_progress_and_verdicts(two_presets):
    _, report, lines, _ = two_presets
    assert any(line.startswith("[quickstart] 4/4") for line in lines)  # per-preset progress
    toy = report["presets"][0]["claims"]
    assert toy[1]["id"] == "hyperplane_sharp_transition" and toy[1]["estimate"]["value"] > 0.5


def test_html_is_self_contained_and_complete(report_run):
    out, report = report_run
    p = _Collect()
    p.feed((out / "report.html").read_text())
    for s in report["presets"]:
        assert f"preset-{s['preset']}" in p.ids
        for c in s["claims"]:
            assert f"claim-{s['preset']}-{c['id']}" in p.ids
    n_plots = sum(1 for s in report["presets"] for c in s["claims"] if c["plot"])
    n_plots += sum(1 for s in report["presets"] for f in s["figures"] if f["path"])
    assert len(p.imgs) == n_plots and not p.external
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    job_links = [h for h in p.links if h.startswith("file://")]
    assert len(job_links) == sum(s["n_jobs"] for s in report["presets"])
    assert all(Path(h[len("file://"):]).is_dir() for h in job_links)
    assert sorted(p.verdicts) == sorted([c["verdict"] for s in report["presets"] for c in s["claims"]] * 3)  # summary, title, dl


@pytest.mark.slow
def test_rerun_is_a_no_op(two_presets):
    _, _, _, again = two_presets
    jobs = [line for line in again if "/3 " in line]
    assert len(jobs) == 3 and all(": cached in" in line for line in jobs)


@pytest.mark.slow
def test_failed_job_is_listed_and_excluded(tmp_path, monkeypatch):
    from lsx.jobs import base, registry  # noqa: F401

    monkeypatch.setenv("LSX_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("LSX_CACHE_DIR", str(tmp_path / "cache"))
    base.get_job("toy_wedges")
    real = base._FUNCS["toy_wedges"]

    def flaky(ctx):
        if int(ctx.analysis["seed"]) == 1:
            raise RuntimeError("simulated crash")
        return real(ctx)

    monkeypatch.setitem(base._FUNCS, "toy_wedges", flaky)
    lines: list[str] = []
    report = reproduce(TINY_TOY, echo=lines.append)
    (s,) = report["presets"]
    assert s["n_failed"] == 1 and [j["status"] for j in s["jobs"]] == ["ran", "failed", "ran"]
    for c in s["claims"]:
        assert c["verdict"] == INCONCLUSIVE and "1 job(s) failed" in c["reason"]
        assert c["failed"][0]["reason"] == "RuntimeError: simulated crash" and c["estimate"]["n"] == 2
    assert "simulated crash" in (tmp_path / "outputs" / "reproduce" / "report.html").read_text()


def test_bad_input(lsx_dirs):
    with pytest.raises(ValueError, match="unknown preset 'nope'; valid presets: .*fort_toy"):
        reproduce(["nope"])
    with pytest.raises(ValueError, match="preset 'fort_toy' declares no claims"):
        reproduce(["fort_toy", "claims=[]"])
    with pytest.raises(ValueError, match="seeds takes a number"):
        reproduce(["fort_toy", "seeds=x"])
    with pytest.raises(ValueError, match="experiment has no scale 'huge'"):
        reproduce(["fort_toy", "scale=huge"])


def test_plan_seeds_and_defaults():
    assert {"quickstart", "fort_toy"} <= set(presets_with_claims())
    plan = make_plan("quickstart", seeds=2)
    assert plan.seeds == [0, 1] and len(plan.points) == 4
    assert "analysis.direction_seeds=[303,404]" in plan.points[-1] and "seed=1" in plan.points[-1]
    assert make_plan("fort_toy", seeds=2).seeds == [0, 1]  # continues after the preset's [0]


def test_readme_block_regenerates_identically(report_run, tmp_path):
    out, _ = report_run
    report = json.loads((out / "report.json").read_text())
    src = "# x\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\ntext\n<!-- presets:begin -->\n<!-- presets:end -->\n"
    first = readme.render(src, report)
    assert readme.render(first, json.loads((out / "report.json").read_text())) == first  # idempotent, same input → same text
    assert "\nold\n" not in first and first.endswith("text\n<!-- presets:begin -->\n" + readme.presets_block(report) + "<!-- presets:end -->\n")
    block = readme.results_block(report)
    for s in report["presets"]:
        for c in s["claims"]:
            assert f"`{s['preset']}` | {c['id']} |" in block and f"**{c['verdict']}**" in block
    assert readme.results_block(None).count("not run") >= 4  # presets absent from the report
    with pytest.raises(ValueError, match="README has no <!-- results:begin -->"):
        readme.render("no markers", report)
    path = tmp_path / "README.md"
    path.write_text(src)
    assert readme.main(["--report", str(out / "report.json"), "--readme", str(path)]) == 0
    assert path.read_text() == first


def test_repository_readme_has_the_blocks():
    text = (readme.ROOT / "README.md").read_text()
    for begin, end in readme.BLOCKS.values():
        assert text.count(begin) == 1 and text.count(end) == 1


def test_chromium_renders_every_section_and_image(report_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium); the HTML is checked by parsing above")
    out, report = report_run
    probe = tmp_path / "probe.html"  # the report plus a script that reports what the browser rendered
    probe.write_text((out / "report.html").read_text().replace(
        "</body>", "<script>window.onload=()=>{const ok=[...document.images].filter(i=>i.complete&&i.naturalWidth>0).length;"
        "document.body.setAttribute('data-images-ok', ok);document.body.setAttribute('data-sections',"
        "document.querySelectorAll('section.claim').length);}</script></body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    n_claims = sum(len(s["claims"]) for s in report["presets"])
    n_images = n_claims + sum(1 for s in report["presets"] for f in s["figures"] if f["path"])
    assert f'data-sections="{n_claims}"' in dom
    assert f'data-images-ok="{n_images}"' in dom
    for s in report["presets"]:
        assert f'id="preset-{s["preset"]}"' in dom


def test_report_logged_as_one_offline_wandb_run(fake_two_presets, monkeypatch):
    from lsx.claims.report import log_wandb

    out, report = fake_two_presets
    monkeypatch.setenv("WANDB_MODE", "offline")
    log_wandb(report, out, {"name": "wandb", "project": "lsx", "mode": "offline"})
    runs = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
