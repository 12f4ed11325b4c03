"""Data parallelism on ``torch.distributed``: the process group and the shard arithmetic.

``torchrun --nproc-per-node N -m d2l_ext train ...`` starts N copies of the program with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and a rendezvous address) in their environment;
this module reads them, sets up the process group (``nccl`` when every process on a node
has its own GPU, ``gloo`` otherwise) with a stated timeout, and says which images each
process trains on. The Trainer (``training.py``) uses it; without torchrun's environment
every function here answers as a single process would, so nothing changes.

The shares: every process draws the same seeded permutation of the training set each epoch
(the same generator, seeded alike, advanced alike: what ``DistributedSampler.set_epoch``
achieves with ``seed + epoch``), cuts it into the single-process run's steps of the *global*
batch, and takes every N-th image of each step, starting at its rank. So the N shares of a
step are disjoint, their union is exactly the single-process step, and the steps, in order,
are exactly the single-process epoch.
"""
import atexit
import datetime
import os
import re
import warnings

import torch
import torch.distributed as dist

__all__ = ["ENV_VARS", "DEFAULT_TIMEOUT_S", "launched", "env_ranks", "timeout", "rank",
           "world_size", "is_main", "active", "backend_for", "rank_device", "init",
           "teardown", "barrier", "sum_all", "average_", "check_batch", "step_bounds",
           "share", "epoch_shares", "eval_share", "share_weight", "is_peer_failure", "failure_reason"]

#: What torchrun puts in each process's environment (with MASTER_ADDR and MASTER_PORT).
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: How long a process waits in a collective (an all-reduce, a barrier) for the others
#: before it gives up with an error: torch's own default is 30 minutes. 5 minutes is far
#: above any wait of a sound run here (rank 0 writing a checkpoint and drawing the curves
#: while the others wait takes seconds), and bounds how long a hung peer holds the rest.
#: ``D2L_EXT_DDP_TIMEOUT`` (seconds) overrides it. A peer that *dies* is noticed at once:
#: its sockets close, and torchrun stops the remaining processes itself.
DEFAULT_TIMEOUT_S = 300


# -- the environment and the process group ----------------------------------------------
def launched():
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(os.environ.get(name) for name in ENV_VARS)


def env_ranks():
    """``(rank, world_size, local_rank)`` from the environment; ``(0, 1, 0)`` outside
    torchrun. A variable that is not a fitting integer is a ``ValueError`` naming it."""
    if not launched():
        return 0, 1, 0
    values = {}
    for name in ENV_VARS:
        text = os.environ[name]
        if not text.isdigit():
            raise ValueError(f"{name}={text!r} is not a non-negative integer: start the "
                             f"program with torchrun, which sets {', '.join(ENV_VARS)}")
        values[name] = int(text)
    rank_, world, local = (values[name] for name in ENV_VARS)
    if world < 1 or rank_ >= world:
        raise ValueError(f"RANK={rank_} does not fit WORLD_SIZE={world}: start the program "
                         f"with torchrun")
    return rank_, world, local


def timeout():
    """The process group's timeout (``DEFAULT_TIMEOUT_S``, or ``D2L_EXT_DDP_TIMEOUT``)."""
    text = os.environ.get("D2L_EXT_DDP_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"D2L_EXT_DDP_TIMEOUT={text!r} must be a number of seconds > 0")
    return datetime.timedelta(seconds=seconds)


def active():
    """Whether a process group of more than one process is set up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    """This process's rank: the group's when one is set up, else the environment's."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else env_ranks()[0]


def world_size():
    """How many processes train together (1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return env_ranks()[1]


def is_main():
    """Whether this is rank 0, the one process that prints, draws and writes files."""
    return rank() == 0


def backend_for(device):
    """``nccl`` for CUDA devices (the GPUs talk directly), ``gloo`` for the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def rank_device(device):
    """The device this process trains on. Outside torchrun: ``device`` unchanged. Under it,
    a CUDA device becomes ``cuda:LOCAL_RANK`` when every process of this node has a GPU of
    its own (``LOCAL_WORLD_SIZE`` GPUs or more); otherwise every process trains on the CPU
    (one backend for all: a group cannot mix nccl and gloo), and that is said once."""
    device = torch.device(device)
    if not launched() or device.type != "cuda":
        return device
    _, world, local = env_ranks()
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE") or world)
    if torch.cuda.device_count() >= per_node:
        return torch.device("cuda", local)
    if local == 0:
        warnings.warn(f"{per_node} processes on this machine but {torch.cuda.device_count()} "
                      f"GPU(s): every process trains on the CPU (gloo)", stacklevel=2)
    return torch.device("cpu")


def init(device):
    """Set up the default process group for torchrun's environment, on ``device``'s backend
    and with ``timeout()``; True if this call set it up (whoever did tears it down), False
    when not launched or already set up. It is also torn down when the program exits, so
    that no process leaves its peers waiting on a group it forgot."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return False
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), timeout=timeout(),
                            device_id=device if device.type == "cuda" else None)
    atexit.register(teardown)
    return True


def teardown():
    """Destroy the default process group, if there is one (safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier():
    """Wait until every process got here (no-op for a single process)."""
    if active():
        dist.barrier()


def sum_all(values, device="cpu"):
    """The sums over every process of ``values`` (numbers or 0-d tensors), as one float64
    tensor on ``device``: exact for counts (below 2**53) and a loss summed in float64. A
    single process gets its own values back. Why sums and counts, not means: a mean of the
    processes' means is wrong when their shares differ in size (the last batch, a split
    that does not divide), a sum over all divided by a count over all is not."""
    out = torch.stack([torch.as_tensor(v, dtype=torch.float64).to(device).reshape(())
                       for v in values])
    if active():
        dist.all_reduce(out)
    return out


def average_(tensors):
    """Replace each tensor by its mean over the processes, in place (batch norm's running
    statistics after each process recomputed them on its own share)."""
    if not active():
        return
    for t in tensors:
        dist.all_reduce(t)
        t.div_(dist.get_world_size())


def is_peer_failure(error):
    """Whether ``error`` is a collective that failed because another process is gone or
    hung (closed connection, timeout): a consequence to report, not a cause."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("gloo", "nccl", "connection closed", "connection reset",
                                  "timed out", "broken pipe"))


def failure_reason(error):
    """``error``'s message in one short clause: gloo's ``[.../pair.cc:545] Read error
    [127.0.0.1]:16278: Connection reset by peer. This is typically caused by ...`` becomes
    ``Read error [127.0.0.1]:16278: Connection reset by peer``."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(error).split()))
    return text.split(". This is typically")[0][:160] or type(error).__name__


# -- the shard arithmetic (pure: no process group needed) -------------------------------
def check_batch(batch_size, world_size_):
    """A ``ValueError`` naming both numbers unless the global batch divides among the
    processes. Why refuse instead of rounding: a recipe's batch size is the one thing that
    must mean the same with 1 or N processes (it sets the learning rate's scale)."""
    if batch_size % world_size_:
        raise ValueError(f"a global batch of {batch_size} images does not divide among "
                         f"{world_size_} processes: use a multiple of {world_size_} (each "
                         f"process takes batch size / {world_size_})")
    return batch_size // world_size_


def step_bounds(n, batch_size, world_size_=1):
    """(start, end) of each training step over an epoch of ``n`` images in steps of the
    global ``batch_size``. A last step too small to give every process 2 images joins the
    step before it; for one process that is a last batch of 1 image, as
    ``data.batch_bounds(merge_single=True)`` does (batch norm cannot train on one value
    per channel). ``n`` smaller than the number of processes is a ``ValueError``."""
    if n < world_size_:
        raise ValueError(f"{n} training image(s) cannot be shared among {world_size_} "
                         f"processes: each needs at least one")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2 * world_size_:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def share(indices, rank_, world_size_):
    """This process's share of one step: every ``world_size_``-th index from ``rank_`` on.
    Strided, as ``DistributedSampler`` deals them, so the shares of a step differ in size
    by at most one image."""
    return indices[rank_::world_size_]


def epoch_shares(order, batch_size, rank_, world_size_):
    """The index tensors this process trains on, step by step, in an epoch whose
    permutation is ``order`` (the same on every process)."""
    return [share(order[start:end], rank_, world_size_)
            for start, end in step_bounds(len(order), batch_size, world_size_)]


def eval_share(n, rank_, world_size_):
    """The indices of ``n`` evaluation images this process evaluates: a contiguous slice,
    the slices of all processes covering ``range(n)`` once (some may be empty when
    ``n < world_size_``; the sums over all processes are what count)."""
    return torch.tensor_split(torch.arange(n), world_size_)[rank_]


def share_weight(local, step_images, world_size_):
    """What this process's mean loss is multiplied by so that DDP's gradient, the *mean*
    over processes of their gradients, equals the gradient of the mean loss over the whole
    step: ``local * world_size_ / step_images``. 1 when the shares are equal (every step
    but an uneven last one)."""
    return local * world_size_ / step_images
