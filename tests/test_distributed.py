"""Data-parallel training with torch.distributed (issue 24): the shard arithmetic, two
processes on loopback with gloo, and ``torchrun ... -m d2l_ext train`` end to end.

Timing note: the process tests run 2 processes; with ``taskset -c 1`` both sit on one core,
which makes them slower, not different (each process runs one thread).
"""
import pytest
import torch

from d2l_ext import distributed as D
from d2l_ext.data import BatchLoader, TensorImages, batch_bounds


# --- the shards (pure: no processes) ------------------------------------------------------

@pytest.mark.parametrize("n, batch, world", [(500, 32, 2), (501, 32, 2), (21, 4, 2),
                                             (100, 12, 3), (35, 8, 4), (9, 4, 1)])
def test_shards_are_disjoint_and_their_union_is_the_single_process_epoch(n, batch, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shares = [D.epoch_shares(order, batch, r, world) for r in range(world)]
    assert len({len(s) for s in shares}) == 1          # every process takes as many steps
    for step, (start, end) in enumerate(D.step_bounds(n, batch, world)):
        parts = [s[step] for s in shares]
        together = torch.cat(parts)
        assert len(set(together.tolist())) == len(together)            # disjoint
        assert sorted(together.tolist()) == sorted(order[start:end].tolist())  # = the step
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert min(map(len, parts)) >= 2 or n < 2 * world               # batch norm's need
    steps = D.step_bounds(n, batch, world)
    assert steps[0][0] == 0 and steps[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(steps, steps[1:]))         # the epoch, in order
    if world == 1:          # one process: exactly the loader's batches (a lone image merged)
        assert steps == batch_bounds(n, batch, merge_single=True)


def test_full_steps_split_evenly_and_the_loss_weight_restores_the_step_mean():
    assert D.step_bounds(501, 32, 2)[-1] == (480, 501)      # 21 images: 11 and 10
    weights = [D.share_weight(k, 21, 2) for k in (11, 10)]
    # DDP averages the two gradients: (w0*g0 + w1*g1) / 2 = (11*g0 + 10*g1) / 21
    assert sum(weights) / 2 == pytest.approx(1.0) and weights[0] / weights[1] == 11 / 10
    assert D.share_weight(16, 32, 2) == 1.0


def test_a_batch_that_does_not_divide_is_refused_naming_both_numbers():
    assert D.check_batch(32, 2) == 16
    with pytest.raises(ValueError, match=r"a global batch of 33 images does not divide among "
                                         r"2 processes: use a multiple of 2"):
        D.check_batch(33, 2)
    with pytest.raises(ValueError, match="1 training image.* among 2 processes"):
        D.step_bounds(1, 4, 2)


def test_evaluation_shares_cover_the_split_once():
    for n, world in ((1000, 2), (7, 3), (1, 2)):
        parts = [D.eval_share(n, r, world) for r in range(world)]
        assert torch.cat(parts).tolist() == list(range(n))


def _images(n, augment=False):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    return TensorImages(images, torch.arange(n) % 5, (0.0,), (1.0,), augment=augment)


@pytest.mark.parametrize("augment", [False, "crop-flip"])
def test_sharded_loaders_yield_the_single_process_batches_split(augment):
    """Epoch after epoch (the permutation changes, as set_epoch makes it), the two ranks'
    batches put together are the single-process loader's, augmentation included: 21 images
    in batches of 4 are 4+4+4+4+5 (a lone last image merged) for 1 and 2 processes alike."""
    data = _images(21, augment)
    one = BatchLoader(data, 4, shuffle=True, seed=3)
    ranks = [BatchLoader(data, 4, shuffle=True, seed=3, shard=(r, 2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) == 5

    def key(X, y):      # a step as a set of (pixels, label): the shares interleave it
        return sorted(zip(X.flatten(1).tolist(), y.tolist()))
    for epoch in range(3):
        parts = [list(r) for r in ranks]
        for step, (X, y) in enumerate(one):
            shares = [p[step] for p in parts]
            assert [len(s[1]) for s in shares] == [(len(y) + 1) // 2, len(y) // 2]
            assert key(X, y) == key(torch.cat([s[0] for s in shares]),
                                    torch.cat([s[1] for s in shares])), f"epoch {epoch}"
        assert ranks[0].step_images == len(y)
