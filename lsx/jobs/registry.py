"""Every analysis job by name → module (imported only when that job runs)."""
from .base import declare

declare("train", "lsx.jobs.train_only")
