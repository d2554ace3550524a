"""VTK XML files (the formats ParaView opens) written from numpy, without the VTK library.

Why no VTK dependency: the files are simple XML; writing them here keeps ``pip install lsx`` light
and lets a test read them back byte for byte. Arrays are inline ``binary`` (base64 of a UInt64 byte
count followed by the little-endian values), so float64 values, NaN included, round-trip exactly.

- :func:`structured_grid` → ``.vts`` (``vtkStructuredGrid``): a surface z = f(x, y) with point data.
- :func:`polylines` → ``.vtp`` (``vtkPolyData``): one poly-line per path, with point and cell data.

Points whose height is not finite (a diverged point of a surface) are flagged in the standard
``vtkGhostType`` array as hidden (``HIDDENPOINT``): ParaView skips the cells that touch them.
"""

from __future__ import annotations

import base64
from typing import Mapping, Sequence

import numpy as np

HEADER = '<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" header_type="UInt64">'
HIDDEN_POINT = 2  # vtkDataSetAttributes::HIDDENPOINT
TYPES = {"f8": "Float64", "f4": "Float32", "i8": "Int64", "i4": "Int32", "u1": "UInt8"}


def encode(values: np.ndarray) -> str:
    """Inline binary payload of one DataArray: base64(UInt64 byte count + little-endian values)."""
    a = np.ascontiguousarray(values)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    raw = a.tobytes()
    return base64.b64encode(np.uint64(len(raw)).astype("<u8").tobytes() + raw).decode("ascii")


def decode(text: str, dtype: str) -> np.ndarray:
    """The values of an inline binary DataArray written by :func:`encode` (for tests and readers)."""
    raw = base64.b64decode(text.strip())
    n = int(np.frombuffer(raw[:8], "<u8")[0])
    return np.frombuffer(raw[8 : 8 + n], np.dtype(dtype).newbyteorder("<")).copy()


def _array(name: str | None, values: np.ndarray, components: int = 1) -> str:
    a = np.asarray(values)
    kind = TYPES.get(a.dtype.str.lstrip("<>|="))
    if kind is None:
        raise ValueError(f"VTK export: array {name!r} has dtype {a.dtype}; valid: {', '.join(TYPES)}")
    nm = f' Name="{_attr(name)}"' if name else ""
    return f'<DataArray type="{kind}"{nm} NumberOfComponents="{components}" format="binary">' f"{encode(a.ravel())}</DataArray>"


def _attr(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _point_data(data: Mapping[str, np.ndarray], n: int, ghost: np.ndarray | None) -> str:
    arrays = []
    for name, v in data.items():
        v = np.asarray(v, np.float64).ravel()
        if v.size != n:
            raise ValueError(f"VTK export: point array {name!r} has {v.size} values for {n} points")
        arrays.append(_array(name, v))
    if ghost is not None and ghost.any():
        arrays.append(_array("vtkGhostType", ghost.astype(np.uint8)))
    return f"<PointData>{''.join(arrays)}</PointData>"


def structured_grid(x: np.ndarray, y: np.ndarray, z: np.ndarray, point_data: Mapping[str, np.ndarray], comment: str = "") -> str:
    """A ``.vts`` surface: points (x[i], y[j], z[j, i]) with x varying fastest (VTK's order, and
    ``values[i_y, i_x].ravel()``'s), extent nx × ny × 1; every ``point_data`` array is ``[i_y, i_x]``."""
    x, y, z = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(z, np.float64)
    if z.shape != (len(y), len(x)):
        raise ValueError(f"VTK export: heights of shape {z.shape} for a grid of {len(y)} × {len(x)} (values[i_y, i_x])")
    X, Y = np.meshgrid(x, y)
    pts = np.stack([X.ravel(), Y.ravel(), z.ravel()], axis=1)
    ghost = np.where(np.isfinite(pts[:, 2]), 0, HIDDEN_POINT)
    ext = f"0 {len(x) - 1} 0 {len(y) - 1} 0 0"
    note = f"<!-- {comment.replace('--', '-')} -->\n" if comment else ""
    return (
        f'<?xml version="1.0"?>\n{note}{HEADER.format(kind="StructuredGrid")}\n<StructuredGrid WholeExtent="{ext}">\n'
        f'<Piece Extent="{ext}">\n{_point_data(point_data, len(pts), ghost)}\n'
        f"<Points>{_array('Points', pts, 3)}</Points>\n</Piece>\n</StructuredGrid>\n</VTKFile>\n"
    )


def polylines(lines: Sequence[np.ndarray], point_data: Mapping[str, Sequence[np.ndarray]], names: Sequence[str] = ()) -> str:
    """A ``.vtp`` of poly-lines: ``lines[k]`` is an (N_k, 3) array of points; ``point_data[name][k]`` holds
    its N_k values; cell data ``line`` numbers the lines (their names are in the file's comment)."""
    pts = [np.asarray(p, np.float64).reshape(-1, 3) for p in lines]
    if not pts:
        raise ValueError("VTK export: no poly-line to write")
    counts = np.array([len(p) for p in pts], np.int64)
    allp = np.concatenate(pts)
    data = {}
    for name, per_line in point_data.items():
        if len(per_line) != len(pts):
            raise ValueError(f"VTK export: point array {name!r} has {len(per_line)} lines of values for {len(pts)} lines")
        data[name] = np.concatenate([np.asarray(v, np.float64).ravel() for v in per_line])
    ghost = np.where(np.isfinite(allp).all(1), 0, HIDDEN_POINT)
    conn = np.arange(len(allp), dtype=np.int64)
    offsets = np.cumsum(counts)
    note = "; ".join(f"line {k}: {n}" for k, n in enumerate(names)).replace("--", "-")
    return (
        f'<?xml version="1.0"?>\n{f"<!-- {note} -->" + chr(10) if note else ""}{HEADER.format(kind="PolyData")}\n<PolyData>\n'
        f'<Piece NumberOfPoints="{len(allp)}" NumberOfVerts="0" NumberOfLines="{len(pts)}" '
        f'NumberOfStrips="0" NumberOfPolys="0">\n'
        f"{_point_data(data, len(allp), ghost)}\n<CellData>{_array('line', np.arange(len(pts), dtype=np.int32))}</CellData>\n"
        f"<Points>{_array('Points', allp, 3)}</Points>\n"
        f"<Lines>{_array('connectivity', conn)}{_array('offsets', offsets)}</Lines>\n</Piece>\n</PolyData>\n</VTKFile>\n"
    )
