"""Paths between and around optima: NEB/AutoNEB minimum energy paths, the minimum spanning tree over minima,
low-loss connectors, radial tunnels, SWA vs ensembles."""
