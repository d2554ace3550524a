"""The numerical core: pure torch/numpy/scipy, no Hydra, Lightning or W&B imports.

Everything here works on a model plus tensors (or on a loss of a flat parameter
vector), so it runs identically on toy landscapes, in tests and inside jobs.
"""
