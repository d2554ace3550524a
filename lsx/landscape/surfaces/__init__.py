"""Directions and what is drawn along them: filter-normalized directions, PCA trajectories, 1D curve taxonomy
and mining, weight histograms."""
