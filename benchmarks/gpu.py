"""The Trainer's CUDA path, checked, and training speed on a GPU per input size.

    python benchmarks/gpu.py [--root data] [--out results/gpu.json]

CI has no GPU, so the CUDA branches of ``d2l_ext.training`` (bf16 autocast, channels_last
on the device, cuDNN autotuning, checkpoints written from GPU tensors) are checked here,
on a machine that has one:

1. ResNeXt18 trains on the 5-class task (``build_run`` with the ``5class`` recipe and
   ``train``'s learning rate, the main command's run) and its validation accuracy lands in
   the range of the CPU runs (results/baselines.md).
2. Its checkpoint loads on the CPU with ``model_from_checkpoint`` and predicts the same
   classes in float32 as the GPU model does under bf16 autocast.
3. ``Trainer.restore`` resumes that run on the GPU for 2 more epochs.
4. Images/s of a training epoch on full Fashion-MNIST at 32, 64 and 96 pixels (batch
   256, crop-flip-erase), which sized the ``full`` recipe.

Fails (exit 1) if a check fails; writes every number to ``--out``.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from d2l_ext import FashionMNIST                                  # noqa: E402
from d2l_ext.recipes import RECIPES, TRAIN_LR, build_run          # noqa: E402
from d2l_ext.models import build_model                            # noqa: E402
from d2l_ext import Trainer, model_from_checkpoint       # noqa: E402


def check_training(root, report):
    recipe, config = RECIPES["5class"], dict(model="resnext", lr=TRAIN_LR)
    ckpt = Path(tempfile.mkdtemp()) / "model.pt"
    data, model, trainer = build_run(recipe, config, root=root, device="cuda", seed=0,
                                     progress="none", checkpoint=ckpt)
    start = time.perf_counter()
    trainer.fit(model, data)
    acc = trainer.history[-1]["val_acc"]
    report["five_class"] = {"val_acc": acc, "seconds": time.perf_counter() - start,
                            "device": str(trainer.device),
                            "weights_on": str(next(model.parameters()).device),
                            "channels_last": next(p for p in model.parameters()
                                                  if p.dim() == 4).is_contiguous(
                                                      memory_format=torch.channels_last)}
    print("5-class on GPU:", report["five_class"], flush=True)
    assert trainer.device.type == "cuda" and report["five_class"]["weights_on"].startswith("cuda")
    assert 0.60 < acc < 0.80, f"5-class accuracy {acc:.3f} outside the CPU runs' range"

    X, y = data.val.normalize(data.val.images[:1000]), data.val.labels[:1000]
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        gpu_pred = model(trainer.prepare_batch((X, y))[0]).argmax(1).cpu()
    cpu_model = model_from_checkpoint(ckpt, map_location="cpu")
    with torch.no_grad():
        cpu_pred = cpu_model(X).argmax(1)
    agree = (gpu_pred == cpu_pred).float().mean().item()
    report["checkpoint_cpu_vs_gpu_bf16_agreement"] = agree
    print(f"checkpoint on CPU vs GPU bf16: {agree:.4f} of {len(X)} predictions agree", flush=True)
    assert agree > 0.97, agree

    _, resumed, more = build_run(dict(recipe, epochs=recipe["epochs"] + 2), config, data,
                                 device="cuda", seed=0, progress="none")
    more.restore(ckpt, resumed)
    more.fit(resumed, data)
    report["restore_epochs"] = [h["epoch"] for h in more.history][-3:]
    print("resumed epochs:", report["restore_epochs"], flush=True)
    assert len(more.history) == recipe["epochs"] + 2


def throughput(root, report, sizes=(32, 64, 96), batch_size=256, per_class=2000):
    report["throughput"] = []
    for size in sizes:
        data = FashionMNIST(batch_size=batch_size, resize=size, root=root,
                            augment="crop-flip-erase", train_per_class=per_class)
        model = build_model("resnext", num_classes=10, lr=0.1)
        trainer = Trainer(max_epochs=2, device="cuda", seed=0, progress="none",
                          momentum=0.9, weight_decay=5e-4, schedule="cosine")
        trainer.fit(model, data)              # epoch 1 warms up cuDNN's autotuner
        torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.evaluate(model, data.val_dataloader())
        eval_s = time.perf_counter() - start
        train_s = trainer.history[1]["seconds"] - eval_s
        row = {"size": size, "batch_size": batch_size, "train_img_s": len(data.train) / train_s,
               "eval_s_10k": eval_s,
               "full_epoch_s": 60000 * train_s / len(data.train) + eval_s}
        report["throughput"].append(row)
        print("throughput:", {k: round(v, 1) for k, v in row.items()}, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--out", default="results/gpu.json")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this script checks the GPU path")
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
              "command": "python benchmarks/gpu.py"}
    print(report, flush=True)
    check_training(args.root, report)
    if not args.skip_throughput:
        throughput(args.root, report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"all GPU checks passed; wrote {args.out}")


if __name__ == "__main__":
    main()
