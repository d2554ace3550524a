"""``python -m lsx.reproduce`` end to end: a two-preset report (quickstart + fort_toy) on two unit sets with
every section, a rerun that is a no-op, failed jobs listed, seed lists that change every preset's units,
one-line refusals, outputs only (no tracked file touched), the README generator's refusals and its
byte-for-byte regeneration from the committed report, and the HTML rendered by headless Chromium where
it is installed."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lsx.claims import readme
from lsx.claims.replication import HEADLINES
from lsx.claims.verdicts import INCONCLUSIVE, VERDICTS
from lsx.cli.reproduce import make_plan, presets_with_claims, reproduce

ROOT = Path(__file__).resolve().parent.parent
DISC, REPL = list(range(6)), list(range(6, 12))
TINY_QUICKSTART = ["quickstart", "jobs=1", "debug=fast", "analysis.x.num=5", "analysis.y.num=5"]
TINY_TOY = [
    "fort_toy",
    "jobs=1",
    "analysis.trials=4",
    "analysis.steps=300",
    "analysis.pairs=[[10,3],[12,8]]",
    "analysis.dim_offsets=[-3,-1,0,1,3]",
    "analysis.tunnel_pair=[10,3]",
    "analysis.connector_steps=20",
    "analysis.num_segments=9",  # 9: lags with node pairs both within and across the halves (the two-block claim)
    "analysis.radial_directions=2",
]


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


def _fake_jobs(root: Path) -> dict[str, list[dict]]:
    """Job directories as the toy_wedges and surface2d jobs write them (results.json, config.yaml and the
    data files the statistics read) for both unit sets, without running anything: the fast path of the report."""
    import numpy as np
    import yaml

    rng = np.random.default_rng(0)
    runs: dict[str, list[dict]] = {"fort_toy": [], "quickstart": []}
    for k in DISC + REPL:
        name = "discovery" if k in DISC else "replication"
        d = root / "jobs" / f"toy_{k}"
        d.mkdir(parents=True)
        dims = np.array([4, 6, 7, 8, 10])
        np.savez(d / "toy_wedges.npz", success_D10_n3=np.array([0, 0, 0.4 + 0.03 * k, 1, 1]), dims_D10_n3=dims)
        (d / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "analysis": {"seed": k}}))
        toy = {
            "tunnel_barrier_ratio": 1e-5,
            "tunnel_two_block_relative_contrast": 0.8 + 0.01 * k,
            "radial_max_relative_spread": 0.1,
        }
        (d / "results.json").write_text(
            json.dumps(
                {"job": "toy_wedges", "seed": 0, "metrics": toy, "training": [], "code_version": "aaa111", "torch_threads": 1}
            )
        )
        runs["fort_toy"].append(
            {
                "overrides": ["experiment=fort_toy", "scale=cpu", f"analysis.seed={k}"],
                "set": name,
                "unit": k,
                "seed": k,
                "status": "ran",
                "job_dir": str(d),
                "job": "toy_wedges",
                "elapsed_s": 1.0,
                "wall_s": 1.0,
                "torch_threads": 1,
            }
        )
    x = np.linspace(-1, 1, 5)
    for name, units in (("discovery", DISC), ("replication", REPL)):
        for ds in ([101, 202], [303, 404]):
            for s in units:
                d = root / "jobs" / f"surface_{s}_{ds[0]}"
                d.mkdir(parents=True)
                z = 0.1 + np.add.outer(x**2, x**2) + 0.01 * rng.random((5, 5))
                np.savez(d / "surface_grid.npz", x=x, y=x, train_loss=z)
                (d / "config.yaml").write_text(yaml.safe_dump({"seed": s, "analysis": {"direction_seeds": ds}}))
                (d / "results.json").write_text(
                    json.dumps(
                        {
                            "job": "surface2d",
                            "seed": s,
                            "metrics": {},
                            "torch_threads": 1,
                            "code_version": "bbb222" if ds[0] == 101 else "ccc333-dirty",
                            "training": [
                                {
                                    "seed": s,
                                    "run_dir": f"/cache/s{s}",
                                    "train_loss": 0.1 + 0.01 * s,
                                    "train_acc": 0.9,
                                    "test_loss": 0.3,
                                    "test_acc": 0.8,
                                    "epochs_run": 3,
                                    "steps": 30,
                                    "stopped_by": "epochs",
                                }
                            ],
                        }
                    )
                )
                runs["quickstart"].append(
                    {
                        "overrides": ["experiment=quickstart", "scale=cpu", f"seed={s}"],
                        "set": name,
                        "unit": s,
                        "seed": s,
                        "status": "ran",
                        "job_dir": str(d),
                        "job": "surface2d",
                        "elapsed_s": 1.0,
                        "wall_s": 1.0,
                        "torch_threads": 1,
                    }
                )
    return runs


@pytest.fixture(scope="module")
def fake_two_presets(tmp_path_factory):
    """The report of a two-preset run built from hand-made job directories (fast)."""
    from lsx.claims.report import build_preset_report, write_report
    from lsx.cli.reproduce import PresetRun, environment

    root = tmp_path_factory.mktemp("fake")
    out = root / "reproduce"
    runs = _fake_jobs(root)
    plans = {p: make_plan(p) for p in ("quickstart", "fort_toy")}
    plans["quickstart"].figures = [
        {"figure": "metric_vs_key", "args": {"x": "analysis.direction_seeds.0", "y": "training.train_loss"}}
    ]
    sections = [build_preset_report(PresetRun(plans[p], runs[p], 2.0), out) for p in ("quickstart", "fort_toy")]
    return out, write_report(sections, out, ["quickstart", "fort_toy"], environment(2), 4.0)


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
    assert sum(report["summary"]["paper"].values()) == 5 and sum(report["summary"]["sanity"].values()) == 2  # counted apart
    env = report["environment"]
    assert env["torch_threads"] == 1 and env["torch"] and env["cpu"] and env["python"]
    for s in report["presets"]:
        assert (
            s["n_failed"] == 0
            and s["run_time_s"] > 0
            and s["jobs"]
            and all(f["path"] and not f.get("error") for f in s["figures"])
        )
        assert s["seeds"] == {"discovery": DISC, "replication": REPL} and s["job_torch_threads"] == {"1": len(s["jobs"])}
        assert {(j["set"], j["unit"]) for j in s["jobs"]} == {("discovery", u) for u in DISC} | {("replication", u) for u in REPL}
        for c in s["claims"]:
            assert c["verdict"] in HEADLINES and set(c["sets"]) == {"discovery", "replication"}
            assert c["paper_estimate"], c["id"]  # the paper's own number on the statistic's scale (or why none)
            assert c["units"]["key"] == s["unit"]["key"] and c["units"]["n"] == {"discovery": 6, "replication": 6}
            for d in c["sets"].values():
                assert d["verdict"] in VERDICTS and d["estimate"]["n"] == 6 and d["plot"]
                assert (out / d["plot"]).stat().st_size > 1000
    toy, qs = report["presets"]
    assert toy["kind"] == "paper" and qs["kind"] == "sanity" and toy["unit"]["key"] == "analysis.seed"
    assert len(qs["jobs"]) == 24  # 2 direction pairs × (6 + 6) seeds
    compared = qs["claims"][0]["sets"]["replication"]["compared"]
    assert {r["seed"] for r in compared} == set(REPL) and all(r["train_loss"] > 0 and r["test_acc"] is not None for r in compared)
    assert json.loads((out / "report.json").read_text())["summary"] == report["summary"]


def test_report_page_says_how_many_jobs_came_from_the_cache():
    from lsx.claims.report import _report_versions_html

    jobs = [{"status": "cached"}] * 3 + [{"status": "ran"}]
    text = _report_versions_html({"job_code_versions": {"abc": 4}, "presets": [{"jobs": jobs}]})
    assert "<code>abc (4 jobs)</code>; 3 of 4 jobs were taken from the job cache" in text
    fresh = _report_versions_html({"job_code_versions": {"abc": 1}, "presets": [{"jobs": jobs[-1:]}]})
    assert "job cache" not in fresh and "abc (1 job)</code> (a cached job" in fresh


def test_report_names_the_code_that_computed_its_jobs(report_run):
    # the job cache is keyed by config, not code: a report built on cached jobs says which code computed them
    out, report = report_run
    by_preset = {s["preset"]: s["job_code_versions"] for s in report["presets"]}
    assert {p: sum(v.values()) for p, v in by_preset.items()} == {"fort_toy": 12, "quickstart": 24}
    total: dict[str, int] = {}
    for versions in by_preset.values():
        for v, n in versions.items():
            total[v] = total.get(v, 0) + n
    assert report["job_code_versions"] == total == json.loads((out / "report.json").read_text())["job_code_versions"]
    if "aaa111" in total:  # the hand-made jobs
        assert total == {"aaa111": 12, "bbb222": 12, "ccc333-dirty": 12}
        assert "jobs computed by code aaa111 (12 jobs), bbb222 (12 jobs), ccc333-dirty (12 jobs)" in readme.results_block(report)
    else:  # a real run: every job by this checkout's code
        assert set(total) == {report["code_version"]}
    html_text = (out / "report.html").read_text()
    assert all(v in html_text for v in total)


@pytest.mark.slow
def test_real_run_progress_and_verdicts(two_presets):
    _, report, lines, _ = two_presets
    assert any(line.startswith("[quickstart] 24/24") for line in lines)  # per-preset progress
    toy = report["presets"][0]["claims"]
    assert toy[1]["id"] == "hyperplane_sharp_transition"
    assert all(d["estimate"]["value"] > 0.5 for d in toy[1]["sets"].values())


def test_html_is_self_contained_and_complete(report_run):
    out, report = report_run
    p = _Collect()
    p.feed((out / "report.html").read_text())
    for s in report["presets"]:
        assert f"preset-{s['preset']}" in p.ids
        for c in s["claims"]:
            assert {
                f"claim-{s['preset']}-{c['id']}",
                f"claim-{s['preset']}-{c['id']}-discovery",
                f"claim-{s['preset']}-{c['id']}-replication",
            } <= p.ids
    n_plots = sum(1 for s in report["presets"] for c in s["claims"] for d in c["sets"].values() if d["plot"])
    n_plots += sum(1 for s in report["presets"] for f in s["figures"] if f["path"])
    assert len(p.imgs) == n_plots and not p.external
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    job_links = [h for h in p.links if h.startswith("file://")]
    assert len(job_links) == sum(s["n_jobs"] for s in report["presets"])
    assert all(Path(h[len("file://") :]).is_dir() for h in job_links)
    claims = [c for s in report["presets"] for c in s["claims"]]
    expected = [c["verdict"] for c in claims] * 3 + [d["verdict"] for c in claims for d in c["sets"].values()] * 3
    assert sorted(p.verdicts) == sorted(expected)  # headline: summary, title, dl; each set: summary, title, dl
    text = (out / "report.html").read_text()
    assert text.count("<dt>paper, on the statistic's scale</dt>") == len(claims)
    assert "0 (a sanity check of lsx, not a paper claim: a trained optimum is the lowest point" in text  # minimum_at_centre


@pytest.mark.slow
def test_rerun_is_a_no_op(two_presets):
    _, _, _, again = two_presets
    jobs = [line for line in again if "/12 " in line]
    assert len(jobs) == 12 and all(": cached in" in line for line in jobs)


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

    monkeypatch.setitem(base._FUNCS, "toy_wedges", flaky)  # in this process: jobs=1
    report = reproduce(TINY_TOY, echo=lambda s: None)
    (s,) = report["presets"]
    assert s["n_failed"] == 1 and [j["status"] for j in s["jobs"]] == ["ran", "failed"] + ["ran"] * 10
    for c in s["claims"]:
        d = c["sets"]["discovery"]
        assert d["verdict"] == INCONCLUSIVE and "1 job(s) failed" in d["reason"] and c["verdict"] != "reproduced"
        assert d["failed"][0]["reason"] == "RuntimeError: simulated crash" and d["estimate"]["n"] == 5
        assert not c["sets"]["replication"]["failed"]
    assert "simulated crash" in (tmp_path / "outputs" / "reproduce" / "report.html").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "unknown preset 'nope'; valid presets: .*fort_toy"),
        (["fort_toy", "claims=[]"], "preset 'fort_toy' declares no claims"),
        (["fort_toy", "seeds=x"], r"seeds=x: not a list of unit indices; e.g. seeds=10-15"),
        (["fort_toy", "seeds=15-10"], "a range runs from low to high"),
        (["fort_toy", "seeds=[1,1,2,3,4,5]"], "lists a unit twice"),
        (["fort_toy", "seeds=5-7"], r"3 discovery unit\(s\) \[5, 6, 7\]; a claim needs at least 6"),
        (["fort_toy", "seeds=0-5", "replication=5-10"], r"share unit\(s\) \[5\]; the two sets must be disjoint"),
        (["fort_toy", "seeds=0-5", "replication=6-8"], r"3 replication unit\(s\)"),
        (["fort_toy", "reproduce.seeds=[5,6,7]"], "the reproduce block is read from the preset; on the command line use seeds="),
        (["fort_toy", "analysis.seed=3"], "units are chosen with seeds=.*a unit is a trial seed"),
        (["quickstart", "seed=3"], "units are chosen with seeds="),
        (["fort_toy", "jobs=0"], "jobs takes a number of worker processes"),
        (["fort_toy", "threads=0"], "threads takes a number of torch threads per job"),
        (["fort_toy", "scale=huge"], "fort_toy has no scale 'huge'"),
    ],
)
def test_bad_input_is_one_line_and_runs_nothing(lsx_dirs, args, message):
    with pytest.raises(ValueError, match=message) as err:
        reproduce(args, echo=lambda s: pytest.fail(f"ran something: {s}"))
    assert "\n" not in str(err.value)
    assert not (lsx_dirs[1] / "reproduce").exists()


def test_claim_unit_must_be_the_preset_unit():
    from lsx.claims.units import Unit, check_claim_units

    claims = make_plan("fort_toy").claims
    with pytest.raises(
        ValueError,
        match="claim 'hyperplane_threshold': its statistic groups by unit 'analysis.seed' but the " "preset's unit is 'seed'",
    ):
        check_claim_units("fort_toy", claims, Unit("seed"))
    check_claim_units("fort_toy", claims, Unit("analysis.seed"))


def test_plan_units_sets_and_defaults():
    assert {"quickstart", "fort_toy"} <= set(presets_with_claims())
    plan = make_plan("quickstart")
    assert plan.seeds == {"discovery": DISC, "replication": REPL} and len(plan.points) == 24 and plan.kind == "sanity"
    assert "analysis.direction_seeds=[303,404]" in plan.points[-1] and "seed=11" in plan.points[-1]
    assert plan.labels[0] == ("discovery", 0) and plan.labels[-1] == ("replication", 11)


@pytest.mark.parametrize(
    "preset, first, last",
    [
        ("fort_toy", "analysis.seed=20", "analysis.seed=31"),
        ("quickstart", "seed=20", "seed=31"),
        ("draxler_table1", "optima.seeds=[60,61,62]", "optima.seeds=[93,94,95]"),
        ("fort_fig2", "analysis.seeds=[60,61,62]", "analysis.seeds=[93,94,95]"),
        ("fort_fig3", "analysis.seeds=[40,41]", "analysis.seeds=[62,63]"),
    ],
)
def test_seed_lists_change_the_units_of_every_preset(preset, first, last):
    # the issue: `lsx.reproduce fort_toy reproduce.seeds=[5,6,7]` reproduced the committed numbers to every digit
    default = make_plan(preset)
    plan = make_plan(preset, seeds="20-25")  # replication: the next block of equal size
    assert plan.seeds == {"discovery": list(range(20, 26)), "replication": list(range(26, 32))}
    units = [next(o for o in p if o.startswith(plan.unit.key + "=")) for p in plan.points]
    assert units[0] == first and units[-1] == last and len(set(units)) == 12
    assert not set(map(tuple, plan.points)) & set(map(tuple, default.points))  # every job differs from the default's
    explicit = make_plan(preset, seeds="[20,21,22,23,24,25]", replication="40-45")
    assert (
        explicit.seeds["replication"] == list(range(40, 46))
        and explicit.points[: len(plan.points) // 2] == plan.points[: len(plan.points) // 2]
    )


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_reproduce_writes_outputs_only_fast(lsx_dirs, monkeypatch, tmp_path):
    # the whole report path (plan, per-set verdicts, figures, report.json/html) with the jobs replaced by hand-made ones
    import lsx.cli.reproduce as cli

    jobs = {j["unit"]: j for j in _fake_jobs(tmp_path)["fort_toy"]}
    monkeypatch.setattr(
        cli,
        "run_point",
        lambda overrides, run_dir: {
            **{k: jobs[int(overrides[2].split("=")[1])][k] for k in ("status", "job_dir", "job", "elapsed_s", "torch_threads")},
            "started": 0.0,
            "finished": 1.0,
            "wall_s": 1.0,
        },
    )
    before = _git_status()
    report = reproduce(["fort_toy", "jobs=1"], echo=lambda s: None)
    assert _git_status() == before and (lsx_dirs[1] / "reproduce" / "report.html").is_file()
    assert [c["units"]["n"] for c in report["presets"][0]["claims"]] == [{"discovery": 6, "replication": 6}] * 5


@pytest.mark.slow  # ~25 s of CPU (12 toy jobs)
def test_reproduce_writes_outputs_only(lsx_dirs):
    # `make reproduce PRESETS=fort_toy` used to rewrite README.md: now nothing tracked changes (fort_toy trains nothing)
    before = _git_status()
    report = reproduce([*TINY_TOY, "analysis.trials=2", "analysis.steps=100"], echo=lambda s: None)
    assert _git_status() == before
    assert (lsx_dirs[1] / "reproduce" / "report.json").is_file() and report["presets"][0]["n_jobs"] == 12


@pytest.mark.slow
def test_two_workers_give_the_same_report_as_one(lsx_dirs):
    # jobs run at one torch thread in either case, and each job is keyed by its config: the schedule cannot matter
    def run(*extra: str):
        report = reproduce([*TINY_TOY, "analysis.trials=2", "analysis.steps=100", *extra], echo=lambda s: None)
        (s,) = report["presets"]
        assert all(j["status"] == "ran" for j in s["jobs"])  # computed afresh, not read from the other run
        metrics = {
            (j["set"], j["unit"]): json.loads((Path(j["job_dir"]) / "results.json").read_text())["metrics"] for j in s["jobs"]
        }
        claims = [
            (
                c["id"],
                c["verdict"],
                {
                    n: (d["verdict"], (d["estimate"] or {}).get("value"), (d["estimate"] or {}).get("lo"))
                    for n, d in c["sets"].items()
                },
            )
            for c in s["claims"]
        ]
        shutil.rmtree(lsx_dirs[1])
        return report, metrics, claims

    one, metrics_one, claims_one = run()
    two, metrics_two, claims_two = run("jobs=2")
    assert one["environment"]["jobs"] == 1 and two["environment"]["jobs"] == 2
    assert len(metrics_one) == 12 and metrics_one == metrics_two and claims_one == claims_two


# ----------------------------------------------------------------------------- the README generator
def _clean(report: dict, version: str = "0123456789ab") -> dict:
    """The report as if one clean commit had computed everything."""
    r = json.loads(json.dumps(report))
    n = sum(r["job_code_versions"].values())
    r["code_version"], r["job_code_versions"] = version, {version: n}
    for s in r["presets"]:
        s["job_code_versions"] = {version: s["n_jobs"]}
    return r


@pytest.fixture
def two_preset_repo(monkeypatch):
    """The generator sees only the two presets of the fake report (so that report is complete)."""
    files = {k: v for k, v in readme._preset_files().items() if k in ("fort_toy", "quickstart")}
    monkeypatch.setattr(readme, "_preset_files", lambda: files)


SRC = "# x\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\ntext\n<!-- presets:begin -->\n<!-- presets:end -->\n"


def test_generator_refuses_a_mixed_dirty_or_incomplete_report(fake_two_presets, tmp_path, two_preset_repo, capsys):
    out, report = fake_two_presets
    readme_path = tmp_path / "README.md"
    readme_path.write_text(SRC)
    assert (
        readme.main(["--report", str(out / "report.json"), "--docs", str(tmp_path / "docs"), "--readme", str(readme_path)]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to generate the README" in err and "mixed: jobs computed by 3 code versions" in err
    assert "ccc333-dirty" in err and readme_path.read_text() == SRC and not (tmp_path / "docs").exists()
    assert any("computed by uncommitted" in p for p in readme.problems(_clean(report, "abc-dirty")))
    stale = _clean(report)
    stale["code_version"] = "fedcba987654"
    assert any("cached jobs of older code" in p for p in readme.problems(stale))
    assert readme.problems(_clean(report)) == []
    incomplete = _clean(report)
    incomplete["presets"] = incomplete["presets"][:1]
    assert readme.problems(incomplete) == [
        "incomplete: no section for preset(s) quickstart (run `make reproduce` without PRESETS)"
    ]


def test_generator_publishes_and_regenerates_the_committed_block_byte_for_byte(fake_two_presets, tmp_path, two_preset_repo):
    out, report = fake_two_presets
    src = tmp_path / "outputs" / "report.json"
    src.parent.mkdir()
    src.write_text(json.dumps(_clean(report)))
    shutil.copyfile(out / "report.html", src.with_name("report.html"))
    docs, readme_path = tmp_path / "docs" / "reproduce", tmp_path / "README.md"
    readme_path.write_text(SRC)
    assert readme.main(["--report", str(src), "--docs", str(docs), "--readme", str(readme_path)]) == 0
    published = readme_path.read_text()
    assert (docs / "report.html").read_bytes() == (out / "report.html").read_bytes()
    assert json.loads((docs / "report.json").read_text())["published"] == {"allow_mixed": False, "problems": []}
    block = readme.results_block(json.loads((docs / "report.json").read_text()))
    assert (
        "all 36 jobs computed by code 0123456789ab" in block
        and "paper claims: " in block
        and "sanity checks (no paper): " in block
    )
    assert "; whole run 0 min wall" in block and "kept from earlier runs" not in block
    merged = dict(_clean(report), kept_from_earlier_runs=["fort_toy"])  # `lsx.reproduce quickstart` after a full run
    assert "sections of fort_toy kept from earlier runs" in readme.results_block(
        merged
    ) and "whole run" not in readme.results_block(merged)
    for s in report["presets"]:
        for c in s["claims"]:
            assert f"`{s['preset']}` | {c['id']} |" in block and f"**{c['verdict']}** |" in block
    readme_path.write_text(published.replace("| **", "| **x", 1))  # someone edits the block by hand
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--check"]) == 1
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--committed"]) == 0
    assert readme_path.read_text() == published  # from the committed report alone, byte for byte
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--check"]) == 0


def test_committed_checks_add_a_column_saying_whether_each_verdict_held(fake_two_presets, tmp_path, two_preset_repo):
    from lsx.claims import compare

    out, report = fake_two_presets
    docs, readme_path = tmp_path / "docs", tmp_path / "README.md"
    docs.mkdir()
    published = _clean(report)
    (docs / "report.json").write_text(json.dumps(published))
    rerun = json.loads(json.dumps(published))
    rerun["presets"] = [s for s in rerun["presets"] if s["preset"] == "quickstart"]  # fort_toy not rerun
    moved = rerun["presets"][0]["claims"][0]
    moved["verdict"] = "inconclusive" if moved["verdict"] != "inconclusive" else "reproduced"
    (tmp_path / "rerun.json").write_text(json.dumps(rerun))
    args = [str(docs), str(tmp_path / "rerun.json"), "--json", str(docs / "checks" / "t2.json"), "--label", "2 threads"]
    (docs / "checks").mkdir()
    assert compare.main(args) == 0
    readme_path.write_text(SRC)
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--committed"]) == 0
    text = readme_path.read_text()
    assert "| verdict | holds under the checks |" in text and "- `2 threads` (checks/t2.json)" in text
    assert f"| {moved['id']} |" in text and f"2 threads: **moved → {moved['verdict']}** |" in text
    assert "2 threads: holds |" in text and "2 threads: not rerun |" in text  # quickstart's other claim; fort_toy
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--check"]) == 0
    (docs / "checks" / "t2.json").unlink()
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--check"]) == 1  # the column is the check's


def test_generator_allow_mixed_says_so(fake_two_presets, tmp_path, two_preset_repo):
    out, _ = fake_two_presets
    docs, readme_path = tmp_path / "docs", tmp_path / "README.md"
    readme_path.write_text(SRC)
    assert (
        readme.main(["--report", str(out / "report.json"), "--docs", str(docs), "--readme", str(readme_path), "--allow-mixed"])
        == 0
    )
    text = readme_path.read_text()
    assert "**Published with `--allow-mixed` despite:** mixed: jobs computed by 3 code versions" in text
    assert readme.main(["--docs", str(docs), "--readme", str(readme_path), "--check"]) == 0  # the committed flag is kept


def test_readme_block_regenerates_identically(report_run, tmp_path):
    out, _ = report_run
    report = json.loads((out / "report.json").read_text())
    first = readme.render(SRC, report)
    assert readme.render(first, json.loads((out / "report.json").read_text())) == first  # idempotent, same input → same text
    assert "\nold\n" not in first and first.endswith(
        "text\n<!-- presets:begin -->\n" + readme.presets_block(report) + "<!-- presets:end -->\n"
    )
    assert readme.results_block(None).count("not run") >= 4  # presets absent from the report
    with pytest.raises(ValueError, match="README has no <!-- results:begin -->"):
        readme.render("no markers", report)


def test_readme_says_which_jobs_came_from_the_cache():
    """A report rebuilt from the job cache took minutes, not the jobs' compute: the README must not show
    its wall time as what the preset costs."""
    report = readme.committed_report(readme.DOCS)
    if report is None:
        pytest.skip("no committed docs/reproduce/report.json yet")
    sections = report["presets"]
    for s in sections:
        for job in s["jobs"]:
            job["status"] = "ran"
    assert "job cache" not in readme.results_block(report) + readme.presets_block(report)
    first, second = sections[0], sections[1]
    for job in first["jobs"]:
        job["status"] = "cached"
    n_all = sum(len(s["jobs"]) for s in sections)
    assert f", {len(first['jobs'])} of {n_all} jobs taken from the job cache" in readme.results_block(report)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)`.*$", readme.presets_block(report), re.M)}
    assert f"{len(first['jobs'])} of {len(first['jobs'])} taken from the job cache, this run" in rows[first["preset"]]
    assert "job cache" not in rows[second["preset"]] and " min wall, " in rows[second["preset"]]


def test_repository_readme_has_the_blocks_from_the_committed_report():
    text = (readme.ROOT / "README.md").read_text()
    for begin, end in readme.BLOCKS.values():
        assert text.count(begin) == 1 and text.count(end) == 1
    if not (readme.DOCS / "report.json").is_file():
        pytest.skip("no committed docs/reproduce/report.json yet (make reproduce, then make reproduce-readme)")
    assert readme.render(text, readme.committed_report(readme.DOCS), readme.DOCS) == text  # with its checks


def test_chromium_renders_every_section_and_image(report_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium); the HTML is checked by parsing above")
    out, report = report_run
    probe = tmp_path / "probe.html"  # the report plus a script that reports what the browser rendered
    probe.write_text(
        (out / "report.html")
        .read_text()
        .replace(
            "</body>",
            "<script>window.onload=()=>{const ok=[...document.images].filter(i=>i.complete&&i.naturalWidth>0).length;"
            "document.body.setAttribute('data-images-ok', ok);document.body.setAttribute('data-sections',"
            "document.querySelectorAll('section.claim').length);const t=document.querySelector('table.summary');"
            "document.body.setAttribute('data-summary-fits',"  # the headline column on screen, no sideways scroll
            "t.getBoundingClientRect().right<=document.body.getBoundingClientRect().right+1);}</script></body>",
        )
    )
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    n_claims = sum(len(s["claims"]) for s in report["presets"])
    n_images = sum(1 for s in report["presets"] for c in s["claims"] for d in c["sets"].values() if d["plot"])
    n_images += sum(1 for s in report["presets"] for f in s["figures"] if f["path"])
    assert f'data-sections="{n_claims}"' in dom
    assert f'data-images-ok="{n_images}"' in dom
    assert 'data-summary-fits="true"' in dom
    for s in report["presets"]:
        assert f'id="preset-{s["preset"]}"' in dom


def test_report_logged_as_one_offline_wandb_run(fake_two_presets, monkeypatch):
    from lsx.claims.report import log_wandb

    out, report = fake_two_presets
    monkeypatch.setenv("WANDB_MODE", "offline")
    log_wandb(report, out, {"name": "wandb", "project": "lsx", "mode": "offline"})
    runs = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


@pytest.mark.slow
def test_verdicts_agree_at_one_and_two_torch_threads(tmp_path, monkeypatch):
    """The issue's check, on the cheap preset: fort_toy at threads=1 and threads=2 (fresh caches each) agrees."""
    from lsx.cli.reproduce import reproduce

    verdicts = {}
    for threads in (1, 2):
        monkeypatch.setenv("LSX_CACHE_DIR", str(tmp_path / f"cache{threads}"))
        monkeypatch.setenv("LSX_OUTPUT_DIR", str(tmp_path / f"out{threads}"))
        report = reproduce(["fort_toy", "jobs=1", f"threads={threads}"], echo=lambda s: None)
        assert report["environment"]["torch_threads"] == threads
        verdicts[threads] = {c["id"]: c["verdict"] for s in report["presets"] for c in s["claims"]}
    assert verdicts[1] == verdicts[2]


def test_every_preset_with_claims_plans_two_disjoint_unit_sets():
    """`make reproduce` plans every preset before running any: one preset without discovery/replication sets
    (entezari_width and jordan_repair once had ``seeds: [0]``) stopped the whole reproduction."""
    from lsx.claims.inference import MIN_UNITS
    from lsx.claims.report import SANITY, paper_of
    from lsx.cli.reproduce import make_plan, presets_with_claims

    for preset in presets_with_claims():
        plan = make_plan(preset)
        disc, repl = plan.seeds["discovery"], plan.seeds["replication"]
        assert len(disc) >= MIN_UNITS and len(repl) >= MIN_UNITS and not set(disc) & set(repl), preset
        assert len(plan.points) % (len(disc) + len(repl)) == 0, preset
        # a paper preset's rows name its paper (entezari_width and jordan_repair once read "no paper")
        assert (paper_of(preset, plan.kind) == SANITY) == (plan.kind == "sanity"), preset
