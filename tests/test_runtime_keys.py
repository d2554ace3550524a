"""Keys that say how a job runs (local worker processes), not what it computes: not hashed, validated."""

import pytest

from lsx.jobs.base import job_key


def test_analysis_workers_do_not_change_the_job_directory(compose):
    one = compose("analysis=surface2d")
    two = compose("analysis=surface2d", "analysis.workers=2")
    assert one["analysis"]["workers"] == 1 and two["analysis"]["workers"] == 2
    assert job_key(one) == job_key(two)
    assert job_key(compose("analysis=surface2d", "analysis.x.num=5")) != job_key(one)  # a real change still counts


def test_bad_worker_count_is_one_clear_error(compose):
    from lsx.cli.validate import validate_config

    with pytest.raises(ValueError, match="analysis.workers must be >= 1, got 0"):
        validate_config(compose("analysis=surface2d", "analysis.workers=0"))
