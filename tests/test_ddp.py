"""The DDP code path on 2 CPU processes (gloo, ddp_spawn inside pytest)."""
import torch

from lsx.training.checkpoints import load_checkpoint
from lsx.training.runner import train


def test_ddp_two_cpu_processes_trains_and_checkpoints(compose):
    c = compose("debug=fast", "trainer=ddp_cpu", "training.epochs=2")
    run = train(c, progress=False)
    assert (run.run_dir / "DONE").exists()
    assert sorted(run.checkpoints) == [0, 2]
    # the spawned workers trained; the parent reads their stop outcome from the final checkpoint
    assert run.stop == {"epochs_run": 2, "steps": 2, "stopped_by": "epochs"}
    w0, w2 = load_checkpoint(run.checkpoints[0]).state_dict, load_checkpoint(run.checkpoints[2]).state_dict
    assert not torch.equal(w0["0.weight"], w2["0.weight"])
    # each rank evaluates its half of the val split and the sums are all-reduced: the last epoch's val
    # loss is the whole split's, i.e. the summary's (the final model on one process)
    curve = run.learning_curve()
    assert [r["epoch"] for r in curve] == [1, 2] and all(r["train/loss"] > 0 for r in curve)
    assert abs(curve[-1]["val/loss"] - run.summary["val_loss"]) < 1e-5 and curve[-1]["val/acc"] == run.summary["val_acc"]
    assert run.config_hash != train(compose("debug=fast", "training.epochs=2"), progress=False).config_hash
