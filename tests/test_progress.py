"""Long loops report off a terminal: periodic lines with rate and ETA, one closing line, nothing duplicated."""

from __future__ import annotations

import logging
import threading

from lsx.landscape.engine.progress import LogTicker, progress_iter, ticker


def test_log_ticker_prints_every_interval_with_rate_and_eta(caplog):
    now = [0.0]
    tick = LogTicker("landscape points", 100, every_s=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="lsx.progress"):
        for done in range(1, 101):
            now[0] += 1.0  # one point a second
            tick(done)
        tick(None)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "landscape points: 30/100 (30%), 1 pt/s, ETA 1m10s"
    assert len(lines) == 4 and lines[-1] == "landscape points: 100/100 done in 1m40s"  # at 30, 60, 90, then the end


def test_ticker_modes(caplog):
    seen = []
    ticker(lambda d, t: seen.append((d, t)), 5, "x")(3)
    assert seen == [(3, 5)]
    with caplog.at_level(logging.INFO, logger="lsx.progress"):
        assert list(progress_iter(range(3), 3, "directions", False)) == [0, 1, 2]
        ticker("log", 3, "x", rank=1)(2)  # other ranks stay silent
    assert not caplog.records


def test_a_waiting_lock_says_why(tmp_path, caplog):
    from lsx.utils.io import file_lock

    held, release = threading.Event(), threading.Event()

    def holder():
        with file_lock(tmp_path / "job"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    with caplog.at_level(logging.INFO, logger="lsx"):
        with file_lock(tmp_path / "job"):
            pass
    t.join()
    assert any("another process holds its lock" in r.getMessage() for r in caplog.records)
