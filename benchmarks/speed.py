"""Training speed of ResNeXt18 on the CPU: stock d2l, d2l_ext, and a bare PyTorch loop.

    python benchmarks/speed.py [--batches 40] [--out results/speed.json]

Same model (ResNeXt18, 10 classes), same data (Fashion-MNIST at 32x32), batch 128, in
one process, one after the other. Rows:
  1. stock d2l end to end: d2l.FashionMNIST (PIL resize per image, 4 workers) + d2l.Trainer
  2. d2l.Trainer fed the pre-decoded tensors of d2l_ext (isolates the trainer)
  3. d2l_ext.Trainer on the same tensors (channels_last, no host sync per batch)
  4. a bare loop, contiguous;  5. a bare loop, channels_last
Validation is switched off in every row; images/s counts training images only, after
warm-up batches. Rows 2-5 are measured in --rounds interleaved rounds and the best round
is kept, so a slow moment of the machine does not land on one row only. A profile of the
bare channels_last loop says where the time goes.
"""
import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import warnings

import torch
from d2l import torch as d2l

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import d2l_ext  # noqa: E402
from d2l_ext.data import BatchLoader, DEBIAN_FASHION_MNIST  # noqa: E402

class Limited:
    """The first ``n`` batches of a loader, as a loader."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return self.n

    def __iter__(self):
        for i, b in enumerate(self.loader):
            if i == self.n:
                return
            yield b


class Fixed(d2l.DataModule):
    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def train_dataloader(self):
        return self.loader

    def val_dataloader(self):
        return None


def new_model():
    torch.manual_seed(0)
    model = d2l_ext.ResNeXt18(lr=0.05, num_classes=10)
    model(torch.zeros(2, 1, 32, 32))
    return model


def timed(fn, images):
    start = time.perf_counter()
    fn()
    return images / (time.perf_counter() - start)


def stock_trainer(loader, warm, n):
    model = new_model()
    with contextlib.redirect_stdout(io.StringIO()):     # d2l prints figure reprs
        d2l.Trainer(max_epochs=1).fit(model, Fixed(Limited(loader, warm)))
        return timed(lambda: d2l.Trainer(max_epochs=1).fit(model, Fixed(Limited(loader, n))),
                     n * 128)


def ext_trainer(loader, warm, n):
    model = new_model()
    d2l_ext.Trainer(max_epochs=1, progress="none").fit(model, Fixed(Limited(loader, warm)))
    trainer = d2l_ext.Trainer(max_epochs=1, progress="none")
    trainer.fit(model, Fixed(Limited(loader, n)))
    return n * 128 / trainer.history[0]["seconds"]


def bare_loop(loader, warm, n, channels_last):
    model = new_model()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    optim = torch.optim.SGD(model.parameters(), lr=0.05)

    def run(k):
        model.train()
        for X, y in Limited(loader, k):
            loss = torch.nn.functional.cross_entropy(model(X.contiguous(memory_format=fmt)), y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
    run(warm)
    return timed(lambda: run(n), n * 128), (model, optim, run)


def stock_dataset_root(tmp):
    raw = Path(tmp) / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in DEBIAN_FASHION_MNIST.glob("*.gz"):
        with gzip.open(f) as src, open(raw / f.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    (Path(tmp) / "work").mkdir()
    return Path(tmp) / "work"      # d2l's root is '../data' relative to the working directory


def flops_per_image(loader):
    from torch.utils.flop_counter import FlopCounterMode
    model = new_model()
    X, y = next(iter(loader))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(X), y).backward()
    return counter.get_total_flops() / len(X) / 1e9


def sgemm_gflops():
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9


def profile(run):
    from torch.profiler import profile as torch_profile, ProfilerActivity
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run(5)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def main():
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per row")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/speed.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = d2l_ext.FashionMNIST(batch_size=128, resize=32, root="data")
    loader = BatchLoader(data.train, 128, shuffle=True, seed=0)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(stock_dataset_root(tmp))
        try:
            stock = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
            stock_loader = stock.train_dataloader()
            rows["stock d2l: d2l.FashionMNIST + d2l.Trainer"] = stock_trainer(
                stock_loader, args.warmup, args.batches)
        finally:
            os.chdir(cwd)
    contenders = {
        "d2l.Trainer, pre-decoded tensors": lambda: stock_trainer(loader, args.warmup, args.batches),
        "d2l_ext.Trainer, pre-decoded tensors": lambda: ext_trainer(loader, args.warmup, args.batches),
        "bare loop, contiguous": lambda: bare_loop(loader, args.warmup, args.batches, False)[0],
        "bare loop, channels_last": lambda: bare_loop(loader, args.warmup, args.batches, True)[0],
    }
    for _ in range(args.rounds):
        for name, measure in contenders.items():
            rows[name] = max(rows.get(name, 0.0), measure())
    _, (_, _, run) = bare_loop(loader, 1, 1, True)
    gflop = flops_per_image(loader)
    peak = sgemm_gflops()
    ext = rows["d2l_ext.Trainer, pre-decoded tensors"]
    summary = {
        "images_per_s": rows,
        "d2l_ext / d2l.Trainer (same tensors)": ext / rows["d2l.Trainer, pre-decoded tensors"],
        "d2l_ext / bare channels_last": ext / rows["bare loop, channels_last"],
        "d2l_ext / stock d2l end to end": ext / rows["stock d2l: d2l.FashionMNIST + d2l.Trainer"],
        "gflop_per_train_image": gflop, "sgemm_gflops": peak,
        "d2l_ext fraction of sgemm limit": ext * gflop / peak,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "batches": args.batches, "rounds": args.rounds, "batch_size": 128, "command": "python benchmarks/speed.py",
    }
    print(f"{'row':45s} images/s")
    for k, v in rows.items():
        print(f"{k:45s} {v:8.0f}")
    for k, v in summary.items():
        if k != "images_per_s":
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    table = profile(run)
    print(table)
    summary["profile"] = table
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
