import pytest
import torch

from lsx.data import DatasetUnavailable, build_datamodule


def test_digits_splits_are_deterministic_and_disjoint():
    a, b = build_datamodule("digits").prepare(), build_datamodule("digits").prepare()
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split)[0], b.split(split)[0])
    n = sum(len(a.split(s)[0]) for s in ("train", "val", "test"))
    assert n == 1797
    assert a.shape.in_channels == 1 and (a.shape.height, a.shape.width) == (8, 8) and a.shape.num_classes == 10


def test_landscape_subset_fixed_and_independent_of_training_seed():
    dm = build_datamodule("digits", landscape_train=100, landscape_test=50).prepare()
    s1 = dm.landscape_subset()
    dm.set_loader_seed(123)
    s2 = dm.landscape_subset()
    assert s1.train_x.shape[0] == 100 and s1.test_x.shape[0] == 50
    assert torch.equal(s1.train_x, s2.train_x) and torch.equal(s1.test_y, s2.test_y)
    other = build_datamodule("digits", landscape_train=100, landscape_test=50, landscape_seed=1).prepare().landscape_subset()
    assert not torch.equal(s1.train_y, other.train_y)


def test_train_loader_order_depends_only_on_seed_and_epoch():
    dm = build_datamodule("digits", batch_size=64).prepare()
    dm.set_loader_seed(5)
    first = lambda epoch: (lambda dl: (dl.sampler.set_epoch(epoch), next(iter(dl)))[1])(dm.train_dataloader())  # noqa: E731
    assert torch.equal(first(0)[1], first(0)[1])
    assert not torch.equal(first(0)[1], first(1)[1])


def test_mnist1d_and_synthetic_shapes():
    m = build_datamodule("mnist1d", num_samples=400).prepare()
    assert (m.shape.height, m.shape.width) == (1, 40)
    s = build_datamodule("synthetic", channels=3, image_size=16, num_classes=4).prepare()
    assert (s.shape.in_channels, s.shape.height, s.shape.num_classes) == (3, 16, 4)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="valid datasets: .*digits.*cifar10"):
        build_datamodule("imagenet")


def test_missing_torchvision_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetUnavailable, match="cifar10|torchvision"):
        build_datamodule("cifar10", root=str(tmp_path)).prepare()
