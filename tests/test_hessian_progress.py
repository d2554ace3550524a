"""Long Hessian loops report progress off a terminal: periodic log lines (progress="log"), as the surface engine does."""

import time

import torch

from lsx.landscape.curvature.hessian import hutchinson_trace, slq_density, top_eigenpairs
from lsx.landscape.engine import progress


def _quadratic(n: int = 40):
    a = torch.linspace(-1.0, 3.0, n, dtype=torch.float64)
    return (lambda t: 0.5 * (a * t * t).sum()), torch.zeros(n, dtype=torch.float64)


def test_hessian_stages_log_progress_lines(monkeypatch, caplog):
    # one line per product instead of one every 30 s; the values are those without progress
    monkeypatch.setattr(progress.LogTicker.__init__, "__defaults__", ("pt", 0.0, time.monotonic))
    f, theta = _quadratic()
    with caplog.at_level("INFO", logger="lsx.progress"):
        tr = hutchinson_trace(f, theta, 12, seed=0, progress="log")
        dens = slq_density(f, theta, 2, 10, seed=0, progress="log")
        la = top_eigenpairs(f, theta, 1, "LA", progress="log")
        sa = top_eigenpairs(f, theta, 2, "SA", progress="log")
    text = caplog.text
    for desc in (
        "Hessian trace (Hutchinson probes)",
        "Hessian density (SLQ, 2 probes)",
        "Hessian Lanczos LA (k=1)",
        "Hessian eigsh SA (k=2; of ARPACK's cap)",
    ):
        assert f"{desc}: 1/" in text and f"{desc}: " in text and " done in " in text, desc
    assert tr == hutchinson_trace(f, theta, 12, seed=0)
    assert (dens["density"] == slq_density(f, theta, 2, 10, seed=0)["density"]).all()
    assert abs(la.values[0] - 3.0) < 1e-4 and abs(sa.values.min() + 1.0) < 1e-4


def test_no_progress_logs_nothing(caplog):
    f, theta = _quadratic()
    with caplog.at_level("INFO", logger="lsx.progress"):
        hutchinson_trace(f, theta, 5, seed=0)
    assert "Hessian" not in caplog.text
