"""Evaluating a model at many points of parameter space: flat parameters, the fast evaluator, BatchNorm policy,
grids and the resumable store."""
