"""lsx: a Hydra-configured, reproducible suite for studying neural-network loss landscapes."""

__version__ = "0.1.0"
