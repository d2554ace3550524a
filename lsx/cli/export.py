"""``python -m lsx.export <job_dir> --format vts|vtp|csv [--log] [--z train_loss] [--out DIR]``: a finished
job's stored surfaces and paths as files ParaView (or a spreadsheet) opens.

- ``vts``: each 2D surface as a VTK structured grid, z = the loss (``--log``: log10 of it), every stored
  metric (losses, accuracies) as point data.
- ``vtp``: each path (interpolation line, connector, AutoNEB minimum-energy path, PCA training trajectory)
  as VTK poly-lines: x = position along the path, z = its loss (a trajectory: its plane coordinates and
  the stored surface interpolated under it, as the trajectory's own losses were not evaluated).
- ``csv``: every surface (x, y, metrics) and curve family (curve, x, metrics), values written exactly.

The numbers are read from the job's stores (:mod:`lsx.tracking.job_data`), never recomputed; files are
written atomically into ``<job_dir>/export/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from lsx.tracking.job_data import CurveFamily, JobViews, SurfaceView, jobs_with_views, read_job

FORMATS = ("csv", "vtp", "vts")
SURFACE_JOBS = ("pca_trajectory", "plane", "radial_tunnels", "surface2d", "surface_kinds")
PATH_JOBS = ("autoneb", "connector", "interpolation", "pca_trajectory")


class ExportError(ValueError):
    """Bad input to the export: its message is the one line the command prints."""


def height(values: np.ndarray, log: bool) -> np.ndarray:
    """z of the exported geometry: the values, or log10 of them (NaN where not positive) with ``--log``."""
    v = np.asarray(values, np.float64)
    if not log:
        return v
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.where(v > 0, v, np.nan))


def _z_metric(values: dict[str, np.ndarray], z: str, where: str) -> str:
    if z in values:
        return z
    raise ExportError(f"{where} has no metric {z!r} for the height; valid: {', '.join(values)}")


def _fmt(v: float) -> str:
    return repr(float(v))  # shortest text that reads back to the same float64


def surface_csv(s: SurfaceView) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x", "y", *s.values])
    for j, yv in enumerate(s.y):
        for i, xv in enumerate(s.x):
            w.writerow([_fmt(xv), _fmt(yv), *(_fmt(v[j, i]) for v in s.values.values())])
    return buf.getvalue()


def curves_csv(f: CurveFamily) -> str:
    names = list(dict.fromkeys(m for c in f.curves for m in c.values))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["curve", "x", *names])
    for c in f.curves:
        for k, xv in enumerate(c.x):
            w.writerow([c.label, _fmt(xv), *(_fmt(c.values[m][k]) if m in c.values else "nan" for m in names)])
    return buf.getvalue()


def surface_vts(s: SurfaceView, z: str, log: bool) -> str:
    from lsx.utils.vtk_xml import structured_grid

    m = _z_metric(s.values, z, f"surface {s.key} ({s.source})")
    note = f"lsx {s.key} from {s.source}: z = {'log10 ' if log else ''}{m}; x = {s.xlabel}; y = {s.ylabel}"
    return structured_grid(s.x, s.y, height(s.values[m], log), s.values, note)


def paths_vtp(views: JobViews, z: str, log: bool) -> dict[str, str]:
    """One .vtp per curve family along paths (its lines: straight line, connector, MEP) and per trajectory."""
    from lsx.utils.vtk_xml import polylines

    out = {}
    for f in (f for f in views.curves if f.is_path):
        lines, names = [], []
        metrics = list(dict.fromkeys(m for c in f.curves for m in c.values))
        data: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
        for c in f.curves:
            zm = _z_metric(c.values, z, f"path {f.key}: {c.label} ({f.source})")
            lines.append(np.stack([c.x, np.zeros_like(c.x), height(c.values[zm], log)], 1))
            names.append(c.label)
            for m in metrics:
                data[m].append(c.values.get(m, np.full(len(c.x), np.nan)))
        out[f"{f.key}.vtp"] = polylines(lines, data, names)
    for s in (s for s in views.surfaces if s.trajectory is not None):
        from lsx.plots.interactive import _at

        zm = _z_metric(s.values, z, f"surface {s.key} ({s.source})")
        under = _at(s, zm, s.trajectory)
        pts = np.column_stack([s.trajectory, height(under, log)])
        epochs = np.array([float(t.split()[-1]) if t.split()[-1].isdigit() else np.nan for t in s.trajectory_labels])
        out[f"{s.key}_trajectory.vtp"] = polylines([pts], {"epoch": [epochs], f"{zm}_interpolated": [under]}, ["trajectory"])
    return out


def export(
    job_dir: str | Path, fmt: str, log: bool = False, z: str = "train_loss", out_dir: str | Path | None = None
) -> list[Path]:
    """Write the job's surfaces (vts), paths (vtp) or both as tables (csv); returns the written paths."""
    from lsx.utils.io import atomic_write_text

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        raise ExportError(f"{job_dir} is not a directory; give a job directory (outputs/jobs/<job>_<experiment>_<hash>)")
    views = read_job(job_dir)
    files: dict[str, str] = {}
    if fmt == "vts":
        files = {f"{s.key}.vts": surface_vts(s, z, log) for s in views.surfaces}
        if not files:
            raise ExportError(
                f"job {views.job!r} in {job_dir} has no 2D surface to export as vts "
                f"(surfaces come from: {', '.join(SURFACE_JOBS)})"
            )
    elif fmt == "vtp":
        files = paths_vtp(views, z, log)
        if not files:
            raise ExportError(
                f"job {views.job!r} in {job_dir} has no path to export as vtp " f"(paths come from: {', '.join(PATH_JOBS)})"
            )
    else:
        files = {f"{s.key}.csv": surface_csv(s) for s in views.surfaces} | {f"{f.key}.csv": curves_csv(f) for f in views.curves}
        if not files:
            raise ExportError(
                f"job {views.job!r} in {job_dir} has no surface or curve to export "
                f"(they come from: {', '.join(jobs_with_views())})"
            )
    target = Path(out_dir) if out_dir else job_dir / "export"
    written = []
    for name, text in files.items():
        atomic_write_text(target / name, text)
        written.append(target / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lsx.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("job_dir", type=Path, help="a finished job directory (holds results.json)")
    ap.add_argument("--format", required=True, help=f"one of {', '.join(FORMATS)}")
    ap.add_argument("--log", action="store_true", help="z = log10 of the loss (vts, vtp)")
    ap.add_argument("--z", default="train_loss", help="the stored metric used as height (default train_loss)")
    ap.add_argument("--out", type=Path, help="output directory (default <job_dir>/export)")
    args = ap.parse_args(argv)
    try:
        written = export(args.job_dir, args.format, args.log, args.z, args.out)
    except ExportError as err:
        print(f"lsx.export: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # an unreadable or foreign job directory: its message names the file
        print(f"lsx.export: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    for p in written:
        print(p)
    return 0


def cli() -> None:
    """``python -m lsx.export``."""
    sys.exit(main())
