"""Curvature of a minimizer: Hessian-vector products and spectra, convexity maps and sharpness, Gaussian-perturbation checks."""
