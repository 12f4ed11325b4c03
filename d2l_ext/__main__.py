"""The command line: ``python -m d2l_ext train | ablate | tables | diagrams``.

``train`` with no arguments trains the report's ResNeXt18 on the 5-class Fashion-MNIST
task on the CPU, prints the test accuracy and writes a checkpoint and a PNG of the curves.
"""
import argparse
import sys
from pathlib import Path

from .models import MODEL_NAMES, REPORT_ARCHS

EPILOG = """examples:
  python -m d2l_ext train                          # ResNeXt18, 5-class Fashion-MNIST, CPU
  python -m d2l_ext train --data my_images/ --resize 64 --epochs 20
  python -m d2l_ext train --model resnext --stages 4 --dropout 0 0
  python -m d2l_ext ablate dropout --seeds 0 1 2   # writes results/dropout/*.json
  python -m d2l_ext ablate full --estimate         # how long would it take here? (a minute)
  python -m d2l_ext tables                         # results/*.md and *.png from the JSON files
"""


def _dropout(values):
    return tuple(float(v) for v in values)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m d2l_ext", description=__doc__,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model and save it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train one model, print its test accuracy, save a "
                                   "checkpoint (model.pt) and the curves (curves.png) in --out.")
    t.add_argument("--data", default="fashion5", metavar="PATH",
                   help="'fashion5' (the 5-class task), 'fashion' (all 10 classes) "
                        "or a folder of images: PATH/<class>/*.png, or PATH/train + PATH/val")
    t.add_argument("--model", default="resnext", choices=MODEL_NAMES,
                   help="the report's ResNeXt, d2l's ResNet-18 or the LeNet-style baseline")
    t.add_argument("--stages", type=int, default=3, choices=sorted(REPORT_ARCHS),
                   help="ResNeXt stages: the report's 3, or 4 or 5")
    t.add_argument("--dropout", type=float, nargs=2, default=(0.2, 0.4), metavar=("P1", "P2"),
                   help="rates of each stage's two dropout layers")
    t.add_argument("--epochs", type=int, default=30, help="training epochs")
    t.add_argument("--batch-size", type=int, default=32, help="images per SGD step")
    t.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    t.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum (0: plain SGD)")
    t.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay")
    t.add_argument("--schedule", default="cosine", choices=["cosine", "none"],
                   help="learning-rate schedule over the epochs")
    t.add_argument("--resize", type=int, default=32, help="square input size in pixels (>= 16)")
    t.add_argument("--augment", nargs="?", const="crop-flip", default=False,
                   choices=["crop-flip", "crop-flip-erase"],
                   help="training augmentation: random crops and flips (the default when "
                        "given alone), plus random erasing with crop-flip-erase")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--seed", type=int, default=0, help="seeds initialization and shuffling")
    t.add_argument("--root", default="data", help="where Fashion-MNIST is looked for/downloaded")
    t.add_argument("--out", default="runs/train", help="folder for model.pt and curves.png")

    a = sub.add_parser("ablate", help="run the report's experiments (resumable)",
                       description="Train each configuration x seed of an experiment; one "
                                   "JSON file per run under --out/<experiment>/. Runs whose "
                                   "file exists are skipped, so an interrupted call resumes.")
    a.add_argument("experiments", nargs="+",
                   choices=["baselines", "dropout", "stages", "full", "full-cpu10min"])
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (results then go to <experiment>-<N>ep/)")
    a.add_argument("--device", default="auto")
    a.add_argument("--root", default="data")
    a.add_argument("--out", default="results")
    a.add_argument("--estimate", action="store_true",
                   help="train nothing: time a few batches of each row and say how long "
                        "the runs still to do would take on this machine")

    r = sub.add_parser("tables", help="render results/*.md and *.png from the JSON files")
    r.add_argument("--out", default="results")

    d = sub.add_parser("diagrams", help="redraw the report's three figures into assets/")
    d.add_argument("--out", default="assets")
    return parser


def cmd_train(args):
    from .data import FashionMNIST, FashionMNIST5, ImageFolderData
    from .models import build_model
    from .training import Trainer
    from .plotting import plot_history, save_figure

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        sys.exit("--epochs and --batch-size must be positive, --lr greater than 0")
    try:
        if args.data == "fashion5":
            data = FashionMNIST5(batch_size=args.batch_size, resize=args.resize,
                                 root=args.root, augment=args.augment)
        elif args.data == "fashion":
            data = FashionMNIST(batch_size=args.batch_size, resize=args.resize,
                                root=args.root, augment=args.augment)
        else:
            data = ImageFolderData(args.data, batch_size=args.batch_size, resize=args.resize,
                                   augment=args.augment, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"data: {args.data}: {len(data.train)} training and {len(data.val)} test images, "
          f"{data.num_classes} classes ({', '.join(data.classes)})", flush=True)
    model = build_model(args.model, num_classes=data.num_classes, lr=args.lr,
                        stages=args.stages, dropout=args.dropout)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(max_epochs=args.epochs, device=args.device, seed=args.seed,
                      momentum=args.momentum, weight_decay=args.weight_decay,
                      schedule=None if args.schedule == "none" else args.schedule,
                      checkpoint=out / "model.pt")
    print(f"model: {args.model}, device: {trainer.device}, {args.epochs} epochs", flush=True)
    trainer.fit(model, data)
    _, acc = trainer.evaluate(model, data.val_dataloader())
    seconds = sum(h["seconds"] for h in trainer.history)
    print(f"test accuracy: {acc:.4f} ({len(data.val)} images) after "
          f"{len(trainer.history)} epochs, {seconds:.0f}s of training")
    ax = plot_history(trainer.history, title=f"{args.model} on {args.data}")
    save_figure(ax.figure, out / "curves.png")
    print(f"wrote {out / 'model.pt'} and {out / 'curves.png'}")
    return 130 if trainer.interrupted else 0


def cmd_ablate(args):
    from .experiments import estimate_experiment, run_experiment
    if args.estimate:
        for name in args.experiments:
            estimate_experiment(name, seeds=args.seeds, out=args.out, device=args.device,
                                root=args.root, epochs=args.epochs)
        return 0
    try:
        for name in args.experiments:
            run_experiment(name, seeds=args.seeds, out=args.out, device=args.device,
                           root=args.root, epochs=args.epochs)
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept and the run in progress is checkpointed "
              "after its last complete epoch; run the same command to resume")
        return 130
    return 0


def cmd_tables(args):
    from .experiments import EXPERIMENTS, load_results, markdown_table, plot_experiment
    from .plotting import save_figure
    for name in EXPERIMENTS:
        if not load_results(name, args.out):
            continue
        path = Path(args.out) / f"{name}.md"
        path.write_text(f"## {name}\n\n" + markdown_table(name, args.out) + "\n")
        ax = plot_experiment(name, args.out)
        save_figure(ax.figure, Path(args.out) / f"{name}.png")
        print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def cmd_diagrams(args):
    from .diagrams import draw_all
    for path in draw_all(args.out):
        print(f"wrote {path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return {"train": cmd_train, "ablate": cmd_ablate, "tables": cmd_tables,
            "diagrams": cmd_diagrams}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
