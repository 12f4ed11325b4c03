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
import itertools
import math
import time
import warnings

import torch
from d2l import torch as d2l

from . import distributed, models
from .checkpoints import (atomic_save, check_fits, checkpoint_dict, describe_saved,
                          load_checkpoint, load_weights)
from .data import TensorDataModule
from .progress import in_notebook, NotebookProgress, TerminalProgress, SilentProgress

__all__ = ["Trainer", "resolve_device", "recompute_bn_statistics", "BatchTooSmallError",
           "clamp_warmup"]

class BatchTooSmallError(ValueError):
    """A training batch batch norm cannot train on (one image reaching a 1x1 map)."""


def clamp_warmup(warmup, epochs):
    """The warm-up a run of ``epochs`` epochs gets from a recipe's ``warmup``: at most
    ``epochs - 1``, so that a short run (``train --epochs 2``, ``ablate ... --epochs 3``)
    still has an epoch at the full rate instead of failing. ``train`` and ``ablate`` both
    use it, so the same short run means the same schedule in both."""
    return max(0, min(int(warmup), int(epochs) - 1))

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


class Trainer(d2l.Trainer):
    """Used as d2l's: ``Trainer(max_epochs=10).fit(model, data)``; see the module docstring.

    Args:
        max_epochs: epochs each ``fit`` trains.
        num_gpus, gradient_clip_val: as in d2l (``num_gpus > 0`` asks for CUDA).
        device: 'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ... (``resolve_device``).
        channels_last: NHWC memory for the convolutions (about 1.3x on a CPU).
        amp: True: bf16 autocast on CUDA, fp32 on the CPU; 'bf16': on the CPU too (faster
            only with native bf16, AVX512-BF16 or AMX); False: fp32 everywhere.
        seed: initialization, batch order and dropout (same seed, same curve on the CPU).
        momentum, weight_decay: either one set: SGD with Nesterov momentum and weight decay;
            both 0: the model's own ``configure_optimizers``, as in d2l.
        schedule: 'cosine' or None, applied to whichever optimizer (``lr_factor``).
        warmup: epochs of linear warm-up before the schedule, in [0, max_epochs).
        recompute_bn: batch norm statistics recomputed before each evaluation
            (``recompute_bn_statistics``).
        progress: 'auto', 'notebook' (the live board), 'terminal' (tqdm) or 'none'.
        points_per_epoch: how often the training loss is read back and drawn.
        checkpoint: a path written (atomically) after every finished epoch.
        sync_bn: data-parallel runs only: ``SyncBatchNorm`` (GPUs only in torch).

    Data-parallel (started by ``torchrun``, whose ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` it
    finds): ``fit`` sets up the process group, materializes the lazy layers, then wraps the
    model in ``DistributedDataParallel``. The data's ``batch_size`` is the *global* batch:
    each of the N processes trains on its share of every step of the single-process epoch
    (``distributed.epoch_shares``). Batch norm normalizes with each process's share by
    default, as torchvision's reference recipes do: no communication per layer. Recomputed
    statistics are averaged and evaluation sums added over the processes, so every process
    holds the same model and numbers; only rank 0 draws, prints and writes the checkpoint
    (the unwrapped model's weights: it resumes with any number of processes).

    As in d2l, each ``fit`` trains ``max_epochs`` epochs from a fresh optimizer; to go on
    from a checkpoint, call ``restore`` first. ``fit`` reports on the data's ``val`` split;
    ``test`` reads the test split once, when the run is over. A run that diverges ends with
    a ``FloatingPointError`` naming the epoch (a training loss not finite or above
    ``max_train_loss``, a validation loss or accuracy not finite); the checkpoint keeps the
    last finite epoch. ``before_checkpoint_replace`` (a callable, or None) runs between a
    checkpoint's temporary file and its rename: the command line removes another run's
    ``curves.png`` there, so that the two files never disagree.
    """

    #: A mean training loss above this ends the run as diverged. Cross-entropy starts near
    #: ln(classes) (1.6 for 5, 2.3 for 10); the deep nets' first epochs without warm-up
    #: reached 6-7 and recovered (recipes.py); at 1000 the right class gets probability
    #: e^-1000 on average: the weights have blown up (``--momentum 5`` reached 3.7e17,
    #: then nan). An instance may set its own.
    max_train_loss = 1e3

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0, device="auto",
                 channels_last=True, amp=True, seed=None, momentum=0.0, weight_decay=0.0,
                 schedule=None, warmup=0, recompute_bn=True, progress="auto",
                 points_per_epoch=2, checkpoint=None, sync_bn=False):
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
        self.device = distributed.rank_device(resolve_device(device, num_gpus))
        if sync_bn and distributed.world_size() > 1 and self.device.type != "cuda":
            raise ValueError("sync_bn=True needs a GPU per process (torch's SyncBatchNorm runs "
                             "on CUDA only): on the CPU batch norm stays per process")
        if amp == "bf16" and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            warnings.warn("amp='bf16' on a CPU without native bf16 (AVX512-BF16 or AMX): "
                          "training will be slower than in fp32", stacklevel=2)
        # d2l.Trainer's own attributes, kept with d2l's meaning for code written against it
        # (d2l's prepare_model/prepare_batch read gpus; its fit_epoch counts the batches).
        self.gpus = [self.device] if self.device.type == "cuda" else []
        self.train_batch_idx = self.val_batch_idx = 0
        self.history, self.interrupted = [], False
        self.optim = None
        self._pending_state = None
        self.before_checkpoint_replace = None
        self.ddp, self._owns_group = None, False

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

    @staticmethod
    def check_model(model):
        """A ``TypeError`` for a model this loop would train wrongly without a word.

        The loop computes ``model.loss(model(X), y)`` itself and evaluates with
        ``model.loss(..., averaged=False)`` (d2l's ``training_step`` would call ``plot``, a
        host sync every batch): it trains a ``d2l.Classifier`` or a model with the same
        ``loss``, and it cannot honour a ``training_step`` or ``validation_step`` of the
        model's own, so such a model is refused rather than trained as if it had none."""
        if not callable(getattr(model, "loss", None)):
            raise TypeError(f"{type(model).__name__} has no loss(y_hat, y): Trainer trains "
                            f"d2l.Classifier models (or models with the same loss method)")
        for name in ("training_step", "validation_step"):
            own = getattr(type(model), name, None)
            if own is not None and own not in (getattr(d2l.Module, name),
                                               getattr(d2l.Classifier, name)):
                raise TypeError(f"{type(model).__name__} defines its own {name}, which "
                                f"d2l_ext.Trainer does not call (it computes "
                                f"model.loss(model(X), y) itself): move that logic into loss() "
                                f"or forward(), or train it with d2l.Trainer")

    def prepare_model(self, model):
        self.check_model(model)
        model.trainer = self
        if self.device.type == "cuda":     # fixed batch shapes: let cuDNN pick its fastest
            torch.backends.cudnn.benchmark = True   # kernels (grouped convs vary most)
        self.model = model.to(self.device)
        # Lazy layers get their sizes (and their initialization) before the memory format
        # is chosen and the optimizer is made.
        X, y = self.prepare_batch(next(iter(self.train_dataloader)))
        models.materialize(model, X)
        self._check_outputs(model, getattr(self, "data", None), X, y)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if distributed.world_size() > 1:
            self._wrap(model)

    def _wrap(self, model):
        """``DistributedDataParallel`` around the materialized model (DDP refuses lazy
        parameters; building it copies rank 0's weights to every process). Ranks other
        than 0 then draw dropout from a stream of their own, so that two shares of a step
        do not get the same masks."""
        if self.sync_bn:
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)   # in place: a classifier's root is no BN
        cuda = self.device.type == "cuda"
        self.ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device] if cuda else None)
        if self.seed is not None and distributed.rank() > 0:
            torch.manual_seed((self.seed * 1_000_003 + distributed.rank()) % 2 ** 63)

    @torch.no_grad()
    def _check_outputs(self, model, data, X, y):
        """A ``ValueError`` naming both numbers when the model's outputs and the data's
        classes differ. Why: 10 outputs on 5-class data train without a word (5 never-seen
        classes to predict), 3 outputs end in torch's 'Target 3 is out of bounds'."""
        was_training = model.training
        model.eval()
        with self.autocast():
            outputs = model(X[:1]).shape[-1]
        model.train(was_training)
        classes = getattr(data, "num_classes", None)
        if classes is not None and outputs != classes:
            names = getattr(data, "classes", None)
            raise ValueError(f"the model has {outputs} outputs (num_classes={outputs}) but "
                             f"the data has {classes} classes"
                             + (f" ({', '.join(map(str, names))})" if names else "")
                             + f": build the model with num_classes={classes}")
        top = int(y.max()) if len(y) else -1
        if classes is None and top >= outputs:
            raise ValueError(f"the model has {outputs} outputs (num_classes={outputs}) but "
                             f"the data has a label {top}: it needs num_classes > {top}")

    def configure_optimizers(self, model):
        """The optimizer: the model's own, as in d2l, unless ``momentum`` or ``weight_decay``
        is set, which asks for SGD with (Nesterov) momentum and weight decay. The warm-up and
        schedule apply to either: no scheduler object, the learning rate of each epoch is
        ``lr_factor(epoch)`` times each parameter group's base lr, set before the epoch, so
        a resumed run follows the new ``max_epochs`` exactly."""
        if self.momentum == 0 and self.weight_decay == 0:
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

    def autocast(self):
        """The context training and evaluation run under: bf16 autocast where ``bf16`` says,
        a no-op otherwise (``evaluation`` uses it for a model this Trainer trained)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _progress(self, model):
        kind = self.progress if distributed.is_main() else "none"
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
        self._owns_group = distributed.init(self.device) or self._owns_group
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
        if distributed.world_size() > 1:
            self._prepare_shards(data)
        elif not isinstance(data, TensorDataModule):      # a stock d2l data module
            self.train_dataloader, self.val_dataloader = (data.train_dataloader(),
                                                          data.val_dataloader())
        else:       # batches made where the model runs (BatchLoader, device_data.py)
            self.train_dataloader = data.train_dataloader(shuffle_seed=self.seed,
                                                          device=self.device)
            self.val_dataloader = data.get_dataloader(False, device=self.device)
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    def _shard(self):
        """``(rank, world_size)`` for the loaders of a data-parallel run, None otherwise."""
        world = distributed.world_size()
        return (distributed.rank(), world) if world > 1 else None

    def _prepare_shards(self, data):
        """Loaders yielding this process's share (``BatchLoader(shard=...)``), made on this
        process's device."""
        world = distributed.world_size()
        if not isinstance(data, TensorDataModule):
            raise ValueError(f"data-parallel training needs a d2l_ext data module (FashionMNIST, "
                             f"FashionMNIST5, ImageFolderData), not {type(data).__name__}: "
                             f"each process must read its own share")
        distributed.check_batch(data.batch_size, world)
        self.train_dataloader = data.train_dataloader(shuffle_seed=self.seed, shard=self._shard(),
                                                      device=self.device)
        self.val_dataloader = data.get_dataloader(False, shard=self._shard(), device=self.device)

    def close(self):
        """Tear down the process group this Trainer set up (a no-op otherwise); the
        program's exit does it too."""
        if self._owns_group:
            distributed.teardown()
            self._owns_group, self.ddp = False, None

    # -- the loop ----------------------------------------------------------------------
    def fit(self, model, data):
        """Train ``max_epochs`` epochs (after ``restore``: the epochs still to go); returns
        None, as d2l's. Ctrl-C stops at once and keeps every finished epoch; what it says
        the checkpoint holds is read from the file (a Ctrl-C during its write leaves the
        previous one)."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
        self.setup(model, data)
        self.interrupted = False
        self.train_batch_idx = self.val_batch_idx = 0
        self.board = self._progress(model)
        self.epoch = len(self.history)
        try:
            for self.epoch in range(len(self.history), self.max_epochs):
                row = self.fit_epoch()
                self.history.append(row)   # weights and history agree from here on
                self.board.epoch_done(row)
                if self.checkpoint and distributed.is_main():
                    self.save_checkpoint(self.checkpoint)
        except KeyboardInterrupt:
            self.interrupted = True
            if not distributed.is_main():
                pass        # rank 0 says where the run stopped
            elif self.checkpoint:
                print(f"\ninterrupted: stopped in epoch {self.epoch + 1}; "
                      f"{describe_saved(self.checkpoint, self.history)}", flush=True)
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
                total, seen_all = self._train_sums(loss_sum, seen)
                self._check_train_loss(total, (total - drawn_sum) / (seen_all - drawn_seen), lr)
                self.board.train_point(self.epoch + i / n_batches,
                                       (total - drawn_sum) / (seen_all - drawn_seen))
                drawn_sum, drawn_seen = total, seen_all
        if self.recompute_bn:
            recompute_bn_statistics(model, self.train_dataloader, self.prepare_batch,
                                    self.autocast)
            if self.ddp is not None:    # each process computed them on its share: one set
                distributed.average_(_bn_buffers(model))
        val_loss, val_acc = self.evaluate(model, self.val_dataloader)
        if self.ddp is None:
            train_loss = (loss_sum / seen).item()
        else:
            total, seen_all = self._train_sums(loss_sum, seen)
            train_loss = total / seen_all
        row = {"epoch": self.epoch + 1, "train_loss": train_loss,
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
               "seconds": time.perf_counter() - start}
        self._check_train_loss(row["train_loss"], row["train_loss"], lr)
        if self.val_dataloader is not None:
            for key, name in (("val_loss", "validation loss"), ("val_acc", "validation accuracy")):
                if not math.isfinite(row[key]):
                    raise FloatingPointError(
                        f"{name} became {row[key]} in epoch {self.epoch + 1} (lr {lr:g}): the "
                        f"run diverged (the learning rate is probably too high); nothing of "
                        f"this epoch is kept")
        return row

    def _train_sums(self, loss_sum, seen):
        """(summed training loss, images) so far in this epoch, over every process: the
        divergence check and the curve then agree on every rank."""
        if self.ddp is None:
            return loss_sum.item(), seen
        sums = distributed.sum_all([loss_sum, seen], loss_sum.device)
        return sums[0].item(), int(sums[1].item())

    def _check_train_loss(self, total, mean, lr):
        """A ``FloatingPointError`` when the training loss is not finite or above
        ``max_train_loss``: a diverged run ends, instead of training on to a nan model."""
        if not math.isfinite(total):
            raise FloatingPointError(
                f"training loss became {total} in epoch {self.epoch + 1} (lr {lr:g}): "
                f"the learning rate is probably too high; nothing of this epoch is kept")
        if mean > self.max_train_loss:
            raise FloatingPointError(
                f"training loss reached {mean:.3g} in epoch {self.epoch + 1} (lr {lr:g}), "
                f"above the bound {self.max_train_loss:g} (Trainer.max_train_loss): the run "
                f"diverged (the learning rate or momentum is probably too high); nothing of "
                f"this epoch is kept")

    def test(self, model=None, data=None):
        """Loss and accuracy on the test split, ``{"test_loss", "test_acc"}``: read this once,
        when every choice is made (an accuracy read every epoch and chosen by is a
        validation accuracy, however it is named)."""
        model = model if model is not None else getattr(self, "model", None)
        data = data if data is not None else getattr(self, "data", None)
        if model is None or data is None:
            raise RuntimeError("Trainer.test() has no model or data yet: call fit(model, data) "
                               "first, or pass them: test(model, data)")
        if self._shard() is not None and isinstance(data, TensorDataModule):
            loader = data.test_dataloader(shard=self._shard())    # sums added in evaluate
        else:
            loader = data.test_dataloader() if hasattr(data, "test_dataloader") else None
        if loader is None:
            raise ValueError(f"{type(data).__name__} has no test split")
        first = next(iter(loader), None)
        if first is not None:
            X, y = self.prepare_batch(first)
            self._check_outputs(model, data, X, y)
        loss, acc = self.evaluate(model, loader)
        return {"test_loss": loss, "test_acc": acc}

    def train_step(self, batch):
        """One SGD step on one batch: (the batch's mean loss, still on the device; its size)."""
        model = self.model
        net = self.ddp if self.ddp is not None else model   # DDP adds the gradients up
        X, y = self.prepare_batch(batch)
        try:
            with self.autocast():
                loss = model.loss(net(X), y)
        except ValueError as e:
            if "Expected more than 1 value per channel" not in str(e):
                raise
            raise BatchTooSmallError(
                f"a training batch of {len(y)} image(s) reaches a 1x1 feature map, where batch "
                f"norm cannot train on one value per channel: use a batch size of 2 or more, "
                f"or larger images (resize)") from None
        self.optim.zero_grad(set_to_none=True)
        if self.ddp is not None and getattr(self.train_dataloader, "step_images", None):
            # DDP averages the processes' gradients; an uneven last step weights each share
            # by its size, so the gradient is the whole step's mean (distributed.share_weight)
            (loss * distributed.share_weight(len(y), self.train_dataloader.step_images,
                                             distributed.world_size())).backward()
        else:
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
            with self.autocast():
                logits = model(X)
            loss_sum += model.loss(logits.float(), y, averaged=False).sum()
            correct += (logits.argmax(1) == y).sum()
            total += len(y)
            self.val_batch_idx += 1
        model.train(was_training)
        if distributed.active():    # each process evaluated its share: add the sums up
            sums = distributed.sum_all([loss_sum, correct, total], loss_sum.device)
            loss_sum, correct, total = sums[0], sums[1], int(sums[2].item())
        if total == 0:      # not a nan accuracy: an empty split is a mistake to name
            raise ValueError("the loader to evaluate on yielded no images (an empty split)")
        return (loss_sum / total).item(), (correct.float() / total).item()

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, path, model=None):
        """Weights, hparams, class names, history, optimizer: all loadable weights-only,
        with a digest of the weights (``state_digest``) that ``load_checkpoint`` checks."""
        model = model if model is not None else getattr(self, "model", None)
        if model is None:
            raise RuntimeError("save_checkpoint has no model to save: call fit first, or pass "
                               "it: save_checkpoint(path, model)")
        if any(isinstance(p, torch.nn.parameter.UninitializedParameter)
               for p in model.parameters()):
            raise RuntimeError(f"{type(model).__name__} still has lazy (unsized) layers: run "
                               f"one batch through it, or fit it, before saving it")
        trainer = {k: self.hparams[k] for k in ("max_epochs", "seed", "momentum",
                                                "weight_decay", "schedule", "warmup",
                                                "channels_last", "amp")}
        ckpt = checkpoint_dict(model, getattr(self, "data", None), self.history,
                               self.optim.state_dict() if self.optim is not None else None,
                               trainer)
        atomic_save(ckpt, path, before_replace=self.before_checkpoint_replace)
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
        check_fits(model, ckpt, path)
        load_weights(model, ckpt, path)
        self.history = list(ckpt["history"])
        self._pending_state = ckpt
        model.class_names = ckpt.get("class_names")
        return model



def _bn_buffers(model):
    """The running means and variances of ``model``'s batch norm layers."""
    return [buf for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats for buf in (m.running_mean, m.running_var)]


@torch.no_grad()
def recompute_bn_statistics(model, loader, prepare_batch=lambda b: b, autocast=None,
                            max_batches=50):
    """Replace batch norm's running mean and variance by their average over ``loader``.

    Why: in training mode batch norm normalizes with each batch's own statistics, while
    evaluation uses ``running_mean``/``running_var``, an exponential average (momentum 0.1)
    of past batches, taken while the weights were changing. With 16 steps an epoch (500
    images, batch 32) that average still mixes in the random initial weights after the first
    epoch, and the validation loss can be orders of magnitude off (notebook 4, §4.3, measures
    it). This pass runs
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
