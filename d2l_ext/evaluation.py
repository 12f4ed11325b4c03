"""What a trained classifier gets right and wrong: accuracy, confusions, mistakes, predictions.

Every function takes the model and a loader (or images) and runs in eval mode without
gradients on the model's own device, so the numbers match ``Trainer.evaluate``.
"""
import contextlib
from pathlib import Path

import torch
from torch.nn import functional as F

from .data import decode_image
from .plotting import plt, show_image_grid

__all__ = ["TTA", "predictions", "accuracy", "confusion_matrix", "per_class_accuracy",
           "plot_confusion_matrix", "show_mistakes", "predict"]


def _device(model):
    return next(model.parameters()).device


#: Test-time augmentations: ``"flip"`` averages the probabilities of each image and its
#: mirror image. It only helps a model trained with flips (one trained without them has never
#: seen a mirrored coat, and loses points on it).
TTA = (None, "flip")


def _runner(model):
    """(prepare a batch, an autocast context) for evaluating ``model``: its Trainer's, when
    it was trained by one on the device it is on now (same device, memory format and
    precision as the Trainer's own validation), else a plain copy to the model's device."""
    device = _device(model)
    trainer = getattr(model, "trainer", None)
    if (trainer is not None and hasattr(trainer, "prepare_batch")
            and hasattr(trainer, "autocast") and getattr(trainer, "device", None) == device):
        return trainer.prepare_batch, trainer.autocast
    return (lambda batch: (batch[0].to(device), batch[1].to(device))), contextlib.nullcontext


@torch.no_grad()
def predictions(model, loader, tta=None, keep_inputs=False):
    """(inputs, labels, predicted labels, probabilities) over the whole loader, on the CPU.

    ``inputs`` is None unless ``keep_inputs=True`` (a copy of every image costs memory and
    only a gallery of mistakes needs it). A model trained by a ``Trainer`` is evaluated
    with that Trainer's batch preparation and autocast (bf16 where it trained in bf16).
    """
    if tta not in TTA:
        raise ValueError(f"tta must be one of {TTA}, got {tta!r}")
    model.eval()
    prepare, autocast = _runner(model)
    xs, ys, probs = [], [], []
    for batch in loader:
        X_dev, y_dev = prepare(batch)
        with autocast():
            p = F.softmax(model(X_dev).float(), dim=1)
            if tta == "flip":
                p = (p + F.softmax(model(X_dev.flip(-1)).float(), dim=1)) / 2
        probs.append(p.cpu())
        ys.append(y_dev.cpu())
        if keep_inputs:
            xs.append(batch[0].cpu())
    if not probs:
        raise ValueError("the loader yielded no batches: nothing to evaluate")
    probs, ys = torch.cat(probs), torch.cat(ys)
    if len(ys) and int(ys.max()) >= probs.shape[1]:
        # Why: a confusion matrix of a 5-output model on 10-class labels is silently wrong.
        raise ValueError(f"the model has {probs.shape[1]} outputs (classes) but the data has "
                         f"a label {int(ys.max())}: the model was trained on other data "
                         f"(it needs at least {int(ys.max()) + 1} classes)")
    return (torch.cat(xs) if keep_inputs else None), ys, probs.argmax(1), probs


def accuracy(model, loader, tta=None):
    """Fraction of correctly classified examples over every example of the loader."""
    _, y, pred, _ = predictions(model, loader, tta)
    return (pred == y).float().mean().item()


def confusion_matrix(model, loader, num_classes=None):
    """``C[i, j]``: how many examples of true class i were predicted as class j."""
    _, y, pred, probs = predictions(model, loader)
    k = num_classes or probs.shape[1]
    if k != probs.shape[1]:
        raise ValueError(f"num_classes={k}, but the model has {probs.shape[1]} outputs "
                         f"(classes): leave num_classes out")
    return torch.bincount(y * k + pred, minlength=k * k).view(k, k)


def per_class_accuracy(confusion):
    """Recall of each class: the diagonal over the row sums."""
    return confusion.diag().float() / confusion.sum(1).clamp_min(1).float()


def plot_confusion_matrix(confusion, class_names, normalize=True, ax=None):
    """A heat map with counts (or row fractions) written in each cell."""
    values = confusion.float()
    if normalize:
        values = values / values.sum(1, keepdim=True).clamp_min(1)
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.7 * len(class_names), 0.7 * len(class_names)))
    ax.imshow(values, cmap="Blues", vmin=0, vmax=values.max().item() or 1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted"); ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            v = values[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                    color="white" if v > 0.5 * values.max().item() else "black", fontsize=8)
    return ax


def show_mistakes(model, data, max_images=16, ncols=8):
    """A gallery of misclassified validation images titled 'true -> predicted (p)'."""
    X, y, pred, probs = predictions(model, data.val_dataloader(), keep_inputs=True)
    wrong = (pred != y).nonzero().flatten()
    wrong = wrong[probs[wrong, pred[wrong]].argsort(descending=True)][:max_images]
    titles = [f"{data.classes[y[i]]}\n-> {data.classes[pred[i]]} ({probs[i, pred[i]]:.2f})"
              for i in wrong]
    images = (X[wrong] * data.train.std + data.train.mean).clamp(0, 1)
    return show_image_grid(images, titles, ncols=ncols)


@torch.no_grad()
def predict(model, images, data=None, class_names=None, top=1):
    """Class names and probabilities for image files, PIL images or a batch tensor.

    Files and PIL images are converted like the training data (channels, size, the
    training set's normalization), which needs ``data``; a tensor is taken as already
    normalized, shaped (N, C, H, W). Returns one list of ``(class name, probability)``
    pairs per image, best first, ``top`` long. One file name or PIL image is one image.
    Misuse (no images, a uint8 tensor, as many class names as the model has outputs or
    not, ``top`` beyond the classes) is a ``ValueError`` saying what to pass instead.
    """
    names = class_names or (data.classes if data is not None else None) \
        or getattr(model, "class_names", None)
    if not names:
        raise ValueError("predict needs class names: pass data= or class_names=")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer (how many classes to list per "
                         f"image), got {top!r}")
    X = _as_batch(images, data)
    model.eval()
    probs = F.softmax(model(X.to(_device(model))).float(), dim=1).cpu()
    if probs.shape[1] != len(names):
        raise ValueError(f"the model has {probs.shape[1]} outputs (classes) but "
                         f"{len(names)} class names were given ({', '.join(map(str, names))}): "
                         f"pass the names of the classes it was trained on")
    if top > len(names):
        raise ValueError(f"top={top} is more than the model's {len(names)} classes")
    values, idx = probs.topk(top, dim=1)
    return [[(names[j], round(v, 4)) for v, j in zip(vs.tolist(), js.tolist())]
            for vs, js in zip(values, idx)]


def _as_batch(images, data):
    """``predict``'s images as one normalized float batch (N, C, H, W)."""
    if isinstance(images, torch.Tensor):
        if not images.is_floating_point():
            raise ValueError(f"predict takes a float tensor normalized like the training "
                             f"batches, got {images.dtype}: normalize it first "
                             f"(data.train.normalize(images)), or pass files or PIL images "
                             f"with data=")
        if images.dim() not in (3, 4) or images.numel() == 0:
            raise ValueError(f"predict takes an image (C, H, W) or a batch (N, C, H, W) with "
                             f"at least one image, got shape {tuple(images.shape)}")
        return images if images.dim() == 4 else images.unsqueeze(0)
    if isinstance(images, (str, Path)) or hasattr(images, "getbands"):    # one file or PIL
        images = [images]
    try:
        images = list(images)
    except TypeError:
        raise ValueError(f"predict takes file names, PIL images or a tensor, got "
                         f"{type(images).__name__}") from None
    if not images:
        raise ValueError("predict got no images (an empty list): pass file names, PIL "
                         "images or a tensor")
    if data is None:
        raise ValueError("predict needs data= to convert files or PIL images like the "
                         "training images")
    return torch.stack([_load_like(img, data) for img in images])


def _load_like(image, data):
    size = tuple(data.train.images.shape[2:])
    return data.train.normalize(decode_image(image, data.in_channels, size).unsqueeze(0))[0]
