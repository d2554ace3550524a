"""``python -m lsx.export``: VTK XML surfaces (.vts) and paths (.vtp), CSV; exact round trips, one-line errors."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import run_module
from stored_jobs import connector_job, curves_job, pca_job, surface_job, tunnel_job

from lsx.cli.export import export, main
from lsx.landscape.engine.storage import load_store
from lsx.utils.vtk_xml import HIDDEN_POINT, decode

DTYPES = {"Float64": "f8", "Int64": "i8", "Int32": "i4", "UInt8": "u1"}


def read_vtk(path) -> tuple[ET.Element, dict[str, dict[str, np.ndarray]]]:
    """Parse a written .vts/.vtp: the XML root and every DataArray by section (PointData, Points, ...)."""
    root = ET.parse(path).getroot()
    assert root.get("byte_order") == "LittleEndian" and root.get("header_type") == "UInt64"
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for section in root.iter():
        for a in section.findall("DataArray"):
            assert a.get("format") == "binary"
            v = decode(a.text, DTYPES[a.get("type")])
            arrays.setdefault(section.tag, {})[a.get("Name")] = v.reshape(-1, int(a.get("NumberOfComponents", 1))).squeeze()
    return root, arrays


def test_vts_round_trips_the_stored_grid_exactly(tmp_path):
    d = surface_job(tmp_path)
    (path,) = export(d, "vts")
    assert path == d / "export" / "surface.vts"
    st = load_store(d / "surface.h5")
    root, arrays = read_vtk(path)
    grid = root.find("StructuredGrid")
    assert root.get("type") == "StructuredGrid" and grid.get("WholeExtent") == "0 8 0 6 0 0"
    pts = arrays["Points"]["Points"]
    np.testing.assert_array_equal(pts[:, :2], st.coords)  # x fastest, then y: VTK's order and the store's
    np.testing.assert_array_equal(pts[:, 2], st.metrics["train_loss"])
    for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(arrays["PointData"][m], st.metrics[m])
    ghost = arrays["PointData"]["vtkGhostType"]
    assert list(np.flatnonzero(ghost)) == list(np.flatnonzero(np.isnan(st.metrics["train_loss"]))) == [8]
    assert ghost[8] == HIDDEN_POINT


def test_vts_log_height_and_another_metric(tmp_path):
    d = surface_job(tmp_path)
    st = load_store(d / "surface.h5")
    (path,) = export(d, "vts", log=True, z="test_loss", out_dir=tmp_path / "pv")
    _, arrays = read_vtk(path)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(arrays["Points"]["Points"][:, 2], np.log10(st.metrics["test_loss"]))
    np.testing.assert_array_equal(arrays["PointData"]["test_loss"], st.metrics["test_loss"])  # data stay unlogged
    assert "z = log10 test_loss" in path.read_text()[:300]


def test_vtp_paths_and_trajectory(tmp_path):
    d = connector_job(tmp_path)
    (path,) = export(d, "vtp")
    z = np.load(d / "connector.npz")
    root, arrays = read_vtk(path)
    piece = root.find("PolyData/Piece")
    assert piece.get("NumberOfLines") == "2" and piece.get("NumberOfPoints") == "34"
    np.testing.assert_array_equal(arrays["Lines"]["offsets"], [17, 34])
    np.testing.assert_array_equal(arrays["Lines"]["connectivity"], np.arange(34))
    pts = arrays["Points"]["Points"]
    np.testing.assert_array_equal(pts[:17, 0], z["t"])
    np.testing.assert_array_equal(pts[:, 2], np.concatenate([z["linear_metric_train_loss"], z["connector_metric_train_loss"]]))
    np.testing.assert_array_equal(arrays["PointData"]["eval_loss"], np.concatenate([z["linear_loss"], z["connector_loss"]]))
    assert "line 0: straight line; line 1: low-loss connector" in path.read_text()[:200]
    p = pca_job(tmp_path)
    (tpath,) = export(p, "vtp")
    _, arrays = read_vtk(tpath)
    traj = np.load(p / "pca.npz")["path"]
    np.testing.assert_array_equal(arrays["Points"]["Points"][:, :2], traj)
    np.testing.assert_array_equal(arrays["PointData"]["epoch"], np.arange(1, 6))
    assert arrays["Points"]["Points"][-1, 2] == pytest.approx(0.01)  # the final epoch sits on the stored grid node (0, 0)


def test_csv_is_exact(tmp_path):
    d = surface_job(tmp_path)
    (path,) = export(d, "csv")
    rows = list(csv.DictReader(path.open()))
    st = load_store(d / "surface.h5")
    assert len(rows) == 63 and list(rows[0]) == ["x", "y", "train_loss", "train_acc", "test_loss", "test_acc"]
    np.testing.assert_array_equal(np.array([[float(r["x"]), float(r["y"])] for r in rows]), st.coords)
    for m in st.metrics:
        np.testing.assert_array_equal(np.array([float(r[m]) for r in rows]), st.metrics[m])
    (cpath,) = export(curves_job(tmp_path), "csv")
    crows = list(csv.DictReader(cpath.open()))
    loss = np.load(tmp_path / "curves1d_demo" / "curves.npz")["train_loss"]
    assert len(crows) == 63 and crows[0]["curve"].startswith("dir seed 5")
    np.testing.assert_array_equal(np.array([float(r["train_loss"]) for r in crows]).reshape(3, 21), loss)


def test_writes_are_atomic_and_replace(tmp_path):
    d = surface_job(tmp_path)
    (path,) = export(d, "vts")
    first = path.read_text()
    export(d, "vts", log=True)
    assert path.read_text() != first and sorted(p.name for p in path.parent.iterdir()) == ["surface.vts"]  # no temp file left


@pytest.mark.parametrize(
    "make, fmt, message",
    [
        (
            tunnel_job,
            "vts",
            r"^lsx.export: error: job 'tunnel_width' in \S+ has no 2D surface to export as vts " r"\(surfaces come from: ",
        ),
        (curves_job, "vtp", r"^lsx.export: error: job 'curves1d' in \S+ has no path to export as vtp \(paths come from: "),
        (tunnel_job, "csv", r"^lsx.export: error: job 'tunnel_width' in \S+ has no surface or curve to export"),
        (surface_job, "obj", r"^lsx.export: error: unknown format 'obj'; valid: csv, vtp, vts$"),
        (None, "vts", r"^lsx.export: error: \S+ is not a directory; give a job directory"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, make, fmt, message):
    d = make(tmp_path) if make else tmp_path / "nope"
    assert main([str(d), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(message, err), err
    assert not (d / "export").exists()


def test_unfinished_job_and_unknown_metric_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert err == f"lsx.export: error: {tmp_path / 'empty'} is not a finished lsx job directory (no results.json)\n"
    d = surface_job(tmp_path)
    assert main([str(d), "--format", "vts", "--z", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no metric 'nope' for the height; valid: train_loss, train_acc, test_loss, test_acc" in err


def test_module_entry_point(tmp_path):
    d = surface_job(tmp_path)
    res = run_module("lsx.export", str(d), "--format", "vts", "--log")
    assert res.returncode == 0 and res.stdout.strip() == str(d / "export" / "surface.vts"), res.stderr
    bad = run_module("lsx.export", str(d), "--format", "stl")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown format 'stl'" in bad.stderr


def test_vtk_reads_the_files(tmp_path):
    """With the VTK library installed (not in the test extra: ~700 MB), its XML readers open both files."""
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    d = surface_job(tmp_path)
    (vts,) = export(d, "vts")
    r = vtk.vtkXMLStructuredGridReader()
    r.SetFileName(str(vts))
    r.Update()
    g = r.GetOutput()
    dims = [0, 0, 0]
    g.GetDimensions(dims)
    assert dims == [9, 7, 1] and g.HasAnyBlankPoints()
    stored = load_store(d / "surface.h5").metrics["test_acc"]
    np.testing.assert_array_equal(vtk_to_numpy(g.GetPointData().GetArray("test_acc")), stored)
    (vtp,) = export(connector_job(tmp_path), "vtp")
    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(vtp))
    r.Update()
    assert r.GetOutput().GetNumberOfLines() == 2 and r.GetOutput().GetNumberOfPoints() == 34
