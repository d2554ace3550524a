"""Interactive (Plotly) views of a job's stored surfaces and curves: rotate, zoom, hover, log toggle.

Why: a loss surface is a shape people want to turn; the static PNGs stay for print and the README.
Every number comes from :mod:`lsx.tracking.job_data` (the job's stored files, never recomputed), and
the arrays go into the page as Plotly's exact base64 float64 encoding, so the page shows the stored
values bit for bit.

Pages work offline: plotly.js is embedded once per page (:func:`page_scripts`), never fetched from a
CDN. Each figure is a ``<div>`` plus its JSON spec (:func:`figure_block`); a small loader draws the
figures that are visible and those inside a ``<details>`` when it is opened (and frees them when it
is closed: browsers allow only ~16 WebGL contexts per page, a report can hold more 3D surfaces).
"""

from __future__ import annotations

import functools
import hashlib
import html
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lsx.tracking.job_data import METRIC_LABELS, CurveFamily, JobViews, SurfaceView, read_job

log = logging.getLogger("lsx.interactive")

PAGE_NAME = "interactive.html"
LOSSES = ("train_loss", "test_loss", "eval_loss")
MENU_Y = 1.02  # menus just above the plot, under the title (TITLE)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def available() -> bool:
    """Whether plotly is installed (the ``test``/``interactive`` extra); without it no interactive page is made."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def spans_decades(*arrays: np.ndarray, decades: float = 1.0) -> bool:
    """Whether the positive finite values span at least ``decades`` powers of ten (a log axis helps)."""
    v = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays]) if arrays else np.array([])
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size and np.log10(v.max() / v.min()) >= decades)


def _title(text: str) -> dict[str, Any]:
    return dict(text=text, font=dict(size=14), x=0.5, xanchor="center", y=0.98, yref="container", yanchor="top")


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _hover(axes: Sequence[str], metrics: Sequence[str]) -> str:
    coords = "<br>".join(f"{a}=%{{{k}:.4g}}" for a, k in zip(axes, "xy"))
    vals = "<br>".join(f"{_label(m)}=%{{customdata[{i}]:.6g}}" for i, m in enumerate(metrics))
    return f"{coords}<br>{vals}<extra>%{{fullData.name}}</extra>"


def _losses(values: dict[str, np.ndarray]) -> list[str]:
    return [m for m in LOSSES if m in values] or list(values)[:1]


def _at(view: SurfaceView, metric: str, points: np.ndarray) -> np.ndarray:
    """The stored surface at (x, y) points: the grid value on a node, bilinear between nodes (marker heights only)."""
    from scipy.interpolate import RegularGridInterpolator

    f = RegularGridInterpolator((view.y, view.x), view.values[metric], bounds_error=False, fill_value=np.nan)
    return f(np.asarray(points, np.float64)[:, ::-1])


def _scale_menu(axis: str, initial: str) -> dict[str, Any]:
    return dict(
        type="buttons",
        direction="right",
        x=0.0,
        y=MENU_Y,
        xanchor="left",
        yanchor="bottom",
        showactive=True,
        active=0 if initial == "linear" else 1,
        pad={"r": 4, "t": 2},
        buttons=[
            dict(label="linear", method="relayout", args=[{axis: "linear"}]),
            dict(label="log", method="relayout", args=[{axis: "log"}]),
        ],
    )


def _metric_menu(labels: Sequence[str], groups: Sequence[Sequence[int]], n_traces: int, title_key: str) -> dict[str, Any]:
    """A dropdown showing one group of traces per entry (and naming it on the axis ``title_key``)."""
    buttons = []
    for lab, idx in zip(labels, groups):
        vis = [i in idx for i in range(n_traces)]
        buttons.append(dict(label=lab, method="update", args=[{"visible": vis}, {title_key: lab}]))
    return dict(type="dropdown", x=1.0, y=MENU_Y, xanchor="right", yanchor="bottom", buttons=buttons, active=0)


def surface_figure(view: SurfaceView):
    """A rotatable 3D surface (one trace per stored loss, switched by a menu), optima as markers,
    hover α, β and every stored metric, a linear/log z toggle when the loss spans decades."""
    import plotly.graph_objects as go

    metrics = list(view.values)
    custom = np.stack([view.values[m] for m in metrics], axis=-1)
    losses = _losses(view.values)
    traces, groups = [], []
    for k, m in enumerate(losses):
        idx = [len(traces)]
        traces.append(
            go.Surface(
                x=view.x,
                y=view.y,
                z=view.values[m],
                customdata=custom,
                name=_label(m),
                visible=k == 0,
                colorscale="Viridis",
                colorbar=dict(title=dict(text=_label(m)), len=0.75),
                hovertemplate=_hover(("α", "β"), metrics),
                contours=dict(z=dict(show=True, usecolormap=True, project=dict(z=True), width=1)),
            )
        )
        if view.markers:
            pts = np.array(list(view.markers.values()), np.float64)
            idx.append(len(traces))
            traces.append(
                go.Scatter3d(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    z=_at(view, m, pts),
                    mode="markers+text",
                    text=list(view.markers),
                    name="trained optima",
                    visible=k == 0,
                    textposition="top center",
                    marker=dict(size=5, color="red", symbol="diamond"),
                    hovertemplate=f"%{{text}}<br>α=%{{x:.4g}}<br>β=%{{y:.4g}}<br>{_label(m)}≈%{{z:.6g}}" "<extra></extra>",
                )
            )
        if view.trajectory is not None:
            idx.append(len(traces))
            traces.append(
                go.Scatter3d(
                    x=view.trajectory[:, 0],
                    y=view.trajectory[:, 1],
                    z=_at(view, m, view.trajectory),
                    mode="lines+markers",
                    text=view.trajectory_labels,
                    name="trajectory",
                    visible=k == 0,
                    line=dict(color="white", width=4),
                    marker=dict(size=3, color="white"),
                    hovertemplate="%{text}<br>α=%{x:.4g}<br>β=%{y:.4g}<extra>trajectory</extra>",
                )
            )
        groups.append(idx)
    fig = go.Figure(traces)
    initial = "log" if view.log and spans_decades(*(view.values[m] for m in losses)) else "linear"
    menus = [_scale_menu("scene.zaxis.type", initial)] if spans_decades(*(view.values[m] for m in losses)) else []
    if len(losses) > 1:
        menus.append(_metric_menu([_label(m) for m in losses], groups, len(traces), "scene.zaxis.title.text"))
    fig.update_layout(
        title=_title(view.title),
        height=560,
        margin=dict(l=0, r=0, t=90, b=0),
        updatemenus=menus,
        showlegend=False,
        scene=dict(
            xaxis_title=view.xlabel,
            yaxis_title=view.ylabel,
            zaxis=dict(title=_label(losses[0]), type=initial),
            aspectmode="manual",
            aspectratio=dict(x=1, y=1, z=0.7),
        ),
    )
    return fig


def contour_figure(view: SurfaceView):
    """Filled contours of the stored loss (linear or log10 levels, toggled) with the trajectory and optima on top."""
    import plotly.graph_objects as go

    metrics = list(view.values)
    custom = np.stack([view.values[m] for m in metrics], axis=-1)
    m = _losses(view.values)[0]
    z = view.values[m]
    with np.errstate(divide="ignore", invalid="ignore"):
        logz = np.log10(np.where(z > 0, z, np.nan))
    decades = spans_decades(z)
    start_log = view.log and decades
    traces = [
        go.Contour(
            x=view.x,
            y=view.y,
            z=z,
            customdata=custom,
            name=_label(m),
            ncontours=30,
            colorscale="Viridis",
            visible=not start_log,
            colorbar=dict(title=dict(text=_label(m))),
            hovertemplate=_hover(("α", "β"), metrics),
        )
    ]
    if decades:
        traces.append(
            go.Contour(
                x=view.x,
                y=view.y,
                z=logz,
                customdata=custom,
                name=f"log10 {_label(m)}",
                ncontours=30,
                colorscale="Viridis",
                visible=start_log,
                colorbar=dict(title=dict(text=f"log10 {_label(m)}")),
                hovertemplate=_hover(("α", "β"), metrics),
            )
        )
    if view.trajectory is not None:
        traces.append(
            go.Scatter(
                x=view.trajectory[:, 0],
                y=view.trajectory[:, 1],
                mode="lines+markers",
                name="trajectory",
                text=view.trajectory_labels,
                line=dict(color="white", width=2),
                marker=dict(size=6, color="white"),
                hovertemplate="%{text}<br>α=%{x:.4g}<br>β=%{y:.4g}<extra>trajectory</extra>",
            )
        )
    if view.markers:
        pts = np.array(list(view.markers.values()), np.float64)
        traces.append(
            go.Scatter(
                x=pts[:, 0],
                y=pts[:, 1],
                mode="markers+text",
                text=list(view.markers),
                name="trained optima",
                textposition="top center",
                textfont=dict(color="white"),
                marker=dict(size=12, color="red", symbol="star"),
                hovertemplate="%{text}<br>α=%{x:.4g}<br>β=%{y:.4g}<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    menus = []
    if decades:
        n = len(traces)
        menus.append(
            dict(
                type="buttons",
                direction="right",
                x=0.0,
                y=MENU_Y,
                xanchor="left",
                yanchor="bottom",
                active=1 if start_log else 0,
                buttons=[
                    dict(label="linear", method="restyle", args=[{"visible": [True, False] + [True] * (n - 2)}]),
                    dict(label="log", method="restyle", args=[{"visible": [False, True] + [True] * (n - 2)}]),
                ],
            )
        )
    fig.update_layout(
        title=_title(view.title),
        height=520,
        margin=dict(l=60, r=20, t=90, b=50),
        updatemenus=menus,
        showlegend=False,
        xaxis_title=view.xlabel,
        yaxis_title=view.ylabel,
    )
    return fig


def curves_figure(fam: CurveFamily):
    """1D curves: one line per (curve, stored loss); accuracies in the hover and as hidden lines on a right axis;
    the optima marked; a linear/log y toggle when the losses span decades."""
    import plotly.graph_objects as go

    traces = []
    dashes = {"train_loss": "solid", "test_loss": "dash", "eval_loss": "dot"}
    all_losses = []
    for i, c in enumerate(fam.curves):
        metrics = list(c.values)
        custom = np.stack([c.values[m] for m in metrics], axis=-1)
        colour = COLOURS[i % len(COLOURS)]
        for m in _losses(c.values):
            all_losses.append(c.values[m])
            traces.append(
                go.Scatter(
                    x=c.x,
                    y=c.values[m],
                    customdata=custom,
                    mode="lines",
                    name=f"{c.label}: {_label(m)}",
                    line=dict(color=colour, dash=dashes.get(m, "solid")),
                    hovertemplate=_hover(("α",), metrics),
                )
            )
        for m in (k for k in ("train_acc", "test_acc") if k in c.values):
            traces.append(
                go.Scatter(
                    x=c.x,
                    y=c.values[m],
                    customdata=custom,
                    mode="lines",
                    name=f"{c.label}: {_label(m)}",
                    yaxis="y2",
                    visible="legendonly",
                    line=dict(color=colour, dash="dashdot", width=1),
                    hovertemplate=_hover(("α",), metrics),
                )
            )
    for name, pos in fam.markers.items():
        ys = []
        for c in fam.curves:
            m = _losses(c.values)[0]
            ok = np.isfinite(c.values[m])
            inside = ok.any() and c.x[ok][0] <= pos <= c.x[ok][-1]
            ys.append(float(np.interp(pos, c.x[ok], c.values[m][ok])) if inside else np.nan)
        traces.append(
            go.Scatter(
                x=[pos] * len(ys),
                y=ys,
                mode="markers",
                name=name,
                marker=dict(size=11, color="red", symbol="star"),
                hovertemplate=f"{html.escape(name)}<br>α=%{{x:.4g}}<br>loss=%{{y:.6g}}<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    decades = spans_decades(*all_losses)
    initial = "log" if fam.log and decades else "linear"
    fig.update_layout(
        title=_title(fam.title),
        height=480,
        margin=dict(l=60, r=60, t=90, b=50),
        xaxis_title=fam.xlabel,
        yaxis=dict(title="loss", type=initial),
        yaxis2=dict(
            title="accuracy",
            overlaying="y",
            side="right",
            type="linear",
            range=[0, 1],
            showgrid=False,
            tickvals=[0, 0.25, 0.5, 0.75, 1],
        ),
        legend=dict(font=dict(size=10)),
        updatemenus=[_scale_menu("yaxis.type", initial)] if decades else [],
    )
    return fig


def job_figures(views: JobViews) -> list[tuple[str, Any]]:
    """(key, figure) for every stored surface (3D; the PCA plane as contours with its trajectory) and curve family."""
    figs = []
    for s in views.surfaces:
        figs.append((s.key, contour_figure(s) if s.trajectory is not None else surface_figure(s)))
    for c in views.curves:
        figs.append((c.key, curves_figure(c)))
    return figs


# ----------------------------------------------------------------------------- HTML
_LOADER = """
(function () {
  function draw(root) {
    root.querySelectorAll('script.lsx-plot-spec').forEach(function (s) {
      var el = document.getElementById(s.dataset.target);
      if (!el || el.dataset.drawn) return;
      var closed = el.closest('details:not([open])');
      if (closed) return;
      var f = JSON.parse(s.textContent);
      if (f.layout && f.layout.template === '%s') {
        f.layout.template = JSON.parse(document.getElementById('lsx-plotly-template').textContent);
      }
      el.dataset.drawn = '1';
      Plotly.newPlot(el, f.data, f.layout, {responsive: true, displaylogo: false});
    });
  }
  document.querySelectorAll('details.lsx-interactive').forEach(function (d) {
    d.addEventListener('toggle', function () {
      if (d.open) { draw(d); return; }
      d.querySelectorAll('.lsx-plotly[data-drawn]').forEach(function (el) { Plotly.purge(el); delete el.dataset.drawn; });
    });
  });
  draw(document);
})();
"""


def figure_id(*parts: Any) -> str:
    return "lsxplot-" + hashlib.sha1("\x00".join(map(str, parts)).encode()).hexdigest()[:12]


SHARED_TEMPLATE = "lsx-page-template"  # layout.template of a figure drawn with the page's one copy of the default


@functools.lru_cache(maxsize=1)
def _default_template() -> tuple[str, str]:
    """(name, JSON) of plotly's default template (~7 KB: once per page, not once per figure)."""
    import plotly.io as pio

    name = str(pio.templates.default)
    return name, pio.json.to_json_plotly(pio.templates[name].to_plotly_json()).replace("</", "<\\/")


def figure_json(fig: Any) -> str:
    """The figure's JSON (numpy arrays as exact base64 float64), safe inside a ``<script>`` element.

    A figure on plotly's default template names :data:`SHARED_TEMPLATE` instead of carrying its own copy;
    the page's loader puts the page's copy back (a report of ~270 figures was 1.9 MB of repeated templates)."""
    import plotly.io as pio

    spec = fig.to_plotly_json()
    name, _ = _default_template()
    if fig.layout.template == pio.templates[name]:
        spec["layout"]["template"] = SHARED_TEMPLATE
    return pio.to_json(spec, validate=False).replace("</", "<\\/")


def figure_block(fig: Any, fid: str, caption: str = "") -> str:
    height = int(fig.layout.height or 500)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="lsx-figure"><div id="{fid}" class="lsx-plotly" style="width:100%;height:{height}px"></div>'
        f'<script type="application/json" class="lsx-plot-spec" data-target="{fid}">{figure_json(fig)}</script>'
        f"{cap}</figure>"
    )


def page_scripts(body: str = "") -> str:
    """plotly.js (embedded, no CDN) and the loader: once per page, and only when ``body`` holds a figure
    (``""`` when it holds none, or plotly is not installed)."""
    if (body and "lsx-plot-spec" not in body) or not available():
        return ""
    from plotly.offline import get_plotlyjs

    _, template = _default_template()
    return (
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        f'<script type="application/json" id="lsx-plotly-template">{template}</script>\n'
        f'<script type="text/javascript">{_LOADER % SHARED_TEMPLATE}</script>'
    )


def job_blocks(views: JobViews) -> str:
    """The figure blocks of one job (captions name the stored file each one shows)."""
    src = {s.key: s.source for s in views.surfaces} | {c.key: c.source for c in views.curves}
    return "".join(
        figure_block(fig, figure_id(views.job_dir.resolve(), key), f"{views.job}: {key} (from {src[key]})")
        for key, fig in job_figures(views)
    )


def job_page_html(views: JobViews) -> str:
    body = job_blocks(views)
    title = html.escape(f"{views.job}: {views.job_dir.name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
        f'<body style="font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto">\n'
        f'<h1 style="font-size:1.3em">{title}</h1>\n'
        f"<p>Drag to rotate or pan, scroll to zoom, hover for values; the buttons switch linear/log scale "
        f"and the shown loss. "
        f"Values are the job's stored results.</p>\n{body}\n{page_scripts()}\n</body></html>\n"
    )


def write_job_page(
    job_dir: str | Path,
    job: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    out: str | Path | None = None,
) -> dict[str, str]:
    """Write ``interactive.html`` (or ``out``) for a job that has a surface or curve; returns the artifact
    entry ({} when the job has none, or plotly is not installed). ``job``/``config``/``metrics`` default
    to the job directory's results.json and config.yaml."""
    from lsx.utils.io import atomic_write_text

    if not available():
        log.warning("plotly is not installed (pip install -e '.[interactive]'): no %s", PAGE_NAME)
        return {}
    views = read_job(job_dir, job, config, metrics)
    if views.empty:
        return {}
    atomic_write_text(Path(out) if out else Path(job_dir) / PAGE_NAME, job_page_html(views))
    return {"interactive": PAGE_NAME}


def page_artifact(job_dir: str | Path, job: str, config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """:func:`write_job_page` for the job runner: a failing figure is a warning, never a failed job."""
    try:
        return write_job_page(job_dir, job, config, metrics)
    except Exception as err:
        log.warning("no %s for %s: %s: %s", PAGE_NAME, job_dir, type(err).__name__, err)
        return {}


def report_section(jobs: Sequence[dict[str, Any]]) -> str:
    """The interactive figures of a report section's finished jobs, one closed ``<details>`` per job (drawn
    when opened). Never raises: a job whose files cannot be read gets a one-line note instead."""
    if not available():
        return ""
    parts = []
    for j in jobs:
        d = j.get("job_dir")
        if j.get("status") == "failed" or not d or not (Path(d) / "results.json").is_file():
            continue
        try:
            views = read_job(d)
            if views.empty:
                continue
            blocks = job_blocks(views)
        except Exception as err:  # a figure must not cost the report
            parts.append(
                f'<p class="flag">interactive figure of {html.escape(Path(d).name)} failed: '
                f"{html.escape(type(err).__name__)}: {html.escape(str(err))}</p>"
            )
            continue
        n = len(views.surfaces) + len(views.curves)
        parts.append(
            f'<details class="lsx-interactive"><summary>{html.escape(views.job)}: {html.escape(Path(d).name)} '
            f"({n} interactive figure{'s' if n != 1 else ''})</summary>{blocks}</details>"
        )
    return f"<h4>Interactive figures</h4>{''.join(parts)}" if parts else ""
