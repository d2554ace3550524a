"""Every analysis job by name → module (imported only when that job runs)."""
from .base import declare

declare("train", "lsx.jobs.train_only")
declare("surface2d", "lsx.jobs.surface")
declare("curves1d", "lsx.jobs.curves")
declare("interpolation", "lsx.jobs.interpolation")
declare("plane", "lsx.jobs.plane")
declare("pca_trajectory", "lsx.jobs.pca_trajectory")
declare("weight_histograms", "lsx.jobs.weight_histograms")
declare("tunnel_width", "lsx.jobs.tunnel")
declare("radial_tunnels", "lsx.jobs.radial_tunnels")
declare("swa_ensemble", "lsx.jobs.swa")
declare("hessian", "lsx.jobs.hessian")
declare("curve_taxonomy", "lsx.jobs.curve_taxonomy")
declare("autoneb", "lsx.jobs.autoneb")
declare("toy_wedges", "lsx.jobs.toy_wedges")
declare("connector", "lsx.jobs.connector")
declare("mconnector", "lsx.jobs.connector")
