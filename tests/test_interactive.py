"""Interactive (Plotly) figures: built from the stored files, the same numbers as the stores and the export,
plotly.js once per page and offline, rendered by headless Chromium without console errors, logged to W&B."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("plotly", reason="plotly is in the test extra: pip install -e '.[test]'")

from stored_jobs import connector_job, curves_job, pca_job, surface_job, tunnel_job  # noqa: E402

from lsx.plots import interactive  # noqa: E402
from lsx.tracking.job_data import read_job  # noqa: E402


def decode_plotly(v):
    """A figure-JSON array back to numpy: Plotly's {dtype, bdata[, shape]} or a plain list."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
        shape = v.get("shape")
        if isinstance(shape, str):
            shape = [int(s) for s in shape.split(",")]
        return a.reshape(shape) if shape else a
    return np.asarray(v, dtype=np.float64)


def page_specs(page: str) -> list[dict]:
    return [
        json.loads(m.replace("<\\/", "</"))
        for m in re.findall(
            r'<script type="application/json" class="lsx-plot-spec" data-target="[^"]+">(.*?)</script>', page, re.S
        )
    ]


def test_same_numbers_in_store_npz_figure_page_and_export(tmp_path):
    from lsx.cli.export import export
    from lsx.landscape.engine.storage import load_store
    from lsx.utils.vtk_xml import decode

    d = surface_job(tmp_path)
    st = load_store(d / "surface.h5")
    stored = {m: st.metrics[m].reshape(7, 9) for m in st.metrics}  # row-major grid: values[i_y, i_x]
    npz = np.load(d / "surface_grid.npz")
    (view,) = read_job(d).surfaces
    fig = interactive.surface_figure(view)
    assert interactive.write_job_page(d) == {"interactive": "interactive.html"}
    (spec,) = page_specs((d / "interactive.html").read_text())
    vts = export(d, "vts")[0].read_text()
    arrays = dict(re.findall(r'<DataArray type="Float64" Name="([^"]+)" NumberOfComponents="\d" format="binary">([^<]+)<', vts))
    for m, values in stored.items():
        assert np.isnan(values).sum() == 1  # the diverged corner stays NaN everywhere
        np.testing.assert_array_equal(npz[m], values)
        np.testing.assert_array_equal(view.values[m], values)
        np.testing.assert_array_equal(decode(arrays[m], "f8").reshape(7, 9), values)
    custom = decode_plotly(spec["data"][0]["customdata"])
    for k, m in enumerate(view.values):
        np.testing.assert_array_equal(custom[..., k], stored[m])  # what the hover shows
    for trace, m in ((0, "train_loss"), (2, "test_loss")):  # one surface (and its optima markers) per stored loss
        np.testing.assert_array_equal(np.asarray(fig.data[trace].z), stored[m])
        np.testing.assert_array_equal(decode_plotly(spec["data"][trace]["z"]), stored[m])
    np.testing.assert_array_equal(decode_plotly(spec["data"][0]["x"]), npz["x"])
    np.testing.assert_array_equal(decode_plotly(spec["data"][0]["y"]), npz["y"])
    pts = decode(arrays["Points"], "f8").reshape(-1, 3)
    np.testing.assert_array_equal(pts[:, 2].reshape(7, 9), stored["train_loss"])


def test_surface_figure_marks_the_optimum_and_toggles_log(tmp_path):
    fig = interactive.surface_figure(read_job(surface_job(tmp_path)).surfaces[0])
    kinds = [t.type for t in fig.data]
    assert kinds == ["surface", "scatter3d", "surface", "scatter3d"]
    marker = fig.data[1]
    assert list(marker.text) == ["θ* (trained)"] and (marker.x[0], marker.y[0]) == (0.0, 0.0)
    assert marker.z[0] == pytest.approx(0.01)  # the stored value at the grid node (0, 0)
    scale, metric = fig.layout.updatemenus
    assert [b.label for b in scale.buttons] == ["linear", "log"] and fig.layout.scene.zaxis.type == "log"  # job's log_scale
    assert [b.label for b in metric.buttons] == ["train loss", "test loss"]
    assert list(metric.buttons[1].args) == [{"visible": [False, False, True, True]}, {"scene.zaxis.title.text": "test loss"}]
    assert "α=" in fig.data[0].hovertemplate and "β=" in fig.data[0].hovertemplate
    assert "train accuracy" in fig.data[0].hovertemplate and "test loss" in fig.data[0].hovertemplate


def test_no_log_toggle_without_decades():
    from lsx.tracking.job_data import SurfaceView

    x = np.linspace(-1, 1, 5)
    v = SurfaceView("s", "flat", x, x, {"train_loss": 1 + 0.1 * np.add.outer(x**2, x**2)}, "s.h5", log=True)
    fig = interactive.surface_figure(v)
    assert not fig.layout.updatemenus and fig.layout.scene.zaxis.type == "linear"
    assert interactive.spans_decades(np.array([0.01, 0.5])) and not interactive.spans_decades(np.array([1.0, 5.0, np.nan, 0.0]))


def test_pca_contours_with_the_trajectory(tmp_path):
    d = pca_job(tmp_path)
    (view,) = read_job(d).surfaces
    fig = interactive.contour_figure(view)
    assert [t.type for t in fig.data] == ["contour", "contour", "scatter", "scatter"]
    traj = fig.data[2]
    np.testing.assert_array_equal(np.column_stack([traj.x, traj.y]), np.load(d / "pca.npz")["path"])
    assert list(traj.text) == [f"epoch {e}" for e in range(1, 6)]
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(fig.data[1].z, np.log10(view.values["train_loss"]))
    assert fig.layout.xaxis.title.text.startswith("PC1 (80.0%")


def test_curve_families_mark_the_optima(tmp_path):
    (fam,) = read_job(curves_job(tmp_path)).curves
    fig = interactive.curves_figure(fam)
    loss = np.load(tmp_path / "curves1d_demo" / "curves.npz")["train_loss"]
    lines = [t for t in fig.data if t.mode == "lines" and t.name.endswith("train loss")]
    assert len(lines) == 3
    for t, row in zip(lines, loss):
        np.testing.assert_array_equal(t.y, row)
    star = fig.data[-1]
    assert star.name == "θ* (trained)" and list(star.x) == [0.0] * 3 and list(star.y) == pytest.approx(list(loss[:, 10]))
    assert any(t.yaxis == "y2" and t.visible == "legendonly" for t in fig.data)  # accuracies on the right axis
    (conn,) = read_job(connector_job(tmp_path)).curves
    cfig = interactive.curves_figure(conn)
    assert conn.is_path and [t.name for t in cfig.data[-2:]] == ["seed 0", "seed 1"]
    assert cfig.layout.yaxis.type == "log" and cfig.layout.updatemenus[0].buttons[1].label == "log"


def test_job_without_a_view_gets_no_page(tmp_path):
    d = tunnel_job(tmp_path)
    assert interactive.write_job_page(d) == {} and not (d / "interactive.html").exists()
    assert interactive.page_artifact(tmp_path / "missing", "surface2d", {}, {}) == {}  # a failing figure: warning only


def test_page_weight_and_plotly_once(tmp_path):
    from plotly.offline import get_plotlyjs

    d = surface_job(tmp_path, nx=51, ny=51)
    interactive.write_job_page(d)
    page = (d / "interactive.html").read_text()
    marker = get_plotlyjs()[:200]
    assert page.count(marker) == 1
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched: offline
    (spec_text,) = re.findall(r'class="lsx-plot-spec" data-target="[^"]+">(.*?)</script>', page, re.S)
    assert len(spec_text) < 1_000_000 / 2, len(spec_text)  # a 51×51 surface: well under 1 MB
    assert len(page) - len(get_plotlyjs()) < 1_000_000


def _report(tmp_path, jobs):
    from lsx.claims.report import render_html

    section = {
        "preset": "quickstart",
        "paper": "lsx sanity checks (no paper)",
        "header": "",
        "scale": "cpu",
        "seeds": {"discovery": [0], "replication": [1]},
        "n_jobs": len(jobs),
        "n_failed": 0,
        "run_time_s": 1.0,
        "claims": [],
        "figures": [],
        "jobs": [{"status": "ran", "overrides": [], "job_dir": str(j), "wall_s": 1.0} for j in jobs],
    }
    report = {
        "generated_at": "now",
        "code_version": "test",
        "command": "python -m lsx.reproduce quickstart",
        "summary": {},
        "presets": [section],
    }
    return render_html(report, tmp_path)


def test_report_embeds_each_jobs_figures_and_plotly_once(tmp_path):
    from plotly.offline import get_plotlyjs

    jobs = [surface_job(tmp_path / "a"), pca_job(tmp_path), connector_job(tmp_path), tunnel_job(tmp_path)]
    page = _report(tmp_path, jobs)
    assert page.count(get_plotlyjs()[:200]) == 1
    assert page.count('class="lsx-plot-spec"') == 3 and page.count('<details class="lsx-interactive">') == 3
    assert "Interactive figures" in page and not re.search(r"<script[^>]+src=", page)
    assert _report(tmp_path, [tunnel_job(tmp_path / "b")]).count(get_plotlyjs()[:200]) == 0  # no figure: no bundle


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


PROBE_HEAD = (
    "<script>window.__errs=[];window.addEventListener('error',function(e){window.__errs.push(String(e.message))});"
    "var __ce=console.error;console.error=function(){window.__errs.push([].map.call(arguments,String).join(' '));"
    "__ce.apply(console,arguments)};</script>"
)
PROBE_TAIL = (
    "<script>setTimeout(function(){var b=document.body;b.setAttribute('data-errors',JSON.stringify(window.__errs));"
    "b.setAttribute('data-svg',document.querySelectorAll('.lsx-plotly svg.main-svg').length);"
    "b.setAttribute('data-gl',document.querySelectorAll('.lsx-plotly canvas').length);"
    "b.setAttribute('data-drawn',document.querySelectorAll('.lsx-plotly[data-drawn]').length);"
    "var bg=document.querySelector('.lsx-plotly rect.bg');b.setAttribute('data-bg',bg?bg.style.fill:'');},2000)</script>"
)


def _render(page: str, path: Path) -> dict:
    """Load ``page`` in headless Chromium (software WebGL) and read what it drew and what it logged."""
    path.write_text(page.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>"))
    dom = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[-2000:]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', body.group(0)))
    attrs["data-errors"] = json.loads(attrs.get("data-errors", "null").replace("&quot;", '"'))
    return attrs


@pytest.mark.skipif(not _chromium(), reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
def test_chromium_draws_the_figures_without_console_errors(tmp_path):
    # one browser start (~10 s): a report with a 3D surface (WebGL), PCA contours and curves (SVG) in opened
    # <details>, and one more job left closed: not drawn until opened (browsers cap WebGL contexts per page)
    jobs = [surface_job(tmp_path), pca_job(tmp_path), curves_job(tmp_path), connector_job(tmp_path)]
    page = _report(tmp_path, jobs).replace('<details class="lsx-interactive">', '<details class="lsx-interactive" open>', 3)
    got = _render(page, tmp_path / "report.html")
    assert got["data-errors"] == [] and got["data-drawn"] == "3"
    assert int(got["data-gl"]) >= 1  # the 3D surface's WebGL canvas
    assert int(got["data-svg"]) >= 3 * 2  # every drawn figure's SVG layers (plot and its hover layer)
    # plotly's default template, once per page, drawn into every figure (its plot background; plotly.js alone: white)
    assert got["data-bg"] == "rgb(229, 236, 246)"
    assert page.count('id="lsx-plotly-template"') == 1 and page.count('"template":"lsx-page-template"') == 4


def test_wandb_offline_run_holds_the_html_panel(tmp_path, monkeypatch):
    from lsx.tracking.wandb_log import log_job

    monkeypatch.setenv("WANDB_MODE", "offline")
    d, run_dir = surface_job(tmp_path), tmp_path / "run"
    run_dir.mkdir()
    results = json.loads((d / "results.json").read_text())  # a job stored before interactive.html: built for the run
    c = {"seed": 0, "experiment_name": "quickstart", "logger": {"name": "wandb", "project": "lsx", "mode": "offline"}}
    log_job(c, run_dir, d, results)
    panels = sorted(run_dir.glob("wandb/offline-run-*/files/media/html/interactive/*.html"))
    assert len(panels) == 1 and "lsx-plot-spec" in panels[0].read_text()
    assert panels[0].stat().st_size > 1_000_000  # plotly.js inside: the panel works offline in W&B


def test_job_runner_lists_the_page_in_results(tmp_path, monkeypatch):
    """``python -m lsx.analyze`` writes interactive.html for a job with a surface and lists it in results.json."""
    import shutil as sh

    from lsx.cli.analyze import run_analysis
    from lsx.jobs import base, registry  # noqa: F401  (declares the jobs)
    from lsx.jobs.base import JobOutput

    made = surface_job(tmp_path / "made")

    def fake_surface2d(ctx):  # the stored files of a surface2d job, without training or evaluating
        for f in ("surface.h5", "surface_grid.npz"):
            sh.copy(made / f, ctx.job_dir / f)
        return JobOutput({"grid": [9, 7]}, {"data": "surface.h5", "grid": "surface_grid.npz"})

    base.get_job("surface2d")  # import the real module first, so it cannot re-register over the fake
    monkeypatch.setitem(base._FUNCS, "surface2d", fake_surface2d)
    c = {
        "analysis": {"job": "surface2d", "log_scale": True},
        "paths": {"output_root": str(tmp_path / "out")},
        "experiment_name": "t",
        "seed": 0,
    }
    res = run_analysis(c, tmp_path / "run", progress=False)
    job_dir = Path(res["job_dir"])
    assert res["artifacts"]["interactive"] == "interactive.html"
    assert json.loads((job_dir / "results.json").read_text())["artifacts"]["interactive"] == "interactive.html"
    (spec,) = page_specs((job_dir / "interactive.html").read_text())
    np.testing.assert_array_equal(decode_plotly(spec["data"][0]["z"]), np.load(made / "surface_grid.npz")["train_loss"])
