"""Data that works offline and decodes once: Fashion-MNIST, the report's 5-class task, image folders.

``d2l.FashionMNIST`` downloads at construction (no network, no data) and runs PIL's
resize on every image every epoch. Here every data set is decoded once into a uint8
tensor at the chosen size; batches are cut from that tensor, augmented, converted to float
and normalized a whole batch at a time (``BatchLoader``, ``device_data.make_batch``), so an
epoch costs memory copies, not Python calls.
"""
import copy
import gzip
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from d2l import torch as d2l

from .device_data import erase_mask, make_batch, to_device

__all__ = ["TensorImages", "FashionMNIST", "FashionMNIST5", "ImageFolderData",
           "DEBIAN_FASHION_MNIST", "FASHION_MNIST_CLASSES", "AUGMENTATIONS", "random_erase"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                         'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
#: Training-time augmentations by name. ``True`` means "crop-flip", d2l's usual pair;
#: "crop-flip-erase" adds random erasing (Zhong et al., 2017), as the full Fashion-MNIST
#: recipe does.
AUGMENTATIONS = {False: (), None: (), True: ("crop", "flip"), "crop-flip": ("crop", "flip"),
                 "crop-flip-erase": ("crop", "flip", "erase")}
#: Smallest side the networks here can use: the stem divides by 4, three stages by 4 more.
MIN_IMAGE_SIZE = 16


def _size_pair(resize):
    pair = (resize, resize) if isinstance(resize, int) else tuple(resize)
    if len(pair) != 2 or not all(isinstance(s, int) and s >= MIN_IMAGE_SIZE for s in pair):
        raise ValueError(f"resize must be an int or (height, width) of ints >= {MIN_IMAGE_SIZE} "
                         f"(the ResNeXt stem and stages shrink images 16-fold), got {resize!r}")
    return pair


def resize_uint8(images, size):
    """Resize a uint8 (N, C, H, W) tensor once, in chunks, with antialiasing."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images.contiguous()
    out = torch.empty((*images.shape[:2], *size), dtype=torch.uint8)
    for i in range(0, len(images), 4096):
        chunk = images[i:i + 4096].float()
        chunk = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i:i + 4096] = chunk.round().clamp(0, 255).to(torch.uint8)
    return out


class TensorImages(torch.utils.data.Dataset):
    """Decoded images (uint8, N x C x H x W) with labels; items and batches come normalized.

    ``augment`` (training only; see ``AUGMENTATIONS``): a random crop after 4-pixel zero
    padding and a random horizontal flip, optionally followed by random erasing, all done
    on whole batches.
    """

    def __init__(self, images, labels, mean, std, augment=False):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {augment!r}")
        self.images, self.labels = images, labels.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def normalize(self, images):
        return (images.float() / 255 - self.mean) / self.std

    def __getitem__(self, i):
        return self.normalize(self.images[i:i + 1])[0], self.labels[i]

    def batch(self, idx, generator=None):
        """Images ``idx``, augmented as ``augment`` says, normalized (``make_batch``)."""
        return make_batch(self.images, self.labels, torch.as_tensor(idx), self.mean, self.std,
                          AUGMENTATIONS[self.augment], generator)


def random_erase(X, generator=None, p=0.5, area=(0.02, 0.4), ratio=(0.3, 3.3)):
    """Blank one random rectangle in each image with probability ``p`` (Zhong et al., 2017).

    The rectangle covers ``area`` of the image (a fraction drawn uniformly) with an aspect
    ratio drawn log-uniformly from ``ratio``; it is filled with 0, the data mean after
    normalization (torchvision's ``RandomErasing`` default). One rectangle per image, drawn
    for the whole batch at once.
    """
    n, _, h, w = X.shape
    return X.masked_fill(erase_mask(n, h, w, generator, X.device, p, area, ratio), 0.0)


def batch_bounds(n, batch_size, merge_single=False):
    """(start, end) of each batch over ``n`` items. ``merge_single``: a last batch of one
    item joins the batch before it (``batch_size + 1`` items) instead of standing alone.

    Why: a training step on one image breaks batch norm wherever a feature map is 1x1
    (one value per channel: no variance to normalize by; PyTorch raises), which the 3-stage
    net reaches at 16x16 inputs and the 5-stage net at 32x32; on larger maps it is merely
    a noisy step. 501 images at batch 100 thus give four batches of 100 and one of 101.
    Only training loaders merge; evaluation (eval mode) handles a batch of one.
    """
    starts = list(range(0, n, batch_size))
    if merge_single and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


class BatchLoader:
    """A DataLoader-like iterable over a TensorImages: seeded shuffling, whole-batch indexing,
    every batch made by ``device_data.make_batch`` on ``device`` (the one loader, for CPU
    and GPU alike: on a GPU the uint8 images are copied there once, ``to_device``, and
    batches are cut, augmented and normalized there, with a generator on that device).

    With ``shuffle`` (training), a last batch of one image is merged into the batch before
    it (see ``batch_bounds``).

    ``shard=(rank, world_size)`` (data-parallel training, ``distributed.py``): with
    ``shuffle``, every process draws the same permutation, cuts it into steps of the global
    ``batch_size`` and yields its share of each step (``distributed.epoch_shares``), so all
    processes take the same number of steps; ``step_images`` is the size of the whole step
    just yielded. With augmentation, the whole step is cut and augmented and the share
    kept: every process's generator then advances exactly as the single process's does, so
    the N processes see the very images (crops and flips included) of a 1-process run.
    Without ``shuffle`` (evaluation) each process reads a contiguous slice
    (``distributed.eval_share``)."""

    def __init__(self, dataset, batch_size, shuffle, seed=None, shard=None, device="cpu"):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if dataset.images.dtype != torch.uint8:
            raise TypeError(f"dataset.images must be uint8 (decoded once), "
                            f"got {dataset.images.dtype}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.device = torch.device(device)
        self.mean, self.std = dataset.mean.to(self.device), dataset.std.to(self.device)
        self.steps = AUGMENTATIONS[dataset.augment]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        self.shard = tuple(shard) if shard is not None and shard[1] > 1 else None
        self.step_images = None

    @property
    def images(self):
        """The data set's uint8 images where batches are made: on the CPU the tensor itself,
        elsewhere the copy ``to_device`` keeps (made anew if the images were replaced)."""
        return self._tensors()[0]

    def _tensors(self):
        if self.device.type == "cpu":
            return self.dataset.images, self.dataset.labels
        return to_device(self.dataset, self.device)

    def batch(self, idx):
        """Images and labels ``idx`` (a tensor), made on this loader's device."""
        images, labels = self._tensors()
        return make_batch(images, labels, idx.to(self.device), self.mean, self.std,
                          self.steps, self.generator)

    def __len__(self):
        if self.shard is not None:
            return len(self._shard_bounds())
        return len(batch_bounds(len(self.dataset), self.batch_size, self.shuffle))

    def __iter__(self):
        if self.shard is not None:
            yield from self._iter_shard()
            return
        n = len(self.dataset)
        order = (torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for start, end in batch_bounds(n, self.batch_size, self.shuffle):
            yield self.batch(order[start:end])

    def _shard_bounds(self):
        from . import distributed
        rank, world = self.shard
        if self.shuffle:
            return distributed.step_bounds(len(self.dataset), self.batch_size, world)
        mine = len(distributed.eval_share(len(self.dataset), rank, world))
        return batch_bounds(mine, self.batch_size // world or 1)

    def _iter_shard(self):
        from . import distributed
        rank, world = self.shard
        n = len(self.dataset)
        if not self.shuffle:
            mine = distributed.eval_share(n, rank, world)
            for start, end in self._shard_bounds():
                yield self.batch(mine[start:end])
            return
        order = torch.randperm(n, generator=self.generator, device=self.device)
        for start, end in self._shard_bounds():
            self.step_images = end - start
            if self.steps:      # the whole step, as one process would: same random draws
                X, y = self.batch(order[start:end])
                yield distributed.share(X, rank, world), distributed.share(y, rank, world)
            else:
                yield self.batch(distributed.share(order[start:end], rank, world))


class TensorDataModule(d2l.DataModule):
    """The part shared by every data set here: three splits, loaders, labels, a picture.

    ``train`` is what the model learns from, ``val`` what choices (learning rate, epochs,
    a configuration) are made on, ``test`` what is read once, at the end of a run, to
    report a number. ``val_dataloader`` is d2l's name and serves ``val``; ``test_dataloader``
    serves ``test``. The split seed belongs to the data (``seed``); the shuffling seed is
    given by whoever asks for a loader (the Trainer passes its own).
    """

    test = None

    def get_dataloader(self, train, shuffle_seed=None, shard=None, device="cpu"):
        """``shard``: ``(rank, world_size)`` of a data-parallel run; ``device``: where the
        batches are made (see ``BatchLoader``)."""
        data = self.train if train else self.val
        return BatchLoader(data, self.batch_size, shuffle=train, seed=shuffle_seed, shard=shard,
                           device=device)

    def train_dataloader(self, shuffle_seed=None, shard=None, device="cpu"):
        return self.get_dataloader(True, shuffle_seed, shard, device)

    def fit_dataloader(self):
        """The training images in order, unaugmented: how well the model fits what it
        learned from (training accuracy in eval mode, beside the validation accuracy)."""
        plain = copy.copy(self.train)
        plain.augment = False
        return BatchLoader(plain, self.batch_size, shuffle=False)

    def test_dataloader(self, shard=None):
        """The test split (None when the data has none), in order, unaugmented."""
        if self.test is None:
            return None
        return BatchLoader(self.test, self.batch_size, shuffle=False, shard=shard)

    def text_labels(self, indices):
        return [self.classes[int(i)] for i in indices]

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def in_channels(self):
        return self.train.images.shape[1]

    def visualize(self, batch, nrows=1, ncols=8, labels=[]):
        X, y = batch
        if not labels:
            labels = self.text_labels(y)
        X = (X * self.train.std + self.train.mean).clamp(0, 1)
        images = X.squeeze(1) if X.shape[1] == 1 else X.permute(0, 2, 3, 1)
        d2l.show_images(images[:nrows * ncols], nrows, ncols, titles=labels[:nrows * ncols])


def read_idx(path):
    """Read one (optionally gzipped) idx file into a uint8 tensor.

    A file that cannot be read whole (a truncated or corrupt gzip stream, a header that
    promises more bytes than the file has) is a ``ValueError`` naming it."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as e:    # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) != offset + math.prod(dims):
        raise ValueError(f"{path} is truncated or corrupt: its header says {dims} "
                         f"({offset + math.prod(dims)} bytes), the file has {len(data)} bytes")
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    return torch.from_numpy(array.reshape(dims).copy())


def _find_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def _read_pair(files):
    """Images (N, 1, 28, 28) and labels from an images file and a labels file."""
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise ValueError(f"{files[0]} ({tuple(images.shape)}) and {files[1]} "
                         f"({tuple(labels.shape)}) do not fit together: one image per label")
    return images.unsqueeze(1), labels


def load_fashion_mnist(root, train, download=True):
    """Images (N, 1, 28, 28) uint8 and labels, and where they came from.

    Looks in order: torchvision's layout under ``root`` (``root/FashionMNIST/raw``), the
    Debian package's copy, then a download through torchvision into ``root``. A copy that
    is there but broken (a truncated or corrupt file) is skipped with a warning naming the
    file, and the next source is tried; when none is left, the error names it too.
    """
    stems = _FILES[train]
    places = [Path(root) / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]
    broken = []
    for folder in places:
        files = [_find_idx(folder, s) for s in stems]
        if all(files):
            try:
                return (*_read_pair(files), str(folder))
            except ValueError as e:
                broken.append(str(e))
                warnings.warn(f"Fashion-MNIST: {e}; trying the next source (delete or replace "
                              f"the broken file to silence this)", stacklevel=2)
    problem = "download=False"
    if download:
        import torchvision
        try:
            ds = torchvision.datasets.FashionMNIST(root=root, train=train, download=True)
            return ds.data.unsqueeze(1).clone(), ds.targets.clone(), str(places[0])
        except Exception as e:  # no network, a proxy, a full disk: all end up here
            problem = f"{type(e).__name__}: {e}"
    unreadable = "".join(f"\n  broken: {b}" for b in broken)
    raise FileNotFoundError(
        f"Fashion-MNIST not found{' whole' if broken else ''}. Tried, in order:\n"
        f"  1. torchvision's layout under root: {places[0]}/{{{','.join(stems)}}}[.gz]\n"
        f"  2. Debian's copy: {DEBIAN_FASHION_MNIST} (sudo apt-get install dataset-fashion-mnist)\n"
        f"  3. a download through torchvision into {root} ({problem})"
        + unreadable + ("\n  delete the broken file(s) (a fresh download replaces them) or "
                        "reinstall the Debian package" if broken else ""))


class FashionMNIST(TensorDataModule):
    """A drop-in for ``d2l.FashionMNIST`` that works offline, decodes once, and has a test set.

    Same ``.train``/``.val``, ``text_labels`` and ``visualize`` as d2l's, with one
    difference that matters: d2l's ``val`` *is* the official test set, so every choice made
    on it is made on the test set. Here ``val`` is ``val_per_class`` images per class held
    out of the official *training* file (seeded, stratified, disjoint from ``train``), and
    ``test`` is the official test file, read once at the end of a run. With the defaults:
    55,000 / 5,000 / 10,000 images.

    Inputs are normalized with the training set's mean and std (0.2860, 0.3530).

    Args:
        batch_size: images per batch (the global batch under torchrun).
        resize: an int or (height, width); at least 16 pixels.
        root: where torchvision's layout is looked for and downloaded to; Debian's copy is
            tried second (``load_fashion_mnist``).
        num_workers: kept for d2l's signature; batches are cut from tensors in memory.
        augment: False; True or 'crop-flip': random crops and flips of training batches;
            'crop-flip-erase': random erasing as well.
        classes: a subset of the ten names, relabelled 0..k-1 in the given order.
        train_per_class: a seeded, stratified subset of the training images (the rest of
            the file, less ``val``, is unused); None: all.
        val_per_class: images a class held out of the training file for ``val``.
        seed: which images go to ``train`` and ``val`` (not the batch order: the Trainer's).
        download: whether a download through torchvision is the last resort.
    """

    MEAN, STD = (0.2860,), (0.3530,)

    def __init__(self, batch_size=64, resize=(28, 28), root="../data", num_workers=0,
                 augment=False, classes=None, train_per_class=None, val_per_class=500, seed=0,
                 download=True):
        super().__init__()
        self.save_hyperparameters()
        size = _size_pair(resize)
        names = list(classes) if classes is not None else list(FASHION_MNIST_CLASSES)
        unknown = [c for c in names if c not in FASHION_MNIST_CLASSES]
        if unknown or len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"classes must be 2+ distinct names from {FASHION_MNIST_CLASSES}, "
                             f"got {classes!r}")
        for name, n in (("train_per_class", train_per_class), ("val_per_class", val_per_class)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        self.classes = names
        images, labels, self.source = load_fashion_mnist(root, True, download)
        train_idx, val_idx = self._split(labels, train_per_class, val_per_class)
        test_images, test_labels, _ = load_fashion_mnist(root, False, download)
        test_idx = self._split(test_labels, None, None)[0]

        def split(imgs, lbls, idx, augment=False):
            return TensorImages(resize_uint8(imgs[idx], size), self._relabel(lbls[idx]),
                                self.MEAN, self.STD, augment=augment)
        self.train = split(images, labels, train_idx, augment)
        self.val = split(images, labels, val_idx)
        self.test = split(test_images, test_labels, test_idx)

    def _split(self, labels, train_per_class, val_per_class):
        """Indices of (train, val) in one file: per class a seeded permutation; the first
        ``train_per_class`` go to train, the last ``val_per_class`` to val."""
        generator = torch.Generator().manual_seed(self.seed)
        train, val = [], []
        for name in self.classes:
            idx = (labels == FASHION_MNIST_CLASSES.index(name)).nonzero().flatten()
            if val_per_class is None:
                train.append(idx)
                continue
            n_train = train_per_class if train_per_class is not None else len(idx) - val_per_class
            if n_train < 1 or n_train + val_per_class > len(idx):
                raise ValueError(f"class {name!r} has {len(idx)} training images: too few for "
                                 f"train_per_class={train_per_class} and "
                                 f"val_per_class={val_per_class}")
            idx = idx[torch.randperm(len(idx), generator=generator)]
            train.append(idx[:n_train])
            val.append(idx[len(idx) - val_per_class:])
        val = torch.cat(val).sort().values if val else None
        return torch.cat(train).sort().values, val

    def _relabel(self, labels):
        remap = torch.full((10,), -1, dtype=torch.long)
        remap[[FASHION_MNIST_CLASSES.index(c) for c in self.classes]] = torch.arange(len(self.classes))
        return remap[labels.long()]


class FashionMNIST5(FashionMNIST):
    """The report's regime on real data: 5 classes, 100 training images each.

    The report's own data set (5 classes, a course's small image set) is not available.
    This preset mirrors its regime: t-shirt, pullover, dress, coat and shirt are the five
    Fashion-MNIST classes that the usual classifiers confuse most, so accuracy stays well below 100%; and 100 training images
    per class (500 in all, seeded and stratified) are few enough for a deep network to
    memorize. Three disjoint splits: ``train`` 500 images, ``val`` 200 per class (1,000)
    from the rest of the official training file, ``test`` every official test image of
    those classes (5,000). ``val`` is kept small on purpose: it is evaluated after every
    epoch, and 5,000 images would cost more than the epoch's training on a CPU.
    Images are resized to 32x32 by default.
    """

    CLASSES = ['t-shirt', 'pullover', 'dress', 'coat', 'shirt']

    def __init__(self, batch_size=64, resize=(32, 32), root="../data", num_workers=0,
                 augment=False, train_per_class=100, val_per_class=200, seed=0, download=True):
        super().__init__(batch_size=batch_size, resize=resize, root=root,
                         num_workers=num_workers, augment=augment, classes=self.CLASSES,
                         train_per_class=train_per_class, val_per_class=val_per_class,
                         seed=seed, download=download)


def image_extensions():
    """File name endings of every format Pillow can open (GIF, TIFF, WebP, ... included),
    lower case: what ``ImageFolderData`` reads. torchvision's ``ImageFolder`` default list
    has nine and skips, among others, ``.gif``."""
    from PIL import Image
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def find_images(folder):
    """The class folders of ``folder`` and their image files, as ``ImageFolder`` finds them
    (classes sorted, files in sorted folder order), with three differences:

    * every format Pillow opens is taken (``image_extensions``); other files (say, notes)
      are returned in ``skipped`` for a warning, never silently dropped; hidden files and
      folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored;
    * symlinked folders are followed once: a folder already read (by real path) is not read
      again, so a link back up the tree is no loop;
    * the same file (by real path) reached twice in one class counts once; in two classes
      it is a ``ValueError`` naming both paths.

    Returns ``(classes, samples, skipped)``, ``samples`` a list of ``(path, class index,
    real path)``.
    """
    folder = Path(folder)
    extensions = image_extensions()
    classes = sorted(e.name for e in os.scandir(folder)
                     if not e.name.startswith(".") and _is_dir(e))
    samples, skipped, owner = [], [], {}
    for index, name in enumerate(classes):
        visited, found, stack = set(), [], [os.path.join(str(folder), name)]
        while stack:
            directory = stack.pop()
            real = os.path.realpath(directory)
            if real in visited:         # a symlink back into a folder already read
                continue
            visited.add(real)
            try:
                entries = list(os.scandir(directory))
            except OSError as e:
                raise ValueError(f"cannot read folder {directory}: {e.strerror}") from None
            files = []
            for e in entries:
                if e.name.startswith("."):
                    continue
                if _is_dir(e):          # follows symlinks, once (visited)
                    stack.append(e.path)
                else:                   # a dangling link too: decoding will name it
                    files.append(e.name)
            found.append((directory, files))
        for directory, files in sorted(found):
            for fname in sorted(files):
                path = os.path.join(directory, fname)
                if os.path.splitext(fname)[1].lower() not in extensions:
                    skipped.append(path)
                    continue
                real = os.path.realpath(path)
                if real in owner:
                    other_path, other_index = owner[real]
                    if other_index == index:
                        continue        # the same file twice in one class: once
                    raise ValueError(f"the same image file is in two classes of {folder}: "
                                     f"{other_path} and {path} (both are {real}); an image "
                                     f"has one label: remove one (check symlinks)")
                owner[real] = (path, index)
                samples.append((path, index, real))
    return classes, samples, skipped


def _is_dir(entry):
    """``entry.is_dir()``, with a link that cannot be followed (one to itself, a circle of
    links: ``Too many levels of symbolic links``) a ``ValueError`` naming it."""
    try:
        return entry.is_dir()
    except OSError as e:
        raise ValueError(f"cannot follow {entry.path}: {e.strerror} (a symbolic link to itself "
                         f"or in a circle?): remove or fix it") from None


def _scaled_to_8_bits(image):
    """A 16-bit (``I;16*``), 32-bit integer (``I``) or float (``F``) gray image as 8-bit
    ``L``, its own lowest to highest value stretched onto 0-255. Pillow's ``convert("L")``
    clips at 255 instead, which turns a 16-bit image near-white and a 12-bit one white."""
    from PIL import Image
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image
    a = np.asarray(image).astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(a.round(), 0, 255).astype(np.uint8), "L")


class ImageFolderData(TensorDataModule):
    """A student's own images: ``root/<class>/*.jpg``, or ``root/train`` (+ ``val``) (+ ``test``).

    Classes and files are found as torchvision's ``ImageFolder`` finds them, but every
    format Pillow opens is read (GIF included) and symlinked folders are followed once
    (``find_images``). Splits: a ``train/`` folder (or ``root`` itself when there is none)
    gives ``train``; ``val/`` gives ``val``, and without it a seeded, stratified
    ``val_fraction`` of each training class is held out; ``test/`` gives ``test``, read
    once at the end of a run (without it there is no test set, and results are validation
    numbers). Every image is decoded once, converted to RGB (``channels=3``) or grayscale
    (``channels=1``) and resized to ``resize``; 16-bit images are scaled by their own range
    (``_scaled_to_8_bits``). Errors name the path: a missing root, no class folders, a
    class without images (in any split), a ``val/`` or ``test/`` folder beside class
    folders but no ``train/``, an image that cannot be decoded (this fails rather than
    skips, so a broken data set is noticed, not silently shrunk), an image smaller than
    ``min_size`` pixels on a side, the same file (by real path) in two classes or two
    splits. Files that are not images by their name are skipped with a warning naming them.
    Normalization uses the training images' own mean/std.

    Args:
        root: the folder (see above for its layouts).
        batch_size: images per batch.
        resize: an int or (height, width) every image is resized to.
        channels: 3 (RGB) or 1 (grayscale).
        val_fraction: the share of each class held out for ``val`` when there is no ``val/``.
        seed: which images that share is (seeded, stratified).
        augment: as ``FashionMNIST``'s.
        min_size: the smallest image side accepted, in pixels.
        num_workers: kept for d2l's signature; every image is decoded once, up front.
    """

    def __init__(self, root, batch_size=32, resize=(64, 64), channels=3, val_fraction=0.2,
                 seed=0, augment=False, min_size=MIN_IMAGE_SIZE, num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        _size_pair(resize)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
        train_dir = root / "train" if (root / "train").is_dir() else root
        if train_dir == root:
            stray = [n for n in ("val", "test") if (root / n).is_dir()]
            if stray:
                raise ValueError(f"{root} has a {'/ and '.join(stray)}/ folder but no train/ "
                                 f"folder: put the training images in {root / 'train'}/<class>/ "
                                 f"(or rename {root / stray[0]} if it is a class)")
        val_dir, test_dir = ((root / n if train_dir != root and (root / n).is_dir() else None)
                             for n in ("val", "test"))
        self._real_paths = {}
        train_imgs, train_y, self.classes = self._read_folder(train_dir)
        if val_dir is not None:
            val_imgs, val_y = self._read_matching(val_dir, train_dir)
            how = f"{val_dir.name}/ folder"
        else:
            if not 0 < val_fraction < 1:
                raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
            train_idx, val_idx = _stratified_split(train_y, val_fraction, seed)
            if len(val_idx) == 0:   # evaluating on nothing would report accuracy nan
                raise ValueError(f"no validation images: every class in {train_dir} has one "
                                 f"image; add images, or a {root / 'val'}/ folder")
            val_imgs, val_y = train_imgs[val_idx], train_y[val_idx]
            train_imgs, train_y = train_imgs[train_idx], train_y[train_idx]
            how = f"{val_fraction:.0%} of {train_dir.name}/ held out (seed {seed})"
        self.split = (f"train: {train_dir.name}/, val: {how}, test: "
                      + (f"{test_dir.name}/ folder" if test_dir is not None else "none"))
        pixels = train_imgs.float().div(255).transpose(0, 1).flatten(1)
        mean, std = pixels.mean(1).tolist(), pixels.std(1).clamp_min(1e-3).tolist()
        self.train = TensorImages(train_imgs, train_y, mean, std, augment=augment)
        self.val = TensorImages(val_imgs, val_y, mean, std)
        if test_dir is not None:
            self.test = TensorImages(*self._read_matching(test_dir, train_dir), mean, std)
        self._check_disjoint()
        del self._real_paths

    def _read_matching(self, folder, train_dir):
        images, labels, _ = self._read_folder(folder, expected=(self.classes, train_dir))
        return images, labels

    def _check_disjoint(self):
        """No file (by real path) in two of the train/val/test folders: an image that is
        both learned from and tested on makes the accuracy a memory test."""
        owner = {}
        for folder, reals in self._real_paths.items():
            for path, real in reals:
                if real in owner and owner[real][0] != folder:
                    dupes = [(owner[r][1], p) for p, r in reals if r in owner
                             and owner[r][0] != folder]
                    listed = "; ".join(f"{a} and {b}" for a, b in dupes[:3])
                    more = f" and {len(dupes) - 3} more" if len(dupes) > 3 else ""
                    raise ValueError(f"{len(dupes)} image file(s) are in two splits "
                                     f"({owner[real][0]} and {folder}): {listed}{more}; each "
                                     f"image must be in one of train/, val/, test/ "
                                     f"(check symlinks)")
            for path, real in reals:
                owner.setdefault(real, (folder, path))

    def _read_folder(self, folder, expected=None):
        """Images, labels and classes of one split's folder; ``expected``: (the classes,
        the folder they come from) that a val/ or test/ folder must have."""
        try:
            classes, samples, skipped = find_images(folder)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"no class folders with images in {folder}: expected "
                                    f"{folder}/<class name>/<image files> ({e})") from None
        if not classes:
            raise FileNotFoundError(f"no class folders in {folder}: expected "
                                    f"{folder}/<class name>/<image files>")
        if skipped:
            warnings.warn(f"{len(skipped)} file(s) in {folder} skipped, not images by their "
                          f"name: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}",
                          stacklevel=3)
        if expected is not None and classes != expected[0]:
            missing = [c for c in expected[0] if c not in classes]
            extra = [c for c in classes if c not in expected[0]]
            raise ValueError(
                f"{folder} must have the class folders of {expected[1]}: "
                + "; ".join(([f"no images of class(es) {', '.join(missing)} (expected "
                              f"{', '.join(str(Path(folder) / c) for c in missing)})"]
                             if missing else [])
                            + ([f"class(es) {', '.join(extra)} not in {expected[1]}"]
                               if extra else [])))
        targets = [label for _, label, _ in samples]
        counts = np.bincount(targets, minlength=len(classes))
        empty = [c for c, n in zip(classes, counts) if n == 0]
        if empty:
            raise ValueError(f"class folder(s) without images in {folder}: "
                             f"{', '.join(str(Path(folder) / c) for c in empty)}")
        if len(classes) < 2:
            raise ValueError(f"{folder} has one class folder ({classes[0]}); need 2 or more")
        self._real_paths[str(folder)] = [(path, real) for path, _, real in samples]
        size = _size_pair(self.resize)
        images = torch.empty((len(samples), self.channels, *size), dtype=torch.uint8)
        for i, (path, _, _) in enumerate(samples):
            images[i] = decode_image(path, self.channels, size, self.min_size)
        return images, torch.tensor(targets), list(classes)


def decode_image(image, channels, size, min_size=1):
    """A file path or PIL image as a uint8 (C, H, W) tensor: RGB or gray, resized to ``size``.

    Shared by ``ImageFolderData`` and ``evaluation.predict`` so that new images are
    converted exactly like the training images. Errors name the file.
    """
    from PIL import Image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file {path} does not exist")
        try:
            with Image.open(path) as img:
                img.load()
                image = img.copy()
        except Exception as e:
            raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None
    else:
        path = "(PIL image)"
    if min(image.size) < min_size:
        raise ValueError(f"image {path} is {image.size[0]}x{image.size[1]} pixels, "
                         f"smaller than min_size={min_size}")
    h, w = size
    image = _scaled_to_8_bits(image)    # 16-bit gray: by its range, not clipped to white
    image = image.convert("RGB" if channels == 3 else "L").resize((w, h), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8).reshape(h, w, -1)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _stratified_split(labels, fraction, seed):
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_val = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        if n_val == 0:
            warnings.warn(f"class {int(c)} has one image; it goes to training only")
        val.append(idx[:n_val]); train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values
