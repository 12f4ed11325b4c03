"""How a batch is made, on whichever device the model runs: one pipeline for CPU and GPU.

``data.BatchLoader`` (the one loader) calls ``make_batch`` with the images where they live:
on the CPU, the decoded uint8 tensors themselves; on a GPU, a uint8 copy made **once** per
data set (``to_device``; a quarter of float32's bytes, so 60,000 Fashion-MNIST images at
96x96 take 553 MB, and nothing crosses the bus per batch). A batch is a handful of
whole-batch tensor operations: one gather does the shuffled indexing, the crop and the flip
together (on uint8), then the conversion to float and the normalization, then one
``masked_fill`` writes both the zero padding and the erased rectangle. The random numbers come from a seeded ``torch.Generator`` on
that device, drawn for the whole batch, so a GPU run has no per-image Python loop and no
host synchronization per batch (``docs/performance.md`` says what that buys).

The augmentations: a random crop after 4-pixel zero padding (offsets uniform over 0..8 on
each axis), a horizontal flip with probability 0.5, and random erasing (Zhong et al., 2017:
probability 0.5, area uniform in 0.02-0.4 of the image, aspect ratio log-uniform in
0.3-3.3, filled with 0, the mean after normalization). On CUDA the generator's stream
differs from the CPU's, so ``tests/test_device_data.py`` checks the distributions.
"""
import math
import weakref

import torch

__all__ = ["make_batch", "to_device", "crop_flip_params", "crop_flip_gather", "erase_mask"]

#: Zero padding on each side before the random crop.
PAD = 4
#: Random erasing's parameters (torchvision's ``RandomErasing`` defaults).
ERASE_P, ERASE_AREA, ERASE_RATIO = 0.5, (0.02, 0.4), (0.3, 3.3)

# dataset -> {device: (the host images it was copied from, images on device, labels on device)}
_COPIES = weakref.WeakKeyDictionary()


def _device(device):
    """``device`` with its index (the copies are kept per device, so 'cuda' is 'cuda:N')."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def to_device(dataset, device):
    """The dataset's uint8 images and long labels on ``device``, copied once per dataset.

    Copies stay as uint8 (4x fewer bytes than float32, both on the bus and in device memory)
    and are remembered for as long as the dataset lives, so a second ``fit`` or a new loader
    over the same data does not copy again. A dataset whose ``images`` were replaced is copied
    anew.
    """
    device = _device(device)
    copies = _COPIES.setdefault(dataset, {})
    source, images, labels = copies.get(device, (None, None, None))
    if source is not dataset.images:
        images = dataset.images.to(device)
        labels = dataset.labels.to(device=device, dtype=torch.long)
        copies[device] = (dataset.images, images, labels)
    return images, labels


def crop_flip_params(n, generator, device):
    """Per image: row and column offsets into the padded image (uniform over 0..2*PAD) and
    whether to flip."""
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return dy, dx, flip


def crop_flip_gather(images, idx, dy, dx, flip):
    """Images ``idx`` cropped and flipped by one gather: (the batch, the padding mask).

    Output pixel (i, j) of image k is padded-image pixel (dy + i, dx + j), or (dy + i,
    dx + w-1-j) when flipped (the crop is flipped, as on the CPU path), i.e. source pixel
    (dy + i - PAD, ...). Indices outside the image are clamped for the gather and reported
    in the mask (n, 1, h, w), True where the zero padding shows; the caller fills those with
    zeros after normalization.
    """
    n = len(idx)
    c, h, w = images.shape[1:]
    device = images.device
    i = torch.arange(h, device=device)
    j = torch.arange(w, device=device)
    rows = dy.view(n, 1) + (i - PAD)                                     # (n, h)
    cols = dx.view(n, 1) - PAD + torch.where(flip.view(n, 1), w - 1 - j, j)   # (n, w)
    pad = (((rows < 0) | (rows >= h)).view(n, 1, h, 1)
           | ((cols < 0) | (cols >= w)).view(n, 1, 1, w))
    X = images[idx.view(n, 1, 1, 1), torch.arange(c, device=device).view(1, c, 1, 1),
               rows.clamp(0, h - 1).view(n, 1, h, 1), cols.clamp(0, w - 1).view(n, 1, 1, w)]
    return X, pad


def erase_mask(n, h, w, generator, device, p=ERASE_P, area=ERASE_AREA, ratio=ERASE_RATIO):
    """(n, 1, h, w) bool, True inside one random rectangle per image, in a fraction ``p`` of
    the images (area a uniform fraction of h*w in ``area``, aspect ratio log-uniform in
    ``ratio``), all drawn on ``device``."""
    target = torch.empty(n, device=device).uniform_(*area, generator=generator) * (h * w)
    aspect = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                    generator=generator).exp()
    eh = (target * aspect).sqrt().round().clamp(1, h).long()
    ew = (target / aspect).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator, device=device) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator, device=device) * (w - ew + 1)).long()
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
           & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    box &= (torch.rand(n, generator=generator, device=device) < p).view(n, 1, 1)
    return box.unsqueeze(1)


def make_batch(images, labels, idx, mean, std, steps=(), generator=None):
    """Images and labels ``idx`` (a tensor on the images' device), augmented by ``steps``
    (``data.AUGMENTATIONS``: "crop", "flip", "erase") with ``generator``, and normalized
    with ``mean``/``std`` (1, C, 1, 1): (float32 X, long y)."""
    n, device = len(idx), images.device
    y = labels[idx]
    fill = None                 # pixels that end up 0: the crop's padding, the erased box
    if "crop" in steps:
        X, fill = crop_flip_gather(images, idx, *crop_flip_params(n, generator, device))
    else:
        X = images[idx]
    X = X.float().div_(255).sub_(mean).div_(std)
    if "erase" in steps:
        box = erase_mask(n, *X.shape[-2:], generator, device)
        fill = box if fill is None else fill | box
    if fill is not None:
        X.masked_fill_(fill, 0.0)
    return X, y
