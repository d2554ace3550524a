"""Bad input is refused with one line before Hydra creates anything (no run directory, no training)."""

from __future__ import annotations

import pytest
from conftest import run_module

BAD_TRAIN = {
    "seed=abc": "seed must be an integer, got 'abc'",
    "seed=1.5": "seed must be an integer, got 1.5",
    "training.epochs=0": "training.epochs must be >= 1, got 0",
    "training.epochs=abc": "training.epochs must be an integer",
    "optimizer.lr=-1": "optimizer.lr must be a number > 0, got -1",
    "data.batch_size=0": "data.batch_size must be >= 1, got 0",
    "model.dropout=1.5": "model.dropout must be a probability in [0, 1), got 1.5",
    "trainer=gpu": "no CUDA GPU is visible",
    "+trainer.fast_dev_run=true": "trainer.fast_dev_run is not an lsx trainer option",
    "data=cifar10": "torchvision is missing or broken",
}
BAD_ANALYZE = {
    "": "no analysis selected; add analysis=<job>, valid jobs:",
    "analysis=surface2d analysis.x.num=1 analysis.y.num=1": "analysis.x.num must be >= 2 for a 2D surface",
    "analysis=surface2d analysis.x.min=1 analysis.x.max=-1": "analysis.x: empty range [1, -1]",
    "analysis=plane analysis.seeds=[0,0,1]": "analysis.seeds repeats seed(s) [0]",
    "analysis=connector analysis.seeds=[0,0]": "analysis.seeds repeats seed(s) [0]",
    "analysis=surface2d analysis.center_ckpt=/no/such.pt": "analysis.center_ckpt: no checkpoint file at /no/such.pt",
    "experiment=quickstart scale=gpu": "quickstart has no scale 'gpu'; valid scales: paper, cpu",
    "experiment=fort_toy scale=cpuu --cfg job": "fort_toy has no scale 'cpuu'; valid scales: paper, cpu",
    "analysis=interpolation analysis.align=sideways": "analysis.align='sideways'; valid: none, weight, activation",
    "analysis=surface2d analysis.align=weight": "unknown key 'analysis.align'; valid keys under 'analysis': job,",
    "analysis=hessian analysis.k_bottom=-1": "analysis.k_bottom must be >= 0, got -1",
    "analysis=hessian analysis.slq_probes=1.5": "analysis.slq_probes must be an integer, got 1.5",
    "analysis=hessian analysis.k=0": "analysis.k must be >= 1, got 0",
    "-m analysis=surface2d optimizer.lr=0.1,-1": "optimizer.lr must be a number > 0, got -1 (sweep job",
}


def _refused(capsys, argv: list[str], entry: str) -> str:
    from lsx.cli.checks import exit_on_unknown_keys

    with pytest.raises(SystemExit) as exc:
        exit_on_unknown_keys(argv, entry=entry)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lsx: error: "), err
    return err


@pytest.mark.parametrize("arg", sorted(BAD_TRAIN))
def test_bad_training_values_are_refused_before_hydra(arg, lsx_dirs, capsys):
    cache, out = lsx_dirs
    assert BAD_TRAIN[arg] in _refused(capsys, arg.split(), "train")
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize("args", sorted(BAD_ANALYZE))
def test_bad_analysis_values_are_refused_before_hydra(args, lsx_dirs, capsys):
    cache, out = lsx_dirs
    assert BAD_ANALYZE[args] in _refused(capsys, args.split(), "analyze")
    assert not out.exists() and not cache.exists()


def test_good_command_lines_pass_the_checks(lsx_dirs):
    from lsx.cli.checks import config_message

    assert config_message(["analysis=surface2d", "training.epochs=1"], "analyze") is None
    assert config_message(["-m", "optimizer.lr=0.1,0.01", "seed=0,1"], "train") is None
    assert config_message(["experiment=quickstart", "scale=cpu"], "analyze") is None


def test_the_command_itself_leaves_no_directory(lsx_dirs):
    """Wired into ``python -m lsx.analyze``: exit 2, one line, nothing under the output or cache root."""
    cache, out = lsx_dirs
    res = run_module("lsx.analyze", "analysis=surface2d", "optimizer.lr=-1")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["lsx: error: optimizer.lr must be a number > 0, got -1"]
    assert not out.exists() and not cache.exists()
