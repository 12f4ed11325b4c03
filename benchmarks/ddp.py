"""Data-parallel scaling: training images/s with 1 and 2 processes (DDP, torchrun).

    python benchmarks/ddp.py [--model resnext] [--steps 30] [--out results/ddp.json]

Run it on an idle machine: every process runs one thread pinned to a core of its own, so a
core busy with anything else makes the numbers meaningless. For each process count N the
same global batch (``--batch-size``, default 64: each of 2 processes gets the 5-class
recipe's 32) is trained for ``--steps`` steps after ``--warmup`` steps,
through ``d2l_ext.Trainer`` exactly as ``torchrun -m d2l_ext train`` runs it (sharded loader,
DDP all-reduce of the gradients). Scaling efficiency = images/s with N processes / (N x
images/s with 1). On the CPU the backend is gloo; on a machine with 2 or more GPUs the
same runs use nccl, one GPU per process (with a single GPU only 1 process is measured, and
the file says so).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnext", choices=["resnext", "baseline", "resnet18"])
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--resize", type=int, default=32)
    p.add_argument("--steps", type=int, default=30, help="timed steps per process count")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--root", default="data")
    p.add_argument("--out", default="results/ddp.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)   # a result file
    return p.parse_args(argv)


def worker(args):
    """One process of a torchrun run: pin to the core of its local rank, train, time."""
    import torch
    from d2l_ext import distributed
    from d2l_ext.recipes import RECIPES, build_run
    torch.set_num_threads(1)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[local % len(cores)]})
    recipe = dict(RECIPES["5class"], batch_size=args.batch_size, resize=args.resize)
    data, model, trainer = build_run(recipe, {"model": args.model}, root=args.root, seed=0,
                                     progress="none", device="auto")
    trainer.setup(model, data)
    batches = iter(_forever(trainer.train_dataloader))
    for _ in range(args.warmup):
        trainer.train_step(next(batches))
    distributed.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss, _ = trainer.train_step(next(batches))
    loss.item()                 # the last step has finished (a GPU queues work)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    distributed.barrier()
    seconds = time.perf_counter() - start
    if distributed.is_main():
        Path(args.worker).write_text(json.dumps({
            "seconds": seconds, "device": str(trainer.device),
            "backend": distributed.backend_for(trainer.device) if distributed.active() else None,
            "processes": distributed.world_size()}))
    trainer.close()


def _forever(loader):
    while True:
        yield from loader


def measure(args, processes):
    """Images/s of a torchrun run with ``processes`` processes (one thread each)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--local-addr", "127.0.0.1", "--nproc-per-node", str(processes), __file__, "--worker", str(result),
               "--model", args.model, "--batch-size", str(args.batch_size),
               "--resize", str(args.resize), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--root", args.root]
        run = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                             capture_output=True, text=True)
        if run.returncode != 0 or not result.exists():
            sys.exit(f"error: the {processes}-process run failed: {run.stderr.strip()[-800:]}")
        row = json.loads(result.read_text())
    row["images_per_s"] = args.steps * args.batch_size / row["seconds"]
    return row


def main(argv=None):
    args = parse(argv)
    if args.worker:
        return worker(args)
    import torch
    bad = [n for n in args.processes if n < 1 or args.batch_size % n]
    if bad:
        sys.exit(f"error: --batch-size {args.batch_size} does not divide among {bad[0]} "
                 f"processes: use a multiple of {bad[0]}")
    gpus = torch.cuda.device_count()
    cores = len(os.sched_getaffinity(0))
    limit = gpus if gpus else cores
    counts = [n for n in args.processes if n <= limit]
    rows = {}
    for n in counts:
        rows[n] = measure(args, n)
        print(f"{n} process(es): {rows[n]['images_per_s']:.1f} images/s "
              f"({rows[n]['device']}, {rows[n]['backend'] or 'one process'})", flush=True)
    base = rows.get(1, {}).get("images_per_s")
    for n, row in rows.items():
        row["scaling_efficiency"] = row["images_per_s"] / (n * base) if base else None
    note = None
    if gpus == 1:
        note = "one GPU: only 1 process measured (DDP needs a GPU per process for nccl)"
    elif len(counts) < len(args.processes):
        note = f"{limit} {'GPUs' if gpus else 'cores'} here: process counts above it skipped"
    report = {"model": args.model, "global_batch": args.batch_size, "resize": args.resize,
              "steps": args.steps, "warmup_steps": args.warmup, "threads_per_process": 1,
              "cores": cores, "gpus": gpus, "torch": torch.__version__, "note": note,
              "runs": {str(n): row for n, row in rows.items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    efficiency = rows.get(2, {}).get("scaling_efficiency")
    print(f"wrote {out}" + (f" (2-process scaling efficiency {efficiency:.2f})"
                            if efficiency else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
