"""Data that lives on the device: batches cut, augmented and normalized where the model runs.

``data.BatchLoader`` builds every batch on the CPU: it gathers the images, converts them to
float32, augments them and hands them to the Trainer, which copies them to the GPU one batch
at a time. On a GPU that is the bottleneck: the host, not the GPU, sets the pace
(``docs/performance.md`` and ``results/gpu.json`` give the measurements), and it is worse on
a rented machine or Colab with two vCPUs.

``DeviceBatchLoader`` removes the host from the loop:

* the decoded **uint8** images and the labels are copied to the device **once** (and kept for
  later loaders, see ``to_device``): a quarter of the bytes of float32, so 60,000 Fashion-MNIST
  images at 96x96 take 553 MB instead of 2.2 GB, and nothing crosses the bus per batch;
* every batch is made on the device in a handful of whole-batch tensor operations: one
  gather does the shuffled indexing, the crop and the flip together (on uint8), then the
  conversion to float and the normalization, then one ``masked_fill`` writes both the zero
  padding and the erased rectangle; resizing, if asked, is one ``interpolate`` call;
* the random numbers come from a seeded ``torch.Generator`` on that device, so there is no
  per-image Python loop and no host synchronization per batch (no ``.item()``, no boolean
  indexing, whose output size the host would have to wait for): the CPU only queues kernels
  and runs ahead of the GPU.

The distributions are those of the CPU path (``data.TensorImages.batch``): a random crop
after 4-pixel zero padding (offsets uniform over 0..8 on each axis), a horizontal flip with
probability 0.5, and random erasing as ``data.random_erase`` (probability 0.5, area
uniform in 0.02-0.4 of the image, aspect ratio log-uniform in 0.3-3.3, filled with 0, the
mean after normalization). The random numbers are drawn in the same order as there, so on
the CPU a ``DeviceBatchLoader`` yields exactly ``BatchLoader``'s batches for the same seed;
on CUDA the generator's stream differs, and ``tests/test_device_data.py`` checks that the
statistics agree. The CPU path stays as it is for CPU training.
"""
import math
import weakref

import torch
from torch.nn import functional as F

from .data import AUGMENTATIONS, batch_bounds

__all__ = ["DeviceBatchLoader", "device_loader", "to_device", "crop_flip_params",
           "crop_flip_gather", "erase_mask"]

#: Zero padding on each side before the random crop, as in ``data._random_crop_flip``.
PAD = 4
#: Random erasing's parameters, as the defaults of ``data.random_erase``.
ERASE_P, ERASE_AREA, ERASE_RATIO = 0.5, (0.02, 0.4), (0.3, 3.3)

# dataset -> {device: (the host images it was copied from, images on device, labels on device)}
_COPIES = weakref.WeakKeyDictionary()


def _device(device):
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    whether to flip, drawn in the order ``data._random_crop_flip`` draws them."""
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return dy, dx, flip


def crop_flip_gather(images, idx, dy, dx, flip):
    """Images ``idx`` cropped and flipped by one gather: (the batch, the padding mask).

    Output pixel (i, j) of image k is padded-image pixel (dy + i, dx + j), or (dy + i,
    dx + w-1-j) when flipped (the crop is flipped, as on the CPU path), i.e. source pixel
    (dy + i - PAD, ...). Indices outside the image are clamped for the gather and reported
    in the mask (n, 1, h, w), True where the zero padding shows; the caller fills those after
    normalization, where the CPU path pads with zeros.
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
    the images: the distribution of ``data.random_erase`` (area a uniform fraction of h*w in
    ``area``, aspect ratio log-uniform in ``ratio``), with its random numbers drawn in the
    same order, all on ``device``."""
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


def _resize_batch(images, size):
    """uint8 batch -> uint8 batch at ``size``, as ``data.resize_uint8`` does it (bilinear,
    antialiased, rounded back to uint8, so the result is what decoding at that size gives)."""
    X = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True,
                      align_corners=False)
    return X.round_().clamp_(0, 255).to(torch.uint8)


class DeviceBatchLoader:
    """``data.BatchLoader`` with the data and every batch operation on ``device``.

    ``dataset``: a ``data.TensorImages`` or anything with uint8 ``images`` (N, C, H, W),
    ``labels``, ``mean``/``std`` (1, C, 1, 1) and ``augment`` (a key of ``AUGMENTATIONS``).
    ``augment`` overrides the dataset's when given (``False`` turns it off); ``resize`` (int or (height, width)) resizes each
    batch on the device before the crop, so small decoded images can be kept and enlarged
    batch by batch. Yields ``(X, y)``: float32 (n, C, h, w) and long labels, on ``device``.
    The seeded generator lives on the device and advances across epochs, as BatchLoader's.
    """

    def __init__(self, dataset, batch_size, shuffle, seed=None, device=None, augment=None,
                 resize=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        augment = dataset.augment if augment is None else augment
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {augment!r}")
        if dataset.images.dtype != torch.uint8:
            raise TypeError(f"dataset.images must be uint8 (decoded once), "
                            f"got {dataset.images.dtype}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.device = _device(device)
        self.steps = AUGMENTATIONS[augment]
        self.images, self.labels = to_device(dataset, self.device)
        self.mean = dataset.mean.to(self.device)
        self.std = dataset.std.to(self.device)
        self.size = None
        if resize is not None:
            size = (resize, resize) if isinstance(resize, int) else tuple(resize)
            if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
                raise ValueError(f"resize must be an int or (height, width) of ints, "
                                 f"got {resize!r}")
            if size != tuple(self.images.shape[-2:]):
                self.size = size
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)

    def __len__(self):
        return len(batch_bounds(len(self.labels), self.batch_size, self.shuffle))

    def __iter__(self):
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        # As BatchLoader: when shuffling, a last batch of one image joins the one before it.
        for start, end in batch_bounds(n, self.batch_size, self.shuffle):
            yield self.batch(order[start:end])

    def batch(self, idx):
        """Images and labels ``idx`` (a tensor on the device), augmented and normalized."""
        n, g = len(idx), self.generator
        y = self.labels[idx]
        images = self.images
        if self.size is not None:   # resize the batch first, as decoding at that size would
            images = _resize_batch(images[idx], self.size)
            idx = torch.arange(n, device=self.device)
        fill = None                 # pixels that end up 0: the crop's padding, the erased box
        if "crop" in self.steps:
            X, fill = crop_flip_gather(images, idx, *crop_flip_params(n, g, self.device))
        else:
            X = images[idx]
        X = X.float().div_(255).sub_(self.mean).div_(self.std)   # data.TensorImages.normalize
        if "erase" in self.steps:
            box = erase_mask(n, *X.shape[-2:], g, self.device)
            fill = box if fill is None else fill | box
        if fill is not None:
            X.masked_fill_(fill, 0.0)
        return X, y

    def __repr__(self):
        return (f"DeviceBatchLoader({len(self.labels)} images on {self.device}, batch_size="
                f"{self.batch_size}, shuffle={self.shuffle}, augment={self.steps})")


def device_loader(dataset, batch_size, shuffle, seed=None, device=None, augment=None,
                  resize=None):
    """The loader a Trainer uses when the data should live on ``device`` (see the module
    docstring); the uint8 copy is made once per dataset and device and reused."""
    return DeviceBatchLoader(dataset, batch_size, shuffle, seed=seed, device=device,
                             augment=augment, resize=resize)
