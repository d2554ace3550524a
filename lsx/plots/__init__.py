"""Matplotlib figures (Agg backend: works headless, in tests and on clusters)."""

import matplotlib

matplotlib.use("Agg")
