"""``d2l_ext.Trainer``: d2l's ``Trainer(max_epochs=...).fit(model, data)``, made fast and safe.

What ``d2l.Trainer`` 1.0.3 lacks, and this one adds: a device choice (CUDA when present,
said once when asked for but absent); ``channels_last`` memory (about 1.3x on this CPU);
bf16 autocast on CUDA; no host sync per batch (loss and accuracy are summed on the device
and read a bounded number of times per epoch, because d2l's ``plot`` calls ``.cpu()`` on
every batch); validation accuracy weighted over the whole set; a per-epoch ``history``;
a live board in notebooks and a tqdm bar in terminals; checkpoints that load with
``weights_only=True`` and resume; Ctrl-C that stops cleanly; seeded, repeatable runs.
"""
import contextlib
import hashlib
import itertools
import math
import os
import time
import warnings

import torch
from d2l import torch as d2l

from . import models
from .data import TensorDataModule
from .device_data import device_loader
from .progress import in_notebook, NotebookProgress, TerminalProgress, SilentProgress

__all__ = ["Trainer", "resolve_device", "load_checkpoint", "model_from_checkpoint",
           "recompute_bn_statistics", "atomic_save", "state_digest", "BatchTooSmallError"]

CHECKPOINT_FORMAT = 1


class BatchTooSmallError(ValueError):
    """A training batch batch norm cannot train on (one image reaching a 1x1 map)."""

_warned_no_gpu = False


def resolve_device(device=None, num_gpus=0):
    """'auto'/None: CUDA if present, else CPU. 'cuda' without a GPU: CPU, said once.

    A device torch does not know ('banana'), a GPU index this machine does not have
    ('cuda:9' with one GPU) or a backend torch cannot use here ('mps' on Linux) is a
    ``ValueError`` in one line, so a command line can check it before any work.
    """
    global _warned_no_gpu
    wanted = "cuda" if (device in (None, "auto") and num_gpus) else (device or "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        wanted = torch.device(wanted)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a device torch knows: use auto, cpu, "
                         f"cuda or cuda:N ({str(e).splitlines()[0][:80]})") from None
    if wanted.type == "cuda" and not torch.cuda.is_available():
        if not _warned_no_gpu:
            warnings.warn("a GPU was asked for but none is available: training on the CPU",
                          stacklevel=3)
            _warned_no_gpu = True
        return torch.device("cpu")
    if wanted.type == "cuda" and wanted.index is not None:
        count = torch.cuda.device_count()
        if wanted.index >= count:
            raise ValueError(f"device {wanted} does not exist: this machine has {count} GPU(s) "
                             f"(cuda:0 to cuda:{count - 1})")
    elif wanted.type == "meta":
        raise ValueError("device 'meta' holds no data and cannot train: use auto, cpu or cuda")
    elif wanted.type not in ("cpu", "cuda"):
        try:
            torch.empty(0, device=wanted)
        except Exception as e:      # mps on Linux, xpu without its build, ...
            raise ValueError(f"device {device!r} cannot be used here ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:100]})") from None
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
    ``warmup`` (epochs of linear learning-rate warm-up before the schedule),
    ``recompute_bn`` (see ``recompute_bn_statistics``), ``progress`` ('auto', 'notebook',
    'terminal', 'none'), ``points_per_epoch`` (how often the train loss is read back and
    drawn), ``checkpoint`` (a path written after every finished epoch).

    As in d2l, each ``fit`` trains ``max_epochs`` epochs from a fresh optimizer and
    schedule; to go on from a checkpoint, call ``restore`` first (the next ``fit`` then
    continues at the epoch after the checkpoint's last, on the schedule of this
    Trainer's ``max_epochs``). ``fit`` reports on the data's ``val`` split; ``test`` reads
    the test split, once, when the run is over.
    """

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0, device="auto",
                 channels_last=True, amp=True, seed=None, momentum=0.0, weight_decay=0.0,
                 schedule=None, warmup=0, recompute_bn=True, progress="auto",
                 points_per_epoch=2, checkpoint=None):
        self.save_hyperparameters()
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
        if schedule not in (None, "cosine"):
            raise ValueError(f"schedule must be None or 'cosine', got {schedule!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < max_epochs:
            raise ValueError(f"warmup must be an integer number of epochs in [0, max_epochs), "
                             f"got {warmup!r}")
        if amp not in (True, False, "bf16"):
            raise ValueError(f"amp must be True, False or 'bf16', got {amp!r}")
        self.device = resolve_device(device, num_gpus)
        if amp == "bf16" and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            warnings.warn("amp='bf16' on a CPU without native bf16 (AVX512-BF16 or AMX): "
                          "training will be slower than in fp32", stacklevel=2)
        self.gpus = [self.device] if self.device.type == "cuda" else []
        self.history, self.interrupted = [], False
        self.optim = None
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
        # Lazy layers get their sizes (and their initialization) before the memory format
        # is chosen and the optimizer is made.
        X, _ = self.prepare_batch(next(iter(self.train_dataloader)))
        models.materialize(model, X)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def configure_optimizers(self, model):
        """The optimizer (the model's own, as in d2l, when momentum, weight decay, schedule
        and warm-up are all off; else SGD with Nesterov momentum). No scheduler object: the
        learning rate of each epoch is ``lr_factor(epoch)`` times the optimizer's base lr,
        set before the epoch, so a resumed run follows the new ``max_epochs`` exactly."""
        if (self.momentum == 0 and self.weight_decay == 0 and self.schedule is None
                and self.warmup == 0):
            optim = model.configure_optimizers()
        else:
            optim = torch.optim.SGD(model.parameters(), lr=model.lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay, nesterov=self.momentum > 0)
        for group in optim.param_groups:
            group.setdefault("initial_lr", group["lr"])
        return optim

    def lr_factor(self, epoch):
        """The fraction of the base learning rate that epoch ``epoch`` (0-based) trains with.

        ``warmup`` epochs rise linearly (1/w, 2/w, ..., 1), then the cosine schedule runs
        over the remaining epochs, from 1 down to (not reaching) 0: no epoch trains at lr 0.
        """
        if epoch < self.warmup:
            return (epoch + 1) / self.warmup
        if self.schedule != "cosine":
            return 1.0
        done, total = epoch - self.warmup, self.max_epochs - self.warmup
        return 0.5 * (1 + math.cos(math.pi * done / total))

    def _set_lr(self, epoch):
        for group in self.optim.param_groups:
            group["lr"] = group["initial_lr"] * self.lr_factor(epoch)

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
        self.optim = self.configure_optimizers(model)
        if self._pending_state is not None:     # restore() was called: go on from there
            if self._pending_state.get("optimizer") is not None:
                self.optim.load_state_dict(self._pending_state["optimizer"])
            self._pending_state = None
        else:
            self.history = []
        model.train()

    def prepare_data(self, data):
        """d2l's, but the loaders are asked for with this Trainer's shuffling seed."""
        if not isinstance(data, TensorDataModule):      # a stock d2l data module
            self.train_dataloader, self.val_dataloader = (data.train_dataloader(),
                                                          data.val_dataloader())
        elif self.device.type == "cuda":
            # On a GPU, batches are cut and augmented where the model runs (device_data.py).
            self.train_dataloader = device_loader(data.train, data.batch_size, True, self.seed,
                                                  self.device)
            self.val_dataloader = device_loader(data.val, data.batch_size, False, None,
                                                self.device)
        else:
            self.train_dataloader = data.train_dataloader(shuffle_seed=self.seed)
            self.val_dataloader = data.val_dataloader()
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    # -- the loop ----------------------------------------------------------------------
    def fit(self, model, data):
        """Train ``max_epochs`` epochs (after ``restore``: the epochs still to go); returns
        None, as d2l's. Ctrl-C stops at once and keeps every finished epoch."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
        self.setup(model, data)
        self.interrupted = False
        self.train_batch_idx = self.val_batch_idx = 0
        self.board = self._progress(model)
        try:
            for self.epoch in range(len(self.history), self.max_epochs):
                row = self.fit_epoch()
                self.history.append(row)   # weights and history agree from here on
                self.board.epoch_done(row)
                if self.checkpoint:
                    self.save_checkpoint(self.checkpoint)
        except KeyboardInterrupt:
            self.interrupted = True
            if self.checkpoint:     # the last finished epoch's checkpoint is already on disk
                print(f"\ninterrupted: stopped in epoch {len(self.history) + 1}; "
                      f"{self.checkpoint} holds the {len(self.history)} finished epoch(s)",
                      flush=True)
            else:
                print(f"\ninterrupted: stopped after {len(self.history)} complete epoch(s); "
                      f"trainer.history keeps them, the model has the weights of the moment",
                      flush=True)
        finally:
            self.board.close()
            model.eval()

    def fit_epoch(self):
        start = time.perf_counter()
        model, n_batches = self.model, self.num_train_batches
        draw_at = {max(1, round(n_batches * (k + 1) / self.points_per_epoch))
                   for k in range(self.points_per_epoch)}
        self._set_lr(self.epoch)
        lr = self.optim.param_groups[0]["lr"]
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
                if not math.isfinite(total):
                    raise FloatingPointError(
                        f"training loss became {total} in epoch {self.epoch + 1} (lr {lr:g}): "
                        f"the learning rate is probably too high; nothing of this epoch is kept")
                self.board.train_point(self.epoch + i / n_batches,
                                       (total - drawn_sum) / (seen - drawn_seen))
                drawn_sum, drawn_seen = total, seen
        if self.recompute_bn:
            recompute_bn_statistics(model, self.train_dataloader, self.prepare_batch,
                                    self._autocast)
        val_loss, val_acc = self.evaluate(model, self.val_dataloader)
        return {"epoch": self.epoch + 1, "train_loss": (loss_sum / seen).item(),
                "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                "seconds": time.perf_counter() - start}

    def test(self, model=None, data=None):
        """Loss and accuracy on the test split, ``{"test_loss", "test_acc"}``: read this once,
        when every choice is made (an accuracy read every epoch and chosen by is a
        validation accuracy, however it is named)."""
        model = model if model is not None else self.model
        data = data if data is not None else self.data
        loader = data.test_dataloader() if hasattr(data, "test_dataloader") else None
        if loader is None:
            raise ValueError(f"{type(data).__name__} has no test split")
        loss, acc = self.evaluate(model, loader)
        return {"test_loss": loss, "test_acc": acc}

    def train_step(self, batch):
        """One SGD step on one batch: (the batch's mean loss, still on the device; its size)."""
        model = self.model
        X, y = self.prepare_batch(batch)
        try:
            with self._autocast():
                loss = model.loss(model(X), y)
        except ValueError as e:
            if "Expected more than 1 value per channel" not in str(e):
                raise
            raise BatchTooSmallError(
                f"a training batch of {len(y)} image(s) reaches a 1x1 feature map, where batch "
                f"norm cannot train on one value per channel: use a batch size of 2 or more, "
                f"or larger images (resize)") from None
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
        if total == 0:      # not a nan accuracy: an empty split is a mistake to name
            raise ValueError("the loader to evaluate on yielded no images (an empty split)")
        return (loss_sum / total).item(), (correct.float() / total).item()

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, path, model=None):
        """Weights, hparams, class names, history, optimizer: all loadable weights-only,
        with a digest of the weights (``state_digest``) that ``load_checkpoint`` checks."""
        model = model if model is not None else self.model
        data = getattr(self, "data", None)
        images = getattr(getattr(data, "train", None), "images", None)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "model_class": models.registered_class_name(model),
            "hparams": _plain({k: v for k, v in model.hparams.items()}),
            "state_dict": state,
            "state_digest": state_digest(state),
            "class_names": list(getattr(data, "classes", None) or getattr(model, "class_names", None) or []),
            "input_size": list(images.shape[-2:]) if images is not None else None,
            "history": list(self.history),
            "optimizer": self.optim.state_dict() if self.optim is not None else None,
            "trainer": _plain({k: self.hparams[k] for k in ("max_epochs", "seed", "momentum",
                               "weight_decay", "schedule", "warmup", "channels_last", "amp")}),
        }
        atomic_save(ckpt, path)
        return path

    def restore(self, path, model):
        """Load weights into ``model`` and history/optimizer into this trainer, to resume.

        The next ``fit`` continues at epoch ``len(history) + 1`` with the learning rate that
        this Trainer's schedule gives that epoch (so ``Trainer(max_epochs=40)`` after a
        30-epoch checkpoint re-plans the cosine over 40 epochs and trains epochs 31-40).
        Batches are reshuffled from the seed, so a resumed run is not bit-identical to one
        that never stopped.
        """
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["state_dict"])
        self.history = list(ckpt["history"])
        self._pending_state = ckpt
        model.class_names = ckpt.get("class_names")
        return model



def atomic_save(obj, path):
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash or Ctrl-C
    mid-write leaves the old file whole, never a truncated one."""
    path = str(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@torch.no_grad()
def recompute_bn_statistics(model, loader, prepare_batch=lambda b: b, autocast=None,
                            max_batches=50):
    """Replace batch norm's running mean and variance by their average over ``loader``.

    Why: in training mode batch norm normalizes with each batch's own statistics, while
    evaluation uses ``running_mean``/``running_var``, an exponential average (momentum 0.1)
    of past batches, taken while the weights were changing. With 16 steps an epoch (500
    images, batch 32) that average still mixes in the random initial weights after the first
    epoch: the 3-stage net's validation loss was 95 after one epoch, the 5-stage net's
    13,234, while the same weights with recomputed statistics gave 1.7-2.3. This pass runs
    up to ``max_batches`` training batches through the model with batch norm in training
    mode (every other layer, dropout included, in eval mode, as at test time), averaging the
    statistics with equal weights (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021,
    call it precise BN). It changes no weight, only the buffers evaluation reads.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return
    was_training = model.training
    model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None           # cumulative average: every batch counts the same
        m.train()
    try:
        for batch in itertools.islice(loader, max_batches):
            X, _ = prepare_batch(batch)
            with (autocast() if autocast else contextlib.nullcontext()):
                model(X)
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.train(was_training)
