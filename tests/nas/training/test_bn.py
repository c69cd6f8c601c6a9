"""BN recalibration: running statistics become the data's, and only the subnet's change."""

from __future__ import annotations

import numpy as np
import torch

from nas.training import recalibrate_bn, recalibrated_subnet
from tests.nas.training.helpers import DigitsSubset, tiny_space


def batches(n: int = 3, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = DigitsSubset(n_train=n * size).splits()[0].tensors
    return [(images[i : i + size], labels[i : i + size]) for i in range(0, n * size, size)]


def test_running_statistics_are_the_data_statistics() -> None:
    space = tiny_space()
    arch = space.sample(np.random.default_rng(0))
    subnet = space.supernet().subnet(arch)
    stem_bn = subnet.stem[1]
    stem_bn.momentum = 0.3
    data = batches()
    recalibrate_bn(subnet, data)
    with torch.no_grad():
        outputs = [subnet.stem[0](images) for images, _ in data]
    # momentum=None: the running mean is the plain average of the batch means, likewise the
    # (unbiased) variances; the batches are of equal size, so this is the mean of all outputs.
    expected_mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs]).mean(dim=0)
    expected_var = torch.stack([o.var(dim=(0, 2, 3), unbiased=True) for o in outputs]).mean(dim=0)
    torch.testing.assert_close(stem_bn.running_mean, expected_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stem_bn.running_var, expected_var, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(expected_mean, torch.cat(outputs).mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert stem_bn.num_batches_tracked.item() == len(data)
    assert stem_bn.momentum == 0.3 and not subnet.training


def test_statistics_do_not_depend_on_what_they_held_before() -> None:
    space = tiny_space()
    arch = space.largest()
    fresh, trained = space.supernet(), space.supernet()
    with torch.no_grad():
        trained.train()
        for images, _ in batches(2):
            trained(3 * images + 1, arch)  # statistics of some other distribution
    data = batches()
    first = recalibrate_bn(fresh.subnet(arch), data)
    second = recalibrate_bn(trained.subnet(arch), data)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_recalibrated_subnet_leaves_the_supernet_alone() -> None:
    space = tiny_space()
    supernet = space.supernet()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    subnet = recalibrated_subnet(supernet, space.largest(), batches(), max_batches=2)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
    assert subnet.stem[1].num_batches_tracked.item() == 2
    assert not torch.equal(subnet.stem[1].running_mean, supernet.stem[1].running_mean)
