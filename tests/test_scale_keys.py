"""Training cache keys at paper scale: precision and the DDP world size are keyed, launch details are not,
and 32-bit single-process keys are the ones existing caches were written under."""

import pytest

from lsx.config import compose_config, config_hash, training_config


def _key(*overrides: str) -> str:
    return config_hash(training_config(compose_config(list(overrides))))


def test_single_process_32_bit_keys_are_unchanged():
    # hashes computed before precision and the world size were keyed: old caches stay valid
    assert _key() == "4c5da86b6b289d9c10ac66fd79edf970b40279296fdae228518fd5db961228a1"
    assert _key("trainer=gpu") == _key()  # one device, CPU or GPU: the same key as before
    assert _key("data=synthetic", "trainer.precision=32") == "28c85b470494bcb19f2ff45b5094f1e7b45d556b27ab20a01b1895f73c4a95d4"


def test_precision_is_keyed_and_recorded_in_the_training_config():
    assert _key("trainer.precision=bf16-mixed") != _key()
    assert _key("trainer.precision=bf16") == _key("trainer.precision=bf16-mixed")  # Lightning's alias
    assert _key("trainer.precision=32") == _key("trainer.precision=32-true") == _key()
    assert training_config(compose_config(["trainer.precision=16-mixed"]))["precision"] == "16-mixed"


def test_ddp_keys_on_world_size_not_on_how_it_is_launched():
    spawn = _key("trainer=ddp_cpu")
    assert spawn == _key("trainer=ddp_cpu", "trainer.strategy=ddp")  # subprocess launcher: same weights
    assert spawn == _key("trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2")  # 2 processes either way
    assert spawn != _key("trainer=ddp_cpu", "trainer.devices=4")  # a different effective batch size
    assert spawn != _key()  # one process: different weights
    # the effective batch is world size x the per-process data.batch_size
    assert spawn != _key("trainer=ddp_cpu", "data.batch_size=64")
    assert training_config(compose_config(["trainer=ddp_cpu"]))["distributed"] == {"world_size": 2}


@pytest.mark.parametrize("devices, nodes, world", [(2, 1, 2), ([0, 1, 2], 1, 3), ("0,1", 2, 4), (1, 8, 8)])
def test_world_size_counts_devices_and_nodes(devices, nodes, world):
    from lsx.config import world_size

    assert world_size({"accelerator": "gpu", "devices": devices, "num_nodes": nodes}) == world


def test_all_visible_gpus_resolve_to_their_count(monkeypatch):
    import torch

    from lsx.config import world_size

    for n in (4, 8):
        monkeypatch.setattr(torch.cuda, "device_count", lambda n=n: n)
        assert world_size({"accelerator": "gpu", "devices": -1, "num_nodes": 1}) == n
    c4 = {"trainer": {"accelerator": "gpu", "devices": 4, "strategy": "ddp"}}
    base = compose_config([])
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(base, resolve=True)
    keys = {
        config_hash(training_config({**cfg, **c4})),
        config_hash(training_config({**cfg, "trainer": {**c4["trainer"], "devices": -1}})),
    }
    assert len(keys) == 2  # devices: -1 on this 8-GPU mock is 8 processes, not the 4-GPU run
