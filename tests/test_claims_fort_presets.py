"""Every Fort preset's claims parse, name a registered statistic that accepts their args, quote the paper,
and the statistics of lsx.claims.stats_fort_paths name their independent unit."""

import pytest

from lsx.claims.verdicts import check_claims

FORT = (
    "fort_fig2",
    "fort_fig3",
    "fort_fig4",
    "fort_fig5",
    "fort_fig5_batch",
    "fort_fig5_dropout",
    "fort_fig5_l2",
    "fort_fig6",
    "fort_toy",
)
UNIT_STATS = ("fort_unit_value", "fort_list_at", "fort_threshold_robust")


@pytest.mark.parametrize("preset", FORT)
def test_fort_preset_claims_are_well_formed(preset):
    from lsx.cli.reproduce import make_plan

    plan = make_plan(preset)
    claims = check_claims(preset, plan.claims)
    for c in claims:
        assert all(c.get(k) for k in ("source", "statement", "paper_value", "note")), c["id"]
        assert "Fort & Jastrzebski 2019" in c["source"] and any(w in c["source"] for w in ("Fig.", "Sec.")), c["id"]
        if c["statistic"] in UNIT_STATS:
            assert "Unit:" in c["note"], c["id"]  # the note says what one independent unit is


def test_the_missing_central_claims_are_declared():
    from lsx.cli.reproduce import make_plan

    ids = {p: {c["id"] for c in make_plan(p).claims} for p in ("fort_fig3", "fort_fig4", "fort_fig6", "fort_toy")}
    assert "labels_change_in_one_half" in ids["fort_fig3"]
    assert "hull_stays_low_after_optimization" in ids["fort_fig4"]
    assert "swa_worse_than_a_single_snapshot_at_high_max_lr" in ids["fort_fig6"]
    assert {"toy_tunnel_low_where_line_high", "toy_deviations_form_two_blocks", "toy_radial_well_looks_round"} <= ids["fort_toy"]
