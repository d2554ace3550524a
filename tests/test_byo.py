"""Your model, your data, your loss: _target_ models/losses/data, external checkpoints, model=hf, the docs example."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import ROOT, run_module
from omegaconf import OmegaConf
from torch import nn

SHAPE = {"in_channels": 1, "height": 8, "width": 8, "num_classes": 10}


# ------------------------------------------------------------------ helpers a user module would hold
def make_mlp(in_features: int, num_classes: int, hidden: int = 8) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))


def not_a_module(**_) -> list:
    return [1, 2]


def vector_loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y, reduction="none")  # not reduced: refused


def nan_loss(model, batch):
    return model(batch[0]).sum() * float("nan")


class Regression(torch.utils.data.Dataset):
    """y = sum of the inputs (real targets), deterministic."""

    def __init__(self, n: int = 60, features: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, features, generator=g)
        self.y = self.x.sum(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def regression():
    return Regression()


def _resolved(d: dict) -> dict:
    import lsx.models.target  # noqa: F401  (registers ${shape:KEY})

    return OmegaConf.to_container(OmegaConf.create(d), resolve=True)


HERE = "test_byo"  # this module as tests import it (tests/ is on sys.path)


# ------------------------------------------------------------------ models by target
def test_model_by_target_gets_the_data_shape_and_round_trips_through_a_checkpoint(tmp_path):
    from lsx.training.checkpoints import load_checkpoint, model_from_config, model_label, save_checkpoint

    cfg = _resolved(
        {
            "model": {
                "_target_": f"{HERE}.make_mlp",
                "in_features": "${shape:numel}",
                "num_classes": "${shape:num_classes}",
                "hidden": 5,
            }
        }
    )
    model = model_from_config(cfg["model"], SHAPE)
    assert model[1].in_features == 64 and model[3].out_features == 10 and model_label(cfg["model"]) == "make_mlp"
    path = save_checkpoint(tmp_path / "epoch_0001.pt", model, cfg, "h", 1, SHAPE)
    rebuilt = load_checkpoint(path).build_model()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))


def test_bad_model_targets_are_one_line():
    from lsx.cli.checks import config_message
    from lsx.training.checkpoints import model_from_config

    msg = config_message(["+model._target_=no_such_pkg.make"], "train")
    assert msg.startswith("model._target_='no_such_pkg.make' cannot be imported") and "\n" not in msg
    with pytest.raises(ValueError, match=r"returned a list, not a torch.nn.Module") as err:
        model_from_config({"_target_": f"{HERE}.not_a_module"}, SHAPE)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown data shape key 'classes'"):
        _resolved({"m": "${shape:classes}"})


# ------------------------------------------------------------------ losses
def test_loss_that_is_not_a_finite_scalar_is_refused_on_the_first_batch():
    from lsx.training.losses import build_loss, check_loss

    model = make_mlp(64, 10)
    batch = (torch.randn(2, 1, 8, 8), torch.tensor([1, 2]))
    for target, match in (
        (f"{HERE}.vector_loss", r"returned \(2,\) on the first batch, not a scalar"),
        (f"{HERE}.nan_loss", "is nan on the first batch"),
    ):
        with pytest.raises(ValueError, match=match) as err:
            check_loss(build_loss({"_target_": target}), model, batch)
        assert "\n" not in str(err.value)
    check_loss(build_loss({"_target_": "lsx.training.losses.MSE"}), nn.Linear(3, 1), (torch.randn(2, 3), torch.randn(2)))
    assert build_loss(None) is None and build_loss({"_target_": "lsx.training.losses.CrossEntropy"}) is None


def test_generic_evaluator_path_equals_the_fast_path_for_cross_entropy():
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.training.losses import CrossEntropy

    torch.manual_seed(0)
    model = make_mlp(64, 10)
    x, y = torch.randn(70, 1, 8, 8), torch.randint(0, 10, (70,))
    fast = Evaluator(model, (x, y), (x[:30], y[:30]), chunk_size=16)
    generic = Evaluator(make_mlp(64, 10), (x, y), (x[:30], y[:30]), chunk_size=16, loss_fn=CrossEntropy())
    theta = fast.flat.get()
    a, b = fast.evaluate_at(theta), generic.evaluate_at(theta)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    with pytest.raises(ValueError, match="predict"):
        generic.predict()


def test_next_token_loss_ignores_padding_and_chunks_combine_exactly():
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.training.losses import NextTokenCrossEntropy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 7))  # logits = a learned table of the current token
    x = torch.randint(0, 7, (9, 5))
    y = torch.randint(0, 7, (9, 5))
    y[::2, 3:] = -100  # padding in every other sequence
    keep = y != -100
    logits = model(x)
    want = nn.functional.cross_entropy(logits[keep], y[keep])
    loss = NextTokenCrossEntropy()
    assert float(loss(model, (x, y))["loss"]) == pytest.approx(float(want), rel=1e-6)
    one = Evaluator(model, (x, y), chunk_size=100, loss_fn=loss).evaluate_at(torch.cat([p.flatten() for p in model.parameters()]))
    many = Evaluator(model, (x, y), chunk_size=2, loss_fn=loss).evaluate_at(torch.cat([p.flatten() for p in model.parameters()]))
    assert one["train_loss"] == pytest.approx(float(want), rel=1e-6) and many["train_loss"] == pytest.approx(
        one["train_loss"], rel=1e-6
    )
    acc = float(((logits.argmax(-1) == y) & keep).sum() / keep.sum())
    assert many["train_acc"] == pytest.approx(acc)


# ------------------------------------------------------------------ data by target
def test_dataset_by_target_keeps_lsx_splits_and_real_targets():
    from lsx.data import build_datamodule
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.training.losses import MSE

    kw = {"_target_": f"{HERE}.regression", "val_fraction": 0.2, "landscape_train": 10, "landscape_test": 5}
    a, b = build_datamodule(None, **kw).prepare(), build_datamodule(None, **kw).prepare()
    a.set_loader_seed(0)
    b.set_loader_seed(7)  # another training seed: same splits, same landscape subset
    for s in ("train", "val", "test"):
        assert torch.equal(a.split(s)[0], b.split(s)[0])
    assert torch.equal(a.landscape_subset().train_x, b.landscape_subset().train_x)
    assert a.split("train")[1].dtype == torch.float32 and len(a.split("test")[0]) == 12 and a.shape.numel == 4
    assert a.shape.num_classes == 1 and a.name == "regression"
    ev = Evaluator(nn.Linear(4, 1), a.landscape_subset().train, loss_fn=MSE())
    m = ev.evaluate_at(ev.flat.get())
    assert np.isfinite(m["train_loss"]) and np.isnan(m["train_acc"])


def test_sequences_task_and_bad_datasets():
    from lsx.data import build_datamodule

    dm = build_datamodule(
        "sequences",
        _target_="lsx.data.sequences.rule_sequences",
        num_train=50,
        num_test=20,
        seq_len=6,
        vocab_size=5,
        normalize=False,
    ).prepare()
    x, y = dm.split("train")
    assert x.dtype == torch.int64 and x.shape[1] == 5 and torch.equal(x[:, 1:], y[:, :-1])
    step = (x[:, 1] - x[:, 0]) % 5
    assert torch.equal((x[:, 2] - x[:, 1]) % 5, step)  # the rule: an arithmetic progression mod vocab_size
    assert (dm.shape.width, dm.shape.num_classes) == (5, 5)
    with pytest.raises(ValueError, match="not a map-style Dataset"):
        build_datamodule(None, _target_="builtins.iter", _args_=[[1, 2]]).prepare()


# ------------------------------------------------------------------ external checkpoints
def test_external_state_dicts_load_and_a_key_mismatch_is_one_line(tmp_path):
    from safetensors.torch import save_file

    from lsx.training.checkpoints import CheckpointError, file_sha256, load_any_checkpoint

    cfg = {"model": {"_target_": f"{HERE}.make_mlp", "in_features": 64, "num_classes": 10}, "seed": 0}
    torch.manual_seed(3)
    trained = make_mlp(64, 10)
    sd = trained.state_dict()
    torch.save(sd, tmp_path / "w.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "w.ckpt")  # Lightning
    for name in ("w.pt", "w.safetensors", "w.ckpt"):
        ck = load_any_checkpoint(tmp_path / name, cfg, SHAPE)
        assert ck.sha256 == file_sha256(tmp_path / name) and ck.epoch == -1
        assert all(torch.equal(sd[k], v) for k, v in ck.build_model().state_dict().items())
    bad = dict(sd)
    bad["extra.weight"] = bad.pop("3.weight")
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_any_checkpoint(tmp_path / "bad.pt", cfg, SHAPE)
    msg = str(err.value)
    assert "\n" not in msg and "missing keys 1 [3.weight]" in msg and "unexpected keys 1 [extra.weight]" in msg


# ------------------------------------------------------------------ transformers
def test_hf_model_from_config_with_tied_weights_saved_once(compose, tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import save_file

    from lsx.training.checkpoints import load_any_checkpoint, model_from_config
    from lsx.training.losses import build_loss, check_loss

    c = compose("model=hf", "data=sequences", "loss=next_token")
    shape = {"in_channels": 1, "height": 1, "width": 11, "num_classes": 16}
    model = model_from_config(c["model"], shape)
    assert model.config.vocab_size == 16 and model.config.n_positions == 11
    x = torch.randint(0, 16, (3, 11))
    check_loss(build_loss(c["loss"]), model, (x, x))
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to the embedding: saved once
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    ck = load_any_checkpoint(tmp_path / "m.safetensors", c, shape)
    rebuilt = ck.build_model()
    with torch.no_grad():
        assert torch.allclose(rebuilt(x).logits, model.eval()(x).logits, atol=1e-6)


# ------------------------------------------------------------------ docs/byo.md as written
def _doc_blocks() -> dict[str, str]:
    text = (ROOT / "docs" / "byo.md").read_text()
    blocks = re.findall(r"`([^`]+)`:\n\n```\w+\n(.*?)```", text, re.S)
    command = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip()
    return {**dict(blocks), "command": command}


def test_docs_example_composes_and_builds(tmp_path, monkeypatch, lsx_dirs):
    blocks = _doc_blocks()
    assert set(blocks) >= {"mynet.py", "conf/experiment/mynet.yaml"} and len(blocks["mynet.py"].splitlines()) <= 10
    for name in ("mynet.py", "conf/experiment/mynet.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(blocks[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lsx.config import CONF_DIR
    from lsx.training.checkpoints import model_from_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra.searchpath=[file://" + str(tmp_path / "conf") + "]", "experiment=mynet"])
    c = OmegaConf.to_container(cfg.model, resolve=True)
    model = model_from_config(c, SHAPE)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.slow
def test_docs_example_runs_as_written(tmp_path, lsx_dirs):
    blocks = _doc_blocks()
    for name in ("mynet.py", "conf/experiment/mynet.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(blocks[name])
    cmd = blocks["command"].split()
    assert cmd[0] == "PYTHONPATH=." and cmd[1:4] == ["python", "-m", "lsx.analyze"]
    proc = run_module("lsx.analyze", *cmd[4:], cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"center_train_loss"' in proc.stdout


def regression_datamodule():
    import lightning as L

    class DM(L.LightningDataModule):
        def setup(self, stage=None):
            self.train_set, self.test_set = Regression(40), Regression(10)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(self.train_set, batch_size=8)

        def test_dataloader(self):
            return torch.utils.data.DataLoader(self.test_set, batch_size=8)

    return DM()


def test_lightning_datamodule_by_target():
    from lsx.data import build_datamodule

    dm = build_datamodule("reg", _target_=f"{HERE}.regression_datamodule", val_fraction=0.25).prepare()
    assert (len(dm.split("train")[0]), len(dm.split("val")[0]), len(dm.split("test")[0])) == (30, 10, 10)
    assert dm.name == "reg"


def test_default_loss_on_a_model_without_logits_is_one_line():
    from lsx.data import build_datamodule
    from lsx.training.runner import check_model_fits

    dm = build_datamodule(None, _target_="lsx.data.sequences.rule_sequences", num_train=20, num_test=5, normalize=False)
    with pytest.raises(ValueError, match="not a logits tensor") as err:
        check_model_fits(_DictOut(), dm.prepare(), "m")
    assert "\n" not in str(err.value)


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.e = nn.Embedding(16, 16)

    def forward(self, x):
        return {"logits": self.e(x)}


@pytest.mark.slow
def test_hf_transformer_trains_and_an_external_copy_centres_a_surface(compose, tmp_path, lsx_dirs):
    """End to end in one process: model=hf on data=sequences with the next-token loss, trained through the cache;
    its weights saved as .safetensors and given as analysis.center_ckpt give the same surface centre, sha256 recorded."""
    pytest.importorskip("transformers")
    from safetensors.torch import save_file

    from lsx.cli.analyze import run_analysis
    from lsx.training.checkpoints import file_sha256
    from lsx.training.runner import train

    tiny = [
        "experiment=byo_transformer",
        "training.epochs=2",
        "data.num_train=200",
        "data.num_test=50",
        "data.landscape_train=100",
        "data.landscape_test=50",
        "analysis=surface2d",
        "analysis.x.num=3",
        "analysis.y.num=3",
    ]
    c = compose(*tiny)
    run = train(c, progress=False)
    assert run.summary["train_loss"] < np.log(16) and np.isfinite(run.summary["test_acc"])
    ckpt = run.load()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in ckpt.state_dict.items() if k != "lm_head.weight"}, str(path))
    own = run_analysis(c, tmp_path / "r1", progress=False)
    ext = run_analysis(compose(*tiny, f"analysis.center_ckpt={path}"), tmp_path / "r2", progress=False)
    assert ext["metrics"]["center_train_loss"] == pytest.approx(own["metrics"]["center_train_loss"], rel=1e-6)
    assert ext["inputs"]["center_ckpt"]["sha256"] == file_sha256(path) and ext["inputs"]["center_ckpt"]["external"]


def test_a_target_whose_optional_package_is_missing_is_one_line(monkeypatch):
    import importlib.util

    from lsx.models.target import check_target

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the transformers package: pip install 'lsx\[hf\]' \(or pip install transf"):
        check_target({"_target_": "lsx.models.hf.from_config"}, "model")


def test_recorded_centre_loss_uses_the_configured_loss():
    """A job that evaluates a checkpoint itself (``measured=None``) records the configured loss, not cross-entropy:
    a regression model's analysis_train_loss is its mean squared error."""
    from types import SimpleNamespace

    from lsx.jobs.landscape_common import record_centre_loss
    from lsx.training.losses import MSE

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(40, 3), torch.randn(40)
    recorded: list[float] = []
    ctx = SimpleNamespace(
        landscape_subset=lambda: SimpleNamespace(train=(x, y)),
        loss_fn=lambda: MSE(),
        record_analysis_loss=lambda ckpt, loss, bn: recorded.append(loss),
    )
    ckpt = SimpleNamespace(build_model=lambda: model)
    got = record_centre_loss(ctx, ckpt, "keep")  # type: ignore[arg-type]
    with torch.no_grad():
        want = float(((model(x).squeeze(1) - y) ** 2).mean())
    assert got == pytest.approx(want, rel=1e-5) and recorded == [got]
