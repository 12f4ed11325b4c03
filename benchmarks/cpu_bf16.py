"""bf16 autocast on the CPU: training images/s of ``d2l_ext.Trainer`` in fp32 and in bf16.

    python benchmarks/cpu_bf16.py [--sizes 28 48 96] [--batches 10] [--rounds 3]
                                  [--out results/cpu_bf16.json]

``Trainer(amp="bf16")`` (``train --bf16``) autocasts to bf16 on the CPU as well as on CUDA.
On a CPU with native bf16 (AVX512-BF16 or AMX) oneDNN's bf16 convolutions run at about twice
the fp32 rate; without it they are emulated and slower, so it is not the default. How much a
whole training step gains depends on the input size: the convolutions' share of a step
grows with the image, while the data, the optimizer and the dropout masks stay the same.

ResNeXt18 (10 classes) on full Fashion-MNIST, batch 128, no augmentation, SGD with Nesterov
momentum and weight decay: ``Trainer.train_step``, with each batch taken from the loader
inside the timing. fp32 and bf16 alternate within each round, so a slow moment of a shared
machine does not land on one of them only; the best of the rounds is kept.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from d2l_ext import FashionMNIST                                    # noqa: E402
from d2l_ext.experiments import seconds_per_batch                   # noqa: E402
from d2l_ext.recipes import RECIPES, build_run                      # noqa: E402
from d2l_ext.training import cpu_has_native_bf16                    # noqa: E402

BATCH = 128


def ready_trainer(data, amp):
    """A Trainer of the 10-minute CPU recipe (``build_run``) at the data's size, set up
    (model built, optimizer made), ready for ``train_step``."""
    recipe = dict(RECIPES["full-cpu10min"], resize=data.train.images.shape[-1], amp=amp)
    _, model, trainer = build_run(recipe, {"model": "resnext"}, data, device="cpu", seed=0,
                                  progress="none")
    trainer.setup(model, data)
    return trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 48, 96])
    parser.add_argument("--batches", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", default="data")
    parser.add_argument("--out", default="results/cpu_bf16.json")
    args = parser.parse_args()
    native = cpu_has_native_bf16()
    print(f"native bf16 on this CPU: {native}; {torch.get_num_threads()} threads", flush=True)
    rows = []
    for size in args.sizes:
        data = FashionMNIST(batch_size=BATCH, resize=size, root=args.root)
        trainers = {"fp32": ready_trainer(data, False), "bf16": ready_trainer(data, "bf16")}
        best = {"fp32": 0.0, "bf16": 0.0}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                s = seconds_per_batch(trainer.train_step, trainer.train_dataloader,
                                      args.batches, args.warmup, trainer.device)
                best[name] = max(best[name], BATCH / s)
        rows.append({"size": size, "fp32_img_s": best["fp32"], "bf16_img_s": best["bf16"],
                     "speedup": best["bf16"] / best["fp32"]})
        print(f"{size:3d}x{size:<3d} fp32 {best['fp32']:6.0f} img/s   bf16 {best['bf16']:6.0f} "
              f"img/s   x{best['bf16'] / best['fp32']:.2f}", flush=True)
    result = {"rows": rows, "native_bf16": native, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "batch_size": BATCH, "batches": args.batches,
              "rounds": args.rounds, "command": "python benchmarks/cpu_bf16.py"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
