"""One loader for every device (issues 15 and 23): the batches of the recorded runs, and the
augmentations' distributions on each device.

Every test runs on the CPU and, where one is present, on CUDA. On the CPU the loader yields
exactly the batches the runs under results/ trained on (digests recorded before the CPU and
GPU loaders became one); on CUDA the generator's stream differs, so the statistics are
compared with their known values, with tolerances of about four standard errors for the
sample sizes used (a false alarm about once in 10,000 runs; a flip probability of 0.45
instead of 0.5, offsets over 0..7, or an erase probability of 0.45 all fail).
"""
import itertools
import math

import pytest
import torch

import d2l_ext.data as D
import d2l_ext.device_data as DD

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
N, H, W = 3000, 16, 16
PAD = 4     # zero padding on each side before the crop
#: The 0.9999 quantile of the chi-square distribution with 8 degrees of freedom (9 offsets).
CHI2_8_9999 = 31.83


def coded(augment, n=N):
    """Two-channel images whose pixels name their source: channel 0 holds row + 1, channel 1
    column + 1 (never 0), normalized with mean 0 and std 1, so a 0 in the output can only be
    padding or erasing, and a batch tells each image's crop offsets and flip."""
    rows = torch.arange(1, H + 1).view(H, 1).expand(H, W)
    cols = torch.arange(1, W + 1).view(1, W).expand(H, W)
    images = torch.stack([rows, cols]).to(torch.uint8).expand(n, 2, H, W).contiguous()
    return D.TensorImages(images, torch.arange(n), (0.0, 0.0), (1.0, 1.0), augment=augment)


def epoch(loader):
    X, y = zip(*loader)
    return torch.cat(X).cpu(), torch.cat(y).cpu()


def decode(X):
    """Per image: row offset dy and column offset dx into the padded image (0..8), whether it
    was flipped, the padding mask and the erased mask. Asserts that every visible pixel agrees
    with one crop-and-flip, i.e. that the batch is a true crop of its image."""
    n = len(X)
    v = (X * 255).round().long()
    src_row, src_col, shown = v[:, 0] - 1, v[:, 1] - 1, v[:, 0] > 0
    assert torch.equal(shown, v[:, 1] > 0)
    i = torch.arange(H).view(1, H, 1)
    j = torch.arange(W).view(1, 1, W)

    def constant(values):            # the value every shown pixel agrees on, or None
        hi = values.masked_fill(~shown, -10**6).flatten(1).max(1).values
        lo = values.masked_fill(~shown, 10**6).flatten(1).min(1).values
        return hi, hi == lo

    dy, same_dy = constant(src_row - i + PAD)
    straight, is_straight = constant(src_col - j)
    mirrored, is_mirrored = constant(src_col + j)
    assert same_dy.all() and (is_straight ^ is_mirrored).all()
    flip = is_mirrored
    dx = torch.where(flip, mirrored - (W - 1), straight) + PAD
    rows = dy.view(n, 1, 1) + i - PAD
    cols = dx.view(n, 1, 1) - PAD + torch.where(flip.view(n, 1, 1), W - 1 - j, j)
    pad = (rows < 0) | (rows >= H) | (cols < 0) | (cols >= W)
    return dy, dx, flip, pad, ~shown & ~pad



def chi2_uniform(values, k):
    counts = torch.bincount(values, minlength=k).double()
    assert len(counts) == k, f"values outside 0..{k - 1}"
    expected = len(values) / k
    return ((counts - expected) ** 2 / expected).sum().item()


def close(a, b, sd, n_a, n_b=None):
    """|a - b| within 4 standard errors: of a mean of n_a draws (b exact) or of a difference."""
    se = sd * math.sqrt(1 / n_a + (1 / n_b if n_b else 0))
    return abs(a - b) <= 4 * se


@pytest.mark.parametrize("device", DEVICES)
def test_crops_and_flips_have_the_cpu_paths_distribution(device):
    data = coded("crop-flip")
    dy, dx, flip, pad, erased = decode(epoch(D.BatchLoader(data, 500, True, seed=0, device=device))[0])
    cpu = decode(epoch(D.BatchLoader(data, 500, True, seed=0))[0])
    assert not erased.any() and not cpu[4].any()
    p = flip.float().mean().item()
    assert close(p, 0.5, 0.5, N) and close(p, cpu[2].float().mean().item(), 0.5, N, N)
    for offsets, cpu_offsets in ((dy, cpu[0]), (dx, cpu[1])):
        assert chi2_uniform(offsets, 9) < CHI2_8_9999              # uniform over 0..8
        mean, sd = offsets.double().mean().item(), math.sqrt(80 / 12)
        assert close(mean, 4, sd, N) and close(mean, cpu_offsets.double().mean().item(), sd, N, N)
    # the two offsets are drawn independently: all 81 pairs, about equally often
    assert chi2_uniform(dy * 9 + dx, 81) < 130    # 80 dof: 0.9999 quantile is 129.0
    # padding: 4 pixels on each side, so the mean padded fraction is 1 - E[(16 - |d - 4|)]^2/256
    expected = 1 - (sum(16 - abs(d - 4) for d in range(9)) / 9) ** 2 / 256
    assert abs(pad.float().mean().item() - expected) < 0.01


@pytest.mark.parametrize("device", DEVICES)
def test_erase_mask_has_random_erases_distribution(device):
    n, h, w = 4000, 32, 32
    box = DD.erase_mask(n, h, w, torch.Generator(device).manual_seed(0), device).cpu()
    cpu = D.random_erase(torch.ones(n, 1, h, w), torch.Generator().manual_seed(0)) == 0
    assert box.shape == cpu.shape == (n, 1, h, w) and box.dtype == torch.bool
    stats = []
    for mask in (box[:, 0], cpu[:, 0]):
        rows, cols = mask.any(2).sum(1), mask.any(1).sum(1)
        assert torch.equal(mask.flatten(1).sum(1), rows * cols)    # one rectangle per image
        hit = rows > 0
        area = (rows * cols)[hit].double() / (h * w)
        aspect = (rows[hit].double() / cols[hit]).log()
        stats.append((hit.float().mean().item(), area, aspect))
    (p, area, aspect), (p_cpu, area_cpu, aspect_cpu) = stats
    assert close(p, 0.5, 0.5, n) and close(p, p_cpu, 0.5, n, n)
    assert area.min() >= 0.01 and area.max() <= 0.45                # 0.02-0.4, rounded
    sd = area_cpu.std().item()
    assert 0.19 < area.mean() < 0.23                                # uniform area: about 0.21
    assert close(area.mean().item(), area_cpu.mean().item(), sd, len(area), len(area_cpu))
    sd = aspect_cpu.std().item()      # log aspect ratio: uniform in log(0.3)..log(3.3)
    assert close(aspect.mean().item(), (math.log(0.3) + math.log(3.3)) / 2, sd, len(aspect))
    assert close(aspect.mean().item(), aspect_cpu.mean().item(), sd, len(aspect), len(aspect_cpu))
    # and its spread: the sd of a uniform over a width of log(3.3/0.3) is 0.692 (the clamp to
    # the image trims it a little); a sample sd of a uniform has a standard error of 0.45 sd/√n
    width_sd = math.log(3.3 / 0.3) / math.sqrt(12)
    se = 0.45 * width_sd / math.sqrt(len(aspect))
    assert abs(aspect.std().item() - width_sd) < 4 * se + 0.01
    assert abs(aspect.std().item() - sd) < 4 * se * math.sqrt(2)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_flip_erase_batches_erase_as_often_as_the_cpu_path(device):
    data = coded("crop-flip-erase")
    dev = decode(epoch(D.BatchLoader(data, 500, True, seed=1, device=device))[0])
    cpu = decode(epoch(D.BatchLoader(data, 500, True, seed=1))[0])
    hit, hit_cpu = (d[4].flatten(1).any(1).float().mean().item() for d in (dev, cpu))
    # a box can fall entirely into the padding, so slightly fewer than half show one
    assert 0.44 < hit < 0.5 + 4 * math.sqrt(0.25 / N) and close(hit, hit_cpu, 0.5, N, N)
    assert close(dev[2].float().mean().item(), 0.5, 0.5, N)
    assert chi2_uniform(dev[0], 9) < CHI2_8_9999


@pytest.mark.parametrize("device", DEVICES)
def test_without_augmentation_batches_are_the_normalized_images(device):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 16, 16), dtype=torch.uint8, generator=g)
    data = D.TensorImages(images, torch.arange(1000) % 7, (0.3, 0.4, 0.5), (0.2, 0.25, 0.3))
    loader = D.BatchLoader(data, 300, False, seed=0, device=device)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(y) for _, y in batches] == [300, 300, 300, 100]
    assert all(X.device.type == device and X.dtype == torch.float32 for X, _ in batches)
    X, y = epoch(batches)
    expected = data.normalize(images)
    assert torch.allclose(X, expected, atol=1e-6) and torch.equal(y, data.labels)
    assert abs(X.mean().item() - expected.mean().item()) < 1e-6
    assert abs(X.std().item() - expected.std().item()) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_shuffling_is_seeded_and_shows_every_image_once_per_epoch(device):
    data = coded("crop-flip-erase", n=1000)
    loader = D.BatchLoader(data, 128, True, seed=3, device=device)
    first, second = epoch(loader), epoch(loader)
    for _, y in (first, second):
        assert torch.equal(y.sort().values, torch.arange(1000))    # a permutation
    assert not torch.equal(first[1], second[1])                   # a new order each epoch
    assert (first[1] != torch.arange(1000)).float().mean() > 0.9  # and not the identity
    again = epoch(D.BatchLoader(data, 128, True, seed=3, device=device))
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    other = epoch(D.BatchLoader(data, 128, True, seed=4, device=device))
    assert not torch.equal(other[1], first[1]) and not torch.equal(other[0], first[0])


#: sha256 (first 16 hex digits) of the first 3 batches of FashionMNIST5 (batch 32, 32x32),
#: shuffling seed 3, two epochs, then the validation loader: computed with the CPU loader that
#: trained the runs under results/ (before the CPU and GPU loaders became one), so a change
#: to how batches are cut, augmented or normalized cannot go unnoticed.
RECORDED = {False: ("6afd40c44dead4ca", "63be1ece43a6f1fc", "6f0ea2feba71b88a"),
            "crop-flip": ("9dd8f2df518d8d79", "85bcc68db536c533", "6f0ea2feba71b88a"),
            "crop-flip-erase": ("2c97536c759407ec", "a1a58cab246b53e7", "6f0ea2feba71b88a")}
RECORDED_SHARDS = {False: ("e5abae9a460414b2", "5850a8d3b945361d"),
                   "crop-flip": ("1ef50b36b5e08a1a", "909c30d671a92e7a"),
                   "crop-flip-erase": ("33f4f432a5946131", "a0ce0ed09fc2dc8b")}


def _digest(loader, batches=3):
    import hashlib
    h = hashlib.sha256()
    for X, y in itertools.islice(loader, batches):
        h.update(X.contiguous().numpy().tobytes())
        h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("augment", list(RECORDED))
def test_on_the_cpu_the_batches_are_the_ones_the_recorded_runs_trained_on(
        augment, offline_fashion_mnist):
    from d2l_ext import FashionMNIST5
    data = FashionMNIST5(batch_size=32, resize=32, root="/nonexistent", download=False,
                         augment=augment)
    loader = data.train_dataloader(shuffle_seed=3)
    assert (_digest(loader), _digest(loader), _digest(data.val_dataloader())) == \
        RECORDED[augment]
    assert tuple(_digest(data.train_dataloader(shuffle_seed=3, shard=(r, 2)))
                 for r in (0, 1)) == RECORDED_SHARDS[augment]   # each share of a 2-process run


@pytest.mark.parametrize("device", DEVICES)
def test_the_uint8_images_are_copied_once_per_dataset(device):
    data = coded("crop-flip", n=100)
    a = D.BatchLoader(data, 10, True, seed=0, device=device)
    b = D.BatchLoader(data, 10, False, seed=1, device=device)
    assert a.images.dtype == torch.uint8 and a.images.device.type == device
    assert a.images.data_ptr() == b.images.data_ptr()             # one copy for both
    before = a.images.data_ptr()
    data.images = data.images[:50].clone()                          # a notebook cuts its data
    data.labels = data.labels[:50]
    assert a.images.data_ptr() != before and len(epoch(a)[1]) == 50   # the loader follows
    if device == "cpu":
        assert a.images is data.images                             # no copy at all


def test_bad_arguments_are_named():
    data = coded(False, n=10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        D.BatchLoader(data, 0, True)
    floats = D.TensorImages(torch.zeros(4, 1, 16, 16), torch.zeros(4), (0.0,), (1.0,))
    with pytest.raises(TypeError, match="must be uint8"):
        D.BatchLoader(floats, 4, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_sync_per_batch_on_cuda():
    loader = D.BatchLoader(coded("crop-flip-erase", n=1000), 128, True, seed=0, device="cuda")
    next(iter(loader))                                   # warm-up allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batches = list(loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == 8
