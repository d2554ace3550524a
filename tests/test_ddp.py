"""The DDP code path on 2 CPU processes (gloo, ddp_spawn inside pytest)."""
import torch

from lsx.training.checkpoints import load_checkpoint
from lsx.training.runner import train


def test_ddp_two_cpu_processes_trains_and_checkpoints(compose):
    c = compose("debug=fast", "trainer=ddp_cpu", "training.epochs=2")
    run = train(c, progress=False)
    assert (run.run_dir / "DONE").exists()
    assert sorted(run.checkpoints) == [0, 2]
    w0, w2 = load_checkpoint(run.checkpoints[0]).state_dict, load_checkpoint(run.checkpoints[2]).state_dict
    assert not torch.equal(w0["0.weight"], w2["0.weight"])
    assert run.config_hash != train(compose("debug=fast", "training.epochs=2"), progress=False).config_hash
