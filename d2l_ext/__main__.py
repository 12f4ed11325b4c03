"""The command line: ``python -m d2l_ext train | evaluate | ablate | tables | diagrams``.

``train`` with no arguments trains the report's ResNeXt18 on the 5-class Fashion-MNIST
task on the CPU, prints the test accuracy and writes a checkpoint and a PNG of the curves.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from .data import AUGMENTATIONS
from .evaluation import TTA
from .experiments import EXPERIMENTS
from .models import MODELS, REPORT_ARCHS
from .recipes import RECIPES, TRAIN_LR

#: ``train``'s defaults are the 5-class recipe's, with the learning rate chosen for ResNeXt18.
DEFAULTS = dict(RECIPES["5class"], lr=TRAIN_LR)

EPILOG = """examples:
  python -m d2l_ext train                          # ResNeXt18, 5-class Fashion-MNIST, CPU
  python -m d2l_ext train --data my_images/ --resize 64 --epochs 20
  python -m d2l_ext train --model resnext --stages 4 --dropout 0 0
  python -m d2l_ext evaluate runs/train/model.pt --tta flip
  python -m d2l_ext ablate dropout --seeds 0 1 2   # writes results/dropout/*.json
  python -m d2l_ext ablate full --estimate         # how long would it take here? (a minute)
  python -m d2l_ext tables                         # results/*.md and *.png from the JSON files
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None (an option whose default its help text says in words)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m d2l_ext", description=__doc__,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model and save it",
                       formatter_class=_HelpFormatter,
                       description="Train one model, print its test accuracy, save a "
                                   "checkpoint (model.pt) and the curves (curves.png) in --out.")
    t.add_argument("--data", default="fashion5", metavar="PATH",
                   help="'fashion5' (the 5-class task), 'fashion' (all 10 classes) "
                        "or a folder of images: PATH/<class>/*.png, or PATH/train + PATH/val")
    t.add_argument("--model", default="resnext", choices=list(MODELS),
                   help="; ".join(f"{name}: {entry.help}" for name, entry in MODELS.items()))
    # None by default, so that giving them to a model without these settings is an error.
    t.add_argument("--stages", type=int, default=None, choices=sorted(REPORT_ARCHS),
                   help=f"ResNeXt stages: the report's 3, or 4 or 5 (resnext only; default: "
                        f"{MODELS['resnext'].settings['stages']})")
    t.add_argument("--dropout", type=float, nargs=2, default=None, metavar=("P1", "P2"),
                   help=f"rates in [0, 1) of each stage's two dropout layers (resnext only; "
                        f"default: {' '.join(map(str, MODELS['resnext'].settings['dropout']))})")
    t.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="training epochs")
    t.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="images per SGD step")
    t.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="SGD learning rate")
    t.add_argument("--momentum", type=float, default=DEFAULTS["momentum"], help="Nesterov momentum (0: plain SGD)")
    t.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"], help="L2 weight decay")
    t.add_argument("--warmup", type=int, default=None,
                   help=f"epochs of linear learning-rate warm-up before the schedule "
                        f"(default: {DEFAULTS['warmup']}, fewer if --epochs is that small)")
    t.add_argument("--schedule", default=DEFAULTS["schedule"], choices=["cosine", "none"],
                   help="learning-rate schedule over the epochs")
    t.add_argument("--resize", type=int, default=DEFAULTS["resize"], help="square input size in pixels (>= 16)")
    t.add_argument("--augment", nargs="?", const="crop-flip", default=False,
                   choices=[name for name in AUGMENTATIONS if isinstance(name, str)],
                   help="training augmentation: random crops and flips (the default when "
                        "given alone), plus random erasing with crop-flip-erase")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on the CPU too (on CUDA it is always on): faster on CPUs "
                        "with native bf16 (AVX512-BF16, AMX), slower on others")
    t.add_argument("--seed", type=int, default=0, help="seeds initialization and shuffling")
    t.add_argument("--root", default="data", help="where Fashion-MNIST is looked for/downloaded")
    t.add_argument("--out", default="runs/train", help="folder for model.pt and curves.png")
    t.add_argument("--overwrite", action="store_true",
                   help="replace a model.pt already in --out (without it, train refuses to "
                        "start, so no run ever replaces a trained model by accident)")

    a = sub.add_parser("ablate", help="run the report's experiments (resumable)",
                       description="Train each configuration x seed of an experiment; one "
                                   "JSON file per run under --out/<experiment>/. Runs whose "
                                   "file exists (and reads) are skipped, so an interrupted "
                                   "call resumes.")
    a.add_argument("experiments", nargs="+",
                   choices=list(EXPERIMENTS))
    a.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds to run for every row (default: 0 1 2, and 0-4 for the rows "
                        "behind README's verdicts)")
    a.add_argument("--epochs", type=int, default=None,
                   help="override the recipe's epochs (results then go to <experiment>-<N>ep/)")
    a.add_argument("--device", default="auto")
    a.add_argument("--root", default="data")
    a.add_argument("--out", default="results")
    a.add_argument("--estimate", action="store_true",
                   help="train nothing: time a few batches of each row and say how long "
                        "the runs still to do would take on this machine")

    e = sub.add_parser("evaluate", help="test accuracy of a saved model",
                       formatter_class=_HelpFormatter,
                       description="Load a checkpoint written by train (or Trainer(checkpoint=...)) "
                                   "and print its accuracy on the test images of --data.")
    e.add_argument("checkpoint", help="a model.pt")
    e.add_argument("--data", default="fashion5", metavar="PATH",
                   help="the data the model was trained on: 'fashion5', 'fashion' or a folder")
    e.add_argument("--resize", type=int, default=None,
                   help="input size in pixels (default: the size the checkpoint records)")
    e.add_argument("--tta", choices=[t for t in TTA if t], default=None,
                   help="also report the accuracy with each test image averaged with its mirror "
                        "image (helps models trained with flips)")
    e.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    e.add_argument("--root", default="data", help="where Fashion-MNIST is looked for/downloaded")

    r = sub.add_parser("tables", help="render results/*.md and *.png from the JSON files")
    r.add_argument("--out", default="results")

    d = sub.add_parser("diagrams", help="redraw the report's three figures into assets/ "
                                         "(English) and assets/zh/ (Chinese)")
    d.add_argument("--out", default="assets")
    d.add_argument("--lang", nargs="+", choices=["en", "zh"], default=["en", "zh"],
                   help="the languages to draw (Chinese needs a CJK font, see README)")
    return parser


def _make_data(name, batch_size, resize, root, augment=False, seed=0):
    """The data set a --data value names; a bad path or size ends the program with its reason."""
    from .recipes import build_data
    try:
        return build_data(name, batch_size, resize, root, augment, seed)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


def _check_device(device):
    """The --device value as torch.device, or the program ends with one line saying why."""
    from .training import resolve_device
    try:
        return resolve_device(device)
    except ValueError as e:
        sys.exit(f"error: --device: {e}")


def _check_out(out, overwrite):
    """--out: a writable folder without a model.pt (unless --overwrite), or one line why."""
    model_path = out / "model.pt"
    if model_path.exists() and not overwrite:
        sys.exit(f"error: {model_path} already exists; pass --overwrite to replace it, or "
                 f"choose another --out (a trained model is never replaced by accident)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        sys.exit(f"error: --out {out} is not a writable folder "
                 f"({e.strerror or type(e).__name__}); choose another --out")
    return model_path


def _model_config(args):
    """{"model": ..., settings given}: a setting the model does not have is an error."""
    entry = MODELS[args.model]
    config = {"model": args.model}
    for name, value in (("stages", args.stages), ("dropout", args.dropout)):
        if value is None:
            continue
        if name not in entry.settings:
            sys.exit(f"error: --{name} does not apply to --model {args.model} ({entry.help} has "
                     f"no {name} setting; only resnext has)")
        config[name] = tuple(value) if name == "dropout" else value
    if "dropout" in config and not all(0 <= p < 1 for p in config["dropout"]):
        sys.exit(f"error: --dropout rates must be in [0, 1), got "
                 f"{' '.join(f'{p:g}' for p in config['dropout'])}")
    return config


def cmd_train(args):
    from .recipes import build_run
    from .plotting import plot_history, save_figure

    # Every check that needs no data comes first: a mistake costs a second, not a data load.
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        sys.exit("error: --epochs and --batch-size must be positive, --lr greater than 0")
    if args.warmup is None:
        args.warmup = min(DEFAULTS["warmup"], args.epochs - 1)
    if not 0 <= args.warmup < args.epochs:
        sys.exit(f"error: --warmup must be in [0, --epochs), got {args.warmup}")
    config = _model_config(args)
    device = _check_device(args.device)
    out = Path(args.out)
    model_path = _check_out(out, args.overwrite)
    data = _make_data(args.data, args.batch_size, args.resize, args.root, args.augment, args.seed)
    test_size = len(data.test) if data.test is not None else 0
    print(f"data: {args.data}: {len(data.train)} training, {len(data.val)} validation and "
          f"{test_size} test images, {data.num_classes} classes ({', '.join(data.classes)})",
          flush=True)
    recipe = dict(DEFAULTS, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  momentum=args.momentum, weight_decay=args.weight_decay, warmup=args.warmup,
                  schedule=None if args.schedule == "none" else args.schedule,
                  amp="bf16" if args.bf16 else True)
    _, model, trainer = build_run(recipe, config, data, device=device, seed=args.seed,
                                  checkpoint=model_path)
    print(f"model: {args.model}, device: {trainer.device}"
          + (", bf16 autocast" if trainer.bf16 else "") + f", {args.epochs} epochs", flush=True)
    from .training import BatchTooSmallError
    try:
        trainer.fit(model, data)
    except (FloatingPointError, BatchTooSmallError) as e:   # diverged; a batch of one
        kept = (f"; {model_path} holds the {len(trainer.history)} finished epoch(s)"
                if trainer.history else "")
        sys.exit(f"error: {e}{kept}")
    seconds = sum(h["seconds"] for h in trainer.history)
    if data.test is not None and not trainer.interrupted:
        print(f"test accuracy: {trainer.test(model, data)['test_acc']:.4f} ({test_size} images, "
              f"read once) after {len(trainer.history)} epochs, {seconds:.0f}s of training")
    if trainer.history:
        ax = plot_history(trainer.history, title=f"{args.model} on {args.data}")
        save_figure(ax[0].figure, out / "curves.png")
        print(f"wrote {model_path} and {out / 'curves.png'}")
    return 130 if trainer.interrupted else 0


def cmd_evaluate(args):
    from .evaluation import accuracy
    from .training import load_checkpoint, model_from_checkpoint
    device = _check_device(args.device)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(args.checkpoint, ckpt=ckpt)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {str(e).splitlines()[0]}")
    resize = args.resize or ckpt.get("input_size")     # an int or [height, width]
    if resize is None:
        sys.exit(f"error: {args.checkpoint} does not record the input size it was trained at; "
                 f"pass --resize")
    # A folder without train/ and val/ is split by the seed, as train did with --seed.
    seed = (ckpt.get("trainer") or {}).get("seed") or 0
    data = _make_data(args.data, args.batch_size, resize, args.root, seed=seed)
    if ckpt.get("class_names") and list(ckpt["class_names"]) != list(data.classes):
        sys.exit(f"error: {args.checkpoint} was trained on {len(ckpt['class_names'])} classes "
                 f"({', '.join(ckpt['class_names'])}), --data {args.data} has "
                 f"{data.num_classes} ({', '.join(data.classes)})")
    model.to(device)
    split, loader = (("test", data.test_dataloader()) if data.test is not None
                     else ("validation", data.val_dataloader()))
    size = "x".join(map(str, data.train.images.shape[-2:]))
    print(f"{split} accuracy: {accuracy(model, loader):.4f} "
          f"({len(loader.dataset)} {split} images of {args.data}, {size})")
    if args.tta:
        print(f"with {args.tta} TTA:   {accuracy(model, loader, args.tta):.4f}")
    return 0


def cmd_ablate(args):
    from .experiments import estimate_experiment, run_experiment
    _check_device(args.device)
    try:
        for name in args.experiments:
            (estimate_experiment if args.estimate else run_experiment)(
                name, seeds=args.seeds, out=args.out, device=args.device, root=args.root,
                epochs=args.epochs)
    except KeyboardInterrupt:
        print("\ninterrupted" + ("" if args.estimate else
              ": finished runs are kept; the run in progress has its finished epochs in its "
              "checkpoint; run the same command to go on after the last of them"))
        return 130
    return 0


def cmd_tables(args):
    from .results import render_all
    docs = [page for page in (Path("docs") / "experiments.md",) if page.exists()]
    render_all(args.out, docs=docs)
    return 0


def cmd_diagrams(args):
    from .diagrams import NoCJKFontError, draw_all
    try:
        paths = draw_all(args.out, langs=args.lang)
    except NoCJKFontError as e:       # no font with Chinese glyphs: say which package to install
        sys.exit(f"error: {e}")
    for path in paths:
        print(f"wrote {path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return {"train": cmd_train, "evaluate": cmd_evaluate, "ablate": cmd_ablate,
            "tables": cmd_tables, "diagrams": cmd_diagrams}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
