"""Toy landscapes with known answers: the n-wedge model and analytic 2D potentials."""
