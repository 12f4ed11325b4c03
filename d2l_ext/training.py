"""``d2l_ext.Trainer``: d2l's ``Trainer(max_epochs=...).fit(model, data)``, made fast and safe.

What ``d2l.Trainer`` 1.0.3 lacks, and this one adds: a device choice (CUDA when present,
said once when asked for but absent); ``channels_last`` memory (about 1.3x on this CPU);
bf16 autocast on CUDA; no host sync per batch (loss and accuracy are summed on the device
and read a bounded number of times per epoch, because d2l's ``plot`` calls ``.cpu()`` on
every batch); validation accuracy weighted over the whole set; a per-epoch ``history``;
a live board in notebooks and a tqdm bar in terminals; checkpoints that load with
``weights_only=True`` and resume; Ctrl-C that stops cleanly; seeded, repeatable runs.
"""
import math
import time
import warnings

import torch
from d2l import torch as d2l

from . import models
from .progress import in_notebook, NotebookProgress, TerminalProgress, SilentProgress

__all__ = ["Trainer", "resolve_device", "load_checkpoint", "model_from_checkpoint"]

CHECKPOINT_FORMAT = 1
_warned_no_gpu = False


def resolve_device(device=None, num_gpus=0):
    """'auto'/None: CUDA if present, else CPU. 'cuda' without a GPU: CPU, said once."""
    global _warned_no_gpu
    wanted = "cuda" if (device in (None, "auto") and num_gpus) else (device or "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    wanted = torch.device(wanted)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        if not _warned_no_gpu:
            warnings.warn("a GPU was asked for but none is available: training on the CPU",
                          stacklevel=3)
            _warned_no_gpu = True
        return torch.device("cpu")
    return wanted


def cpu_has_native_bf16():
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); None if torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def _plain(value):
    """hparams as plain JSON-like values (tuples become lists, callables are dropped)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not callable(v)}
    return None


def _model_class_name(model):
    for cls in type(model).__mro__:
        if cls.__name__ in models.CHECKPOINT_CLASSES:
            return cls.__name__
    return type(model).__name__


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict, loaded safely (``weights_only=True``)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a d2l_ext checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def model_from_checkpoint(path, map_location="cpu", ckpt=None):
    """Rebuild the model a checkpoint was saved from, weights loaded, in eval mode.

    ``ckpt``: the dict ``load_checkpoint(path)`` already returned, so the file is read once.
    """
    ckpt = ckpt if ckpt is not None else load_checkpoint(path, map_location)
    cls = models.CHECKPOINT_CLASSES.get(ckpt["model_class"])
    if cls is None:
        raise ValueError(f"{path}: unknown model class {ckpt['model_class']!r}; build the "
                         f"model yourself and call load_state_dict(ckpt['state_dict'])")
    hparams = {k: tuple(map(tuple, v)) if k == "arch" else v for k, v in ckpt["hparams"].items()
               if v is not None}
    model = cls(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    model.class_names = ckpt.get("class_names")
    return model.eval()


class Trainer(d2l.Trainer):
    """Used as d2l's: ``Trainer(max_epochs=10).fit(model, data)``; see the module docstring.

    Beyond d2l's arguments: ``device`` ('auto', 'cpu', 'cuda', ...), ``channels_last``,
    ``amp`` (True: bf16 autocast on CUDA, fp32 on the CPU; ``"bf16"``: bf16 autocast on the
    CPU too, about 1.3-1.8x faster on CPUs with native bf16 such as AVX512-BF16 or AMX, slower
    on others; False: fp32), ``seed`` (same seed, same loss curve on the CPU),
    ``momentum``/``weight_decay``/``schedule`` ('cosine' or None; when all are left at
    their defaults the model's own ``configure_optimizers`` is used, as in d2l),
    ``progress`` ('auto', 'notebook', 'terminal', 'none'), ``points_per_epoch`` (how
    often the train loss is read back and drawn), ``checkpoint`` (a path written after
    every epoch and on Ctrl-C).
    """

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0, device="auto",
                 channels_last=True, amp=True, seed=None, momentum=0.0, weight_decay=0.0,
                 schedule=None, progress="auto", points_per_epoch=2, checkpoint=None):
        self.save_hyperparameters()
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
        if schedule not in (None, "cosine"):
            raise ValueError(f"schedule must be None or 'cosine', got {schedule!r}")
        if amp not in (True, False, "bf16"):
            raise ValueError(f"amp must be True, False or 'bf16', got {amp!r}")
        self.device = resolve_device(device, num_gpus)
        if amp == "bf16" and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            warnings.warn("amp='bf16' on a CPU without native bf16 (AVX512-BF16 or AMX): "
                          "training will be slower than in fp32", stacklevel=2)
        self.gpus = [self.device] if self.device.type == "cuda" else []
        self.history, self.interrupted = [], False
        self.optim = self.scheduler = None
        self.train_batch_idx = self.val_batch_idx = 0
        self._pending_state = None

    # -- setup -------------------------------------------------------------------------
    def prepare_batch(self, batch):
        X, y = batch
        if self.device.type == "cuda" and not X.is_cuda:
            # A copy from pageable memory first waits for all GPU work queued so far; one from
            # pinned memory is queued like a kernel, so the next batch is cut and augmented on
            # the CPU while the GPU still computes this one.
            X, y = X.pin_memory(), y.pin_memory()
        X = X.to(self.device, non_blocking=True)
        if self.channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        return X, y.to(self.device, non_blocking=True)

    def prepare_model(self, model):
        model.trainer = self
        if self.device.type == "cuda":     # fixed batch shapes: let cuDNN pick its fastest
            torch.backends.cudnn.benchmark = True   # kernels (grouped convs vary most)
        self.model = model.to(self.device)
        X, _ = self.prepare_batch(next(iter(self.train_dataloader)))
        was_training = model.training
        with torch.no_grad():       # materialize lazy layers (and initialize) before
            model.eval()            # choosing a memory format and making the optimizer
            model(X[:2])
        model.train(was_training)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def configure_optimizers(self, model):
        if self.momentum == 0 and self.weight_decay == 0 and self.schedule is None:
            optim = model.configure_optimizers()
        else:
            optim = torch.optim.SGD(model.parameters(), lr=model.lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay, nesterov=self.momentum > 0)
        scheduler = None
        if self.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=self.max_epochs)
        return optim, scheduler

    @property
    def bf16(self):
        """Whether training and evaluation run under bf16 autocast on this device."""
        return self.amp == "bf16" or (self.amp is True and self.device.type == "cuda")

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _progress(self, model):
        kind = self.progress
        if kind == "auto":
            kind = "notebook" if in_notebook() else "terminal"
        if kind == "notebook":
            return NotebookProgress(self.max_epochs, model.board)
        if kind == "terminal":
            return TerminalProgress(self.max_epochs)
        return SilentProgress()

    def setup(self, model, data):
        """Everything ``fit`` does before its first batch: data, model on the device (lazy
        layers materialized), optimizer and schedule, a restored state. After it,
        ``train_step(batch)`` works on its own (``ablate --estimate`` times it so)."""
        self.data = data
        self.prepare_data(data)
        self.prepare_model(model)
        if self.optim is None or getattr(self, "_optim_model", None) is not model:
            self.optim, self.scheduler = self.configure_optimizers(model)
            self._optim_model = model
        if self._pending_state is not None:
            self._load_training_state(self._pending_state)
            self._pending_state = None
        model.train()

    # -- the loop ----------------------------------------------------------------------
    def fit(self, model, data):
        """Train to ``max_epochs``, continuing ``history`` after a restore (returns None, as d2l)."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
            data.seed = self.seed
        self.setup(model, data)
        self.interrupted = False
        self.train_batch_idx = self.val_batch_idx = 0
        self.board = self._progress(model)
        try:
            for self.epoch in range(len(self.history), self.max_epochs):
                self.history.append(self.fit_epoch())
                self.board.epoch_done(self.history[-1])
                if self.checkpoint:
                    self.save_checkpoint(self.checkpoint)
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"\ninterrupted: stopped after {len(self.history)} complete epoch(s); the "
                  f"model and trainer.history keep them"
                  + (f", saved to {self.checkpoint}" if self.checkpoint else ""), flush=True)
            if self.checkpoint:
                self.save_checkpoint(self.checkpoint)
        finally:
            self.board.close()
            model.eval()

    def fit_epoch(self):
        start = time.perf_counter()
        model, n_batches = self.model, self.num_train_batches
        draw_at = {max(1, round(n_batches * (k + 1) / self.points_per_epoch))
                   for k in range(self.points_per_epoch)}
        model.train()
        self.board.start_epoch(self.epoch + 1, n_batches)
        loss_sum = torch.zeros((), device=self.device)
        seen, drawn_sum, drawn_seen = 0, 0.0, 0     # loss_sum and seen at the last point drawn
        for i, batch in enumerate(self.train_dataloader, 1):
            loss, size = self.train_step(batch)
            loss_sum += loss * size
            seen += size
            self.board.batch_done()
            if i in draw_at:        # the only host syncs of the training loop
                total = loss_sum.item()
                self.board.train_point(self.epoch + i / n_batches,
                                       (total - drawn_sum) / (seen - drawn_seen))
                drawn_sum, drawn_seen = total, seen
        if self.scheduler is not None:
            self.scheduler.step()
        val_loss, val_acc = self.evaluate(model, self.val_dataloader)
        return {"epoch": self.epoch + 1, "train_loss": (loss_sum / seen).item(),
                "val_loss": val_loss, "val_acc": val_acc,
                "lr": self.optim.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start}

    def train_step(self, batch):
        """One SGD step on one batch: (the batch's mean loss, still on the device; its size)."""
        model = self.model
        X, y = self.prepare_batch(batch)
        with self._autocast():
            loss = model.loss(model(X), y)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.gradient_clip_val > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.gradient_clip_val)
        self.optim.step()
        self.train_batch_idx += 1
        return loss.detach().float(), len(y)

    @torch.no_grad()
    def evaluate(self, model, loader):
        """Mean loss and accuracy over every example of ``loader`` (not a mean of batches)."""
        if loader is None:
            return math.nan, math.nan
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        total = 0
        for batch in loader:
            X, y = self.prepare_batch(batch)
            with self._autocast():
                logits = model(X)
            loss_sum += model.loss(logits.float(), y, averaged=False).sum()
            correct += (logits.argmax(1) == y).sum()
            total += len(y)
            self.val_batch_idx += 1
        model.train(was_training)
        return (loss_sum / total).item(), (correct.float() / total).item()

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, path, model=None):
        """Weights, hparams, class names, history, optimizer: all loadable weights-only."""
        model = model if model is not None else self.model
        data = getattr(self, "data", None)
        images = getattr(getattr(data, "train", None), "images", None)
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "model_class": _model_class_name(model),
            "hparams": _plain({k: v for k, v in model.hparams.items()}),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "class_names": list(getattr(data, "classes", None) or getattr(model, "class_names", None) or []),
            "input_size": list(images.shape[-2:]) if images is not None else None,
            "history": list(self.history),
            "optimizer": self.optim.state_dict() if self.optim is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "trainer": _plain({k: self.hparams[k] for k in ("max_epochs", "seed", "momentum",
                               "weight_decay", "schedule", "channels_last", "amp")}),
        }
        torch.save(ckpt, path)
        return path

    def restore(self, path, model):
        """Load weights into ``model`` and history/optimizer into this trainer, to resume.

        The next ``fit`` continues at epoch ``len(history) + 1``. Batches are reshuffled from
        the seed, so a resumed run is not bit-identical to one that never stopped.
        """
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["state_dict"])
        self.history = list(ckpt["history"])
        self._pending_state = ckpt
        model.class_names = ckpt.get("class_names")
        return model

    def _load_training_state(self, ckpt):
        if ckpt.get("optimizer") is not None:
            self.optim.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
