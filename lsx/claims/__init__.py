"""Claims as code: each reproduction preset names its paper's claims and a statistic lsx computes
from the preset's job results; the verdict follows from the statistic's interval, never by hand.

- :mod:`lsx.claims.records`    one finished job (config, metrics, the optima it trained)
- :mod:`lsx.claims.statistics` ``Estimate``, the registry and the generic statistics
- :mod:`lsx.claims.verdicts`   decision rules and the evaluation of one claim
- :mod:`lsx.claims.units`      a preset's independent unit and its two disjoint unit sets
- :mod:`lsx.claims.replication` each claim on both sets, and the headline (unstable when they disagree)
- :mod:`lsx.claims.figures`    report figures drawn across a preset's jobs
- :mod:`lsx.claims.report`     report.json and the self-contained report.html
- :mod:`lsx.claims.readme`     publishes a complete, clean report and the README's generated blocks
"""
