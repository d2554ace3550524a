"""Every analysis job by name → module (imported only when that job runs), and whether it shards over ranks.

``sharded=True``: under torchrun/srun the job spreads its work (points, directions, optima) over the ranks.
The others run on rank 0 alone while the other ranks wait (and train the optima it asks for); docs/scaling.md."""

from .base import declare

declare("train", "lsx.jobs.train_only", sharded=True)  # its optima, one per rank
declare("surface2d", "lsx.jobs.surface", sharded=True)
declare("curves1d", "lsx.jobs.curves", sharded=True)
declare("interpolation", "lsx.jobs.interpolation", sharded=True)
declare("plane", "lsx.jobs.plane", sharded=True)
declare("pca_trajectory", "lsx.jobs.pca_trajectory", sharded=True)
declare("weight_histograms", "lsx.jobs.weight_histograms")
declare("tunnel_width", "lsx.jobs.tunnel", sharded=True)
declare("radial_tunnels", "lsx.jobs.radial_tunnels", sharded=True)
declare("swa_ensemble", "lsx.jobs.swa")
declare("hessian", "lsx.jobs.hessian")
declare("curve_taxonomy", "lsx.jobs.curve_taxonomy", sharded=True)
declare("autoneb", "lsx.jobs.autoneb")
declare("toy_wedges", "lsx.jobs.toy_wedges")
declare("connector", "lsx.jobs.connector")
declare("mconnector", "lsx.jobs.connector")
declare("surface_kinds", "lsx.jobs.surface_pair", sharded=True)
declare("xu_theory", "lsx.jobs.xu_theory")
declare("mining", "lsx.jobs.mining")
declare("sharpness", "lsx.jobs.sharpness")
declare("permutation_barrier", "lsx.jobs.permutation_barrier")
