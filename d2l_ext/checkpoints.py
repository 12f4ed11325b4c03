"""Checkpoints: what a ``model.pt`` holds, written atomically, read back safely.

A checkpoint is a dict of plain values and tensors (``weights_only=True`` loads it): the
weights with a digest of them, the model's class and hparams (so ``model_from_checkpoint``
rebuilds it, as nanoGPT keeps its model arguments), the class names, the input size, the
split's seed, the per-epoch history and the optimizer state. ``Trainer.save_checkpoint``
and ``Trainer.restore`` write and read it.
"""
import contextlib
import hashlib
import os
import re
import shutil

import torch

from . import models

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_dict", "state_digest", "load_checkpoint", "model_from_checkpoint",
           "check_fits", "load_weights", "atomic_save", "write_failure", "saved_epochs",
           "describe_saved", "plain"]

CHECKPOINT_FORMAT = 1


def plain(value):
    """hparams as plain JSON-like values (tuples become lists, callables are dropped)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not callable(v)}
    return None


def state_digest(state_dict):
    """sha256 (hex) over a state_dict's keys, dtypes, shapes and tensor bytes, in order.

    Stored in every checkpoint and checked on load: a file whose bytes changed after it was
    written (a bad disk, a copy cut short and padded, an editor) is refused instead of
    loading as NaN or random weights."""
    h = hashlib.sha256()
    for key, value in state_dict.items():
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def checkpoint_dict(model, data, history, optimizer_state, trainer):
    """What a checkpoint holds (``Trainer.save_checkpoint`` writes it): the weights and their
    digest, the model's class and hparams, the data's class names, input size and split
    seed, the history, the optimizer's state and the Trainer's settings (``trainer``)."""
    images = getattr(getattr(data, "train", None), "images", None)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "model_class": models.registered_class_name(model),
        "hparams": plain(dict(model.hparams)),
        "state_dict": state,
        "state_digest": state_digest(state),
        "class_names": list(getattr(data, "classes", None)
                            or getattr(model, "class_names", None) or []),
        "input_size": list(images.shape[-2:]) if images is not None else None,
        "split_seed": getattr(data, "seed", None),   # which images were train and validation
        "history": list(history),
        "optimizer": optimizer_state,
        "trainer": plain(trainer),
    }


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict, loaded safely (``weights_only=True``) and checked.

    A file that torch cannot read (empty, truncated, not a checkpoint), a dict without this
    package's format, weights whose digest differs from the one stored at save, or weights
    that are not finite: a ``ValueError`` in one line naming the file and what to do. A
    missing file stays ``FileNotFoundError``. Checkpoints from before digests were stored
    load without the digest check.
    """
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:      # empty, truncated, a text file, a pickle of other objects
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {reason}); "
                         f"it is empty, truncated or not written by torch.save: pass the "
                         f"model.pt that `python -m d2l_ext train` (or Trainer(checkpoint=...)) "
                         f"wrote, or train again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a d2l_ext checkpoint (format {CHECKPOINT_FORMAT}); "
                         f"for a bare state_dict build the model and call load_state_dict")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{path} has no state_dict: it is damaged; train again")
    digest = ckpt.get("state_digest")
    if digest is not None and state_digest(state) != digest:
        raise ValueError(f"{path} is corrupted: its weights do not match the digest stored "
                         f"when it was saved; use another copy or train again")
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor)
           and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path} has non-finite (nan or inf) weights in {len(bad)} tensor(s), "
                         f"first {bad[0]}: the run diverged or the file is damaged; train again")
    return ckpt


def model_from_checkpoint(path, map_location="cpu", ckpt=None):
    """Rebuild the model a checkpoint was saved from, weights loaded, in eval mode.

    ``ckpt``: the dict ``load_checkpoint(path)`` already returned, so the file is read once.
    """
    ckpt = ckpt if ckpt is not None else load_checkpoint(path, map_location)
    cls = models.model_class(ckpt["model_class"])
    if cls is None:
        raise ValueError(f"{path}: unknown model class {ckpt['model_class']!r}; build the "
                         f"model yourself and call load_state_dict(ckpt['state_dict'])")
    hparams = {k: tuple(map(tuple, v)) if k == "arch" else v for k, v in ckpt["hparams"].items()
               if v is not None}
    model = cls(**hparams)
    load_weights(model, ckpt, path)
    model.class_names = ckpt.get("class_names")
    return model.eval()


def _describe_hparam(key, value):
    if key == "arch" and isinstance(value, (list, tuple)):
        return f"{len(value)} stages (arch {[list(v) for v in value]})"
    if key == "num_classes":
        return f"{value} outputs (num_classes={value})"
    return f"{key}={value!r}"


def check_fits(model, ckpt, path):
    """A ``ValueError`` naming both values when the checkpoint at ``path`` was saved from
    another kind of model than ``model`` (class, number of outputs, stages). Why: a lazy
    model takes any checkpoint's shapes in ``load_state_dict``, so a 5-class checkpoint
    loaded into ``num_classes=10`` would give a model whose outputs, hparams and checkpoint
    disagree, without a word."""
    saved_class = ckpt.get("model_class")
    mine_class = models.registered_class_name(model)
    if saved_class and saved_class != mine_class:
        raise ValueError(f"{path} holds a {saved_class}, this model is a {mine_class}: build "
                         f"the model it was saved from (model_from_checkpoint({str(path)!r}))")
    saved, mine = ckpt.get("hparams") or {}, plain(dict(getattr(model, "hparams", {}) or {}))
    for key in ("num_classes", "arch"):
        if saved.get(key) is not None and mine.get(key) is not None and saved[key] != mine[key]:
            raise ValueError(f"{path} was saved from a {saved_class or 'model'} with "
                             f"{_describe_hparam(key, saved[key])}, this model has "
                             f"{_describe_hparam(key, mine[key])}: build it with "
                             f"{key}={saved[key]!r}, or use model_from_checkpoint")


def load_weights(model, ckpt, path):
    """``load_state_dict``, with torch's page of missing and unexpected keys turned into one
    sentence naming the file."""
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:160]
        raise ValueError(f"{path} does not fit this model ({detail}); build the model it was "
                         f"saved from with model_from_checkpoint({str(path)!r})") from None


def atomic_save(obj, path, before_replace=None):
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash or Ctrl-C
    mid-write leaves the old file whole, never a truncated one, and the temporary file is
    removed on every path that runs code (SIGKILL leaves it: ``remove_litter``). A write
    that fails (a full disk) is an ``OSError`` in one sentence, not torch's
    ``[enforce fail at inline_container.cc]``. ``before_replace``: called between the two."""
    path = str(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        try:
            torch.save(obj, tmp)
        except (OSError, RuntimeError) as e:
            raise OSError(write_failure(path, e)) from None
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_failure(path, error):
    """Why writing ``path`` failed, in one line, with the free space left on its disk."""
    reason = " ".join(str(error).split()) or type(error).__name__
    reason = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", reason)[:160]
    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        space = "the disk is full" if free < 2 ** 20 else f"{free / 2 ** 20:.0f} MB free there"
    except OSError:
        space = "free space unknown"
    return f"cannot write {path}: {reason} ({space})"


def saved_epochs(path, history=()):
    """(how many epochs the checkpoint at ``path`` holds, whether they are the first epochs
    of ``history``), read from the file itself: what an interrupted or failed run can
    truthfully say it kept. ``(0, False)`` when there is no file, ``(None, False)`` when it
    cannot be read. "Ours" compares whole history rows (their seconds included), so an
    earlier run's file that ``--overwrite`` has not replaced yet is not counted as this
    run's."""
    if not os.path.exists(path):
        return 0, False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:       # damaged or foreign: it holds nothing this run can name
        return None, False
    saved = list(ckpt.get("history") or []) if isinstance(ckpt, dict) else []
    return len(saved), bool(saved) and saved == list(history)[:len(saved)]


def describe_saved(path, history=()):
    """One clause saying what the checkpoint at ``path`` holds now (``saved_epochs``)."""
    epochs, ours = saved_epochs(path, history)
    if epochs == 0 and not os.path.exists(path):
        return f"nothing was saved ({path} was not written)"
    if epochs is None:
        return f"{path} cannot be read"
    if not ours:
        return (f"{path} was not replaced: it still holds an earlier run's {epochs} "
                f"epoch(s)")
    return f"{path} holds the {epochs} finished epoch(s)"
