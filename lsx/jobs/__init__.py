"""Analysis jobs: one module per job, registered by name (``analysis=<name>``)."""

from .base import JOBS, JobContext, JobOutput, get_job, register_job

__all__ = ["JOBS", "JobContext", "JobOutput", "get_job", "register_job"]
