"""Every experiment (at every scale it declares) and every sweep template composes."""

import os

import pytest
import yaml
from conftest import ROOT, run_module
from omegaconf import OmegaConf

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
TEMPLATES = sorted(p.stem for p in (ROOT / "multirun_templates").glob("*.yaml"))


def _scales(name: str) -> list[str]:
    text = (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
    scales = (yaml.safe_load(text) or {}).get("scales") or {}
    return ["paper", *scales]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_at_every_scale(compose, name):
    for scale in _scales(name):
        c = compose(f"experiment={name}", f"scale={scale}")
        assert c["experiment_name"] != "default", f"{name} must set experiment_name"
        assert c["model"]["name"] and c["data"]["name"]
        if c.get("analysis"):
            from lsx.jobs import registry  # noqa: F401
            from lsx.jobs.base import JOBS

            assert c["analysis"]["job"] in JOBS


def test_experiment_files_are_runbooks():
    for name in EXPERIMENTS:
        first = (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text().splitlines()[1]
        assert first.startswith("#") and len(first) > 10, f"{name}.yaml must start with a docstring comment"


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_name_only_existing_keys(compose, name):
    tpl = yaml.safe_load((ROOT / "multirun_templates" / f"{name}.yaml").read_text())
    base = compose()
    for key, values in tpl["params"].items():
        node = OmegaConf.create(base)
        assert OmegaConf.select(node, key, default="__missing__") != "__missing__", f"{name}: unknown key {key}"
        for v in str(values).split(","):
            compose(f"{key}={v}")  # each value composes
    text = (ROOT / "multirun_templates" / f"{name}.yaml").read_text()
    assert "usage:" in text


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_template_runs_as_a_multirun(lsx_dirs):
    out = run_module("lsx.train", "-m", "+sweep=seeds", "seed=0,1", "debug=fast")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("trained ") == 2


@pytest.mark.parametrize(
    "override, words",
    [
        ("model=alexnet", ["simple_cnn", "resnet20"]),
        ("data=imagenet", ["digits", "cifar10"]),
        ("optimizer=rmsprop", ["adam", "sgd"]),
        ("training.epochz=3", ["epochs"]),
    ],
)
def test_bad_choices_list_valid_ones(lsx_dirs, override, words):
    out = run_module("lsx.train", override, "debug=fast")
    assert out.returncode != 0
    for w in words:
        assert w in out.stderr, out.stderr[-1500:]


@pytest.mark.parametrize("launcher, target", [("slurm", "SlurmLauncher"), ("joblib_local", "JoblibLauncher")])
def test_launcher_configs_compose(lsx_dirs, launcher, target):
    out = run_module("lsx.train", "debug=fast", f"hydra/launcher={launcher}", "--cfg", "hydra")
    assert out.returncode == 0, out.stderr[-1500:]
    assert target in out.stdout


DATA_SHAPES = {  # (channels, size, classes) of the torchvision datasets the paper-scale presets name
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "mnist": (1, 28, 10),
    "fashion_mnist": (1, 28, 10),
    "digits": (1, 8, 10),
    "synthetic": (3, 32, 10),
}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_paper_scale_preset_builds_and_takes_a_training_step(compose, name):
    """No CIFAR here, so check what a GPU run would build first: the model at the dataset's shape,
    one forward/backward, the optimizer and the whole LR schedule."""
    import torch

    from lsx.training.checkpoints import model_from_config
    from lsx.training.losses import build_loss, loss_terms
    from lsx.training.optim import build_optimizer, build_scheduler

    c = compose(f"experiment={name}")
    torch.manual_seed(0)
    if c["model"].get("_target_") == "lsx.models.timm_factory.create_model":
        timm = pytest.importorskip("timm", reason="byo_timm needs timm (and a matching torchvision): tests/test_byo_timm.py")
        assert timm.create_model  # the real package; the stand-in run is in tests/test_byo_timm.py
    if c["data"]["name"] in DATA_SHAPES:
        ch, size, classes = DATA_SHAPES[c["data"]["name"]]
        shape = {"in_channels": ch, "height": size, "width": size, "num_classes": classes}
        x, y = torch.randn(2, ch, size, size), torch.tensor([0, classes - 1])
    else:  # a data set by _target_ (the byo presets' generated tasks): its own shape and first examples
        from lsx.training.runner import build_data

        dm = build_data(c).prepare()
        shape = {k: getattr(dm.shape, k) for k in ("in_channels", "height", "width", "num_classes")}
        x, y = (t[:2] for t in dm.split("train"))
    model = model_from_config(c["model"], shape)
    loss_fn = build_loss(c.get("loss"))
    loss = torch.nn.functional.cross_entropy(model(x), y) if loss_fn is None else loss_terms(loss_fn(model, (x, y)), 2)[0]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    opt = build_optimizer(c["optimizer"], model.parameters())
    epochs = int(c["training"]["epochs"])
    sched = build_scheduler(c["scheduler"], opt, steps_per_epoch=1, total_epochs=epochs)
    opt.step()
    lrs = []
    for _ in range(epochs):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(lr > 0 for lr in lrs[:-1]) and max(lrs) <= float(c["optimizer"]["lr"]) * (1 + 1e-9)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_scale_overrides_all_apply_to_the_presets_own_analysis(name):
    """Every scale override reaches the preset's own analysis, or one its reproduce grid selects (xu_resnet32's
    ``analysis.w_peak_method`` is for the grid's mining jobs): none is dead text."""
    from lsx.config import _compose, skipped_scale_overrides

    for scale in _scales(name):
        cfg = _compose([f"experiment={name}", f"scale={scale}"])
        grid = list(((cfg.get("reproduce") or {}).get("grid") or {}).get("analysis") or [])
        skipped = set(skipped_scale_overrides(cfg))
        for job in grid:
            skipped &= set(skipped_scale_overrides(_compose([f"experiment={name}", f"scale={scale}", f"analysis={job}"])))
        assert skipped == set(), name


def test_other_analyses_on_a_cpu_preset_skip_the_keys_they_lack(compose):
    # the taxonomy preset's cpu scale sets analysis.num, which the Hessian job does not have
    c = compose("experiment=xu_taxonomy", "scale=cpu", "analysis=hessian")
    assert c["analysis"]["job"] == "hessian" and c["analysis"]["epoch"] == 50 and "num" not in c["analysis"]
    assert c["data"]["name"] == "digits"


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_provenance_shows_the_scaled_config(lsx_dirs):
    """``--cfg job`` and Hydra's ``.hydra/config.yaml`` show what a ``scale=`` run really trains."""
    out = run_module("lsx.train", "experiment=fort_fig5", "scale=cpu", "--cfg", "job")
    assert out.returncode == 0, out.stderr[-1500:]
    shown = yaml.safe_load(out.stdout)
    assert shown["data"]["name"] == "digits" and shown["training"]["epochs"] == 250 and shown["data"]["batch_size"] == 64
    out = run_module("lsx.train", "experiment=fort_fig5", "scale=cpu", "debug=fast", "training.epochs=1")
    assert out.returncode == 0, out.stderr[-1500:]
    saved = next(lsx_dirs[1].glob("runs/*/*/.hydra/config.yaml"))
    assert yaml.safe_load(saved.read_text())["data"]["name"] == "digits"


@pytest.mark.slow
def test_a_built_wheel_ships_its_configs(tmp_path):
    """A non-editable install (pip install .) finds conf/ (shipped as lsx/conf)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("lsx", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    out = subprocess.run(
        [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wh")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-1500:]
    wheel = next((tmp_path / "wh").glob("lsx-*.whl"))
    assert "lsx/conf/config.yaml" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    probe = (
        "import lsx.config as c; assert str(c.CONF_DIR).startswith(%r), c.CONF_DIR; "
        "print(c.compose_config(['experiment=quickstart']).experiment_name)" % str(target)
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "quickstart" in out.stdout, out.stderr[-1500:]
