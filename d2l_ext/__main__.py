"""The command line: ``python -m d2l_ext train | evaluate | ablate | tables | diagrams``.

``train`` with no arguments trains the report's ResNeXt18 on the 5-class Fashion-MNIST
task on the CPU, prints the test accuracy and writes a checkpoint and a PNG of the curves.
"""
import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from .data import AUGMENTATIONS
from .evaluation import TTA
from .experiments import EXPERIMENTS, GROUPS
from .models import MODELS, REPORT_ARCHS
from .recipes import RECIPES, RULES, RecipeError, check_recipe

#: ``train``'s options that are fields of its recipe (``RECIPES["train"]``): an option left
#: out (None) is the recipe's, so the recipe is written in one place.
RECIPE_OPTIONS = ("data", "epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup",
                  "schedule", "resize", "augment")
TRAIN = RECIPES["train"]

EPILOG = """examples:
  python -m d2l_ext train                          # ResNeXt18, 5-class Fashion-MNIST, CPU
  python -m d2l_ext train --data my_images/ --resize 64 --epochs 20
  python -m d2l_ext train --model resnext --stages 4 --dropout 0 0
  python -m d2l_ext evaluate runs/train/model.pt --tta flip
  python -m d2l_ext ablate dropout-4stages --seeds 0 1 2   # results/dropout-4stages/*.json
  python -m d2l_ext ablate cardinality-lr-sweep cardinality  # the paper's templates
  python -m d2l_ext ablate data-size               # data-size-100 ... data-size-3000
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
    t.add_argument("--data", metavar="PATH",
                   help=f"'fashion5' (the 5-class task), 'fashion' (all 10 classes) "
                        f"or a folder of images: PATH/<class>/*.png, or PATH/train + PATH/val "
                        f"(default: {TRAIN['data']})")
    t.add_argument("--model", default="resnext", choices=list(MODELS),
                   help="; ".join(f"{name}: {entry.help}" for name, entry in MODELS.items()))
    # None by default, so that giving them to a model without these settings is an error.
    t.add_argument("--stages", type=int, default=None, choices=sorted(REPORT_ARCHS),
                   help=f"ResNeXt stages: the report's 3, or 4 or 5 (resnext only; default: "
                        f"{MODELS['resnext'].settings['stages']})")
    t.add_argument("--dropout", type=float, nargs=2, default=None, metavar=("P1", "P2"),
                   help=f"rates in [0, 1) of each stage's two dropout layers (resnext only; "
                        f"default: {' '.join(map(str, MODELS['resnext'].settings['dropout']))})")
    t.add_argument("--epochs", type=int, help=f"training epochs (default: {TRAIN['epochs']})")
    t.add_argument("--batch-size", type=int,
                   help=f"images per SGD step (default: {TRAIN['batch_size']})")
    t.add_argument("--lr", type=float, help=f"SGD learning rate (default: {TRAIN['lr']})")
    t.add_argument("--momentum", type=float,
                   help=f"Nesterov momentum (0: plain SGD; default: {TRAIN['momentum']})")
    t.add_argument("--weight-decay", type=float,
                   help=f"L2 weight decay (default: {TRAIN['weight_decay']})")
    t.add_argument("--warmup", type=int,
                   help=f"epochs of linear learning-rate warm-up before the schedule "
                        f"(default: {TRAIN['warmup']}, fewer if --epochs is that small)")
    t.add_argument("--schedule", choices=["cosine", "none"],
                   help=f"learning-rate schedule over the epochs (default: {TRAIN['schedule']})")
    t.add_argument("--resize", type=int,
                   help=f"square input size in pixels, >= 16 (default: {TRAIN['resize']})")
    t.add_argument("--augment", nargs="?", const="crop-flip",
                   choices=[name for name in AUGMENTATIONS if isinstance(name, str)],
                   help="training augmentation: random crops and flips (the default when "
                        "given alone), plus random erasing with crop-flip-erase (default: none)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on the CPU too (on CUDA it is always on): faster on CPUs "
                        "with native bf16 (AVX512-BF16, AMX), slower on others")
    t.add_argument("--seed", type=int, default=0,
                   help="seeds initialization and shuffling (as ablate's --seeds: train "
                        "--seed 1 is the seed-1 run of the same recipe)")
    t.add_argument("--split-seed", type=int, default=0,
                   help="seeds which images go to training and validation (fashion5's draw "
                        "of 100 a class; a folder's held-out 20%%); ablate keeps 0; model.pt "
                        "records it for evaluate")
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
                   choices=list(EXPERIMENTS) + list(GROUPS),
                   help="experiments, in order; " + ", ".join(
                       f"{group} = {' '.join(names)}" for group, names in GROUPS.items()))
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


def _require(ok, message):
    """End the program with ``error: message`` (one line, exit 1) unless ``ok``."""
    if not ok:
        sys.exit(f"error: {message}")


def _check_numbers(args, rules):
    """Every number in ``rules`` (option name -> (rule, test), from ``recipes.RULES``)
    checked before any work: the first that breaks its rule ends the program with one
    line naming it."""
    for name, (rule, test) in rules.items():
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            _require(value is None or test(value),
                     f"--{name.replace('_', '-')} must be {rule}, got {value}")


class _OutFolder:
    """``train``'s --out for one run, as a ``with`` block.

    On the way in: the folder is made and written to (or one line why), locked against a
    second ``train`` (``train.lock``, holding PID and host; a lock whose process is gone is
    taken over), refused if it holds a model.pt (unless --overwrite), and cleared of the
    temporary files a killed run left. On the way out, by any path: the lock goes, and so
    does a folder this run created and left empty. ``keep`` draws curves.png from the
    history model.pt itself holds, so the two always come from the same run.
    """

    def __init__(self, out, overwrite):
        self.path, self.overwrite, self.created, self.trainer = Path(out), overwrite, [], None
        self.model, self.curves = self.path / "model.pt", self.path / "curves.png"
        self.lock = self.path / "train.lock"

    def __enter__(self):
        from .locks import remove_litter, take_lock
        self._make()
        holder = take_lock(self.lock)
        if holder is not None:
            self._remove_created()
            sys.exit(f"error: --out {self.path} is in use by another train (PID {holder[0]} on "
                     f"{holder[1]}); wait for it to end or choose another --out (if no train "
                     f"runs there any more, delete {self.lock})")
        try:
            _require(self.overwrite or not self.model.exists(),
                     f"{self.model} already exists; pass --overwrite to replace it, or choose "
                     f"another --out (a trained model is never replaced by accident)")
            removed = remove_litter(self.path, [self.model.name, self.curves.name])
        except BaseException:
            self.__exit__()
            raise
        if removed:
            print(f"removed {len(removed)} temporary file(s) a killed run left in {self.path}",
                  flush=True)
        return self

    def _make(self):
        folder = self.path
        while not folder.exists() and folder != folder.parent:
            self.created.append(folder)
            folder = folder.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as e:
            self._remove_created()
            sys.exit(f"error: --out {self.path} is not a writable folder "
                     f"({e.strerror or type(e).__name__}); choose another --out")

    def _remove_created(self):
        for folder in self.created:         # deepest first; only if left empty
            try:
                folder.rmdir()
            except OSError:
                break

    def __exit__(self, *exc):
        from .locks import release_lock
        release_lock(self.lock)
        self._remove_created()
        return False

    def forget_curves(self):
        """Before this run's first model.pt replaces another run's: that run's curves go."""
        self.curves.unlink(missing_ok=True)

    def held(self):
        """What model.pt holds now, read from the file (``describe_saved``)."""
        from .checkpoints import describe_saved
        return describe_saved(self.model, self.trainer.history if self.trainer else [])

    def keep(self, title):
        """(whether model.pt is this run's and curves.png was drawn for it, one clause
        saying what --out holds). A failed drawing is said, not raised."""
        from .checkpoints import saved_epochs
        epochs, ours = saved_epochs(self.model, self.trainer.history if self.trainer else [])
        if not ours:
            return False, self.held()
        try:
            _save_curves(self.trainer.history[:epochs], self.curves, title)
        except OSError as e:
            return False, f"{self.model} holds the {epochs} finished epoch(s); {e}"
        return True, f"{self.model} ({epochs} finished epoch(s)) and {self.curves}"


def _save_curves(history, path, title):
    """curves.png through a temporary file and a rename (a Ctrl-C or a full disk leaves no
    half-written PNG); the temporary file goes on every path."""
    from .plotting import plot_history, plt
    from .checkpoints import write_failure
    ax = plot_history(history, title=title)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        ax[0].figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(write_failure(path, e)) from None
    finally:
        plt.close(ax[0].figure)
        tmp.unlink(missing_ok=True)


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


#: torchrun's variables (``distributed.ENV_VARS``), read here without importing torch.
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _launched():
    return all(os.environ.get(name) for name in _TORCHRUN_VARS)


def _env_rank():
    """This process's rank under torchrun (0 outside it, or when RANK is not a number:
    ``_check_launch`` then says why)."""
    text = os.environ.get("RANK", "0") if _launched() else "0"
    return int(text) if text.isdigit() else 0


def cmd_train(args):
    """``train``; under torchrun, ranks other than 0 run it silently (``_follow``)."""
    rank = _env_rank()
    return _follow(rank, args) if rank > 0 else _cmd_train(args)


def _follow(rank, args):
    """A rank other than 0: the same checks and training, printing nothing, writing
    nothing, waiting for rank 0 at the barriers. Every error that rank 0 meets too (a bad
    option, the data, divergence) is said once, by rank 0; what only this rank meets (its
    peers gone: ``error: rank N: ...``, or the unforeseen) is said here."""
    sys.stdout = open(os.devnull, "w")
    try:
        return _cmd_train(args)
    except SystemExit as e:
        if isinstance(e.code, str) and not e.code.startswith(f"error: rank {rank}: "):
            raise SystemExit(1) from None
        raise
    except KeyboardInterrupt:       # Ctrl-C or torchrun's SIGTERM: rank 0 says where it stopped
        return 130


def train_recipe(args):
    """``RECIPES["train"]`` with the options the user gave; a warm-up left out is clamped
    to a short run (``clamp_warmup``), as ``ablate --epochs`` clamps it."""
    from .training import clamp_warmup
    given = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    if given.get("schedule") == "none":
        given["schedule"] = None
    recipe = dict(TRAIN, **given)
    if "warmup" not in given:
        recipe["warmup"] = clamp_warmup(recipe["warmup"], recipe["epochs"])
    if args.bf16:
        recipe["amp"] = "bf16"
    return recipe


def _check_launch(batch_size):
    """Under torchrun: its variables and the process group's timeout readable, and
    --batch-size (the global batch) a multiple of the number of processes; one line
    naming both numbers otherwise, before any work."""
    if not _launched():
        return 1
    from . import distributed
    try:
        _, world, _ = distributed.env_ranks()
        distributed.timeout()
    except ValueError as e:
        sys.exit(f"error: {e}")
    _require(batch_size % world == 0,
             f"--batch-size {batch_size} does not divide among the {world} processes "
             f"torchrun started (WORLD_SIZE={world}): --batch-size is the global batch, "
             f"each process takes --batch-size / {world}; use a multiple of {world}")
    return world


def _cmd_train(args):
    # Every check that needs no data comes first: a mistake costs a second, not a data load.
    _check_numbers(args, {"seed": RULES["seed"], "split_seed": RULES["seed"]})
    recipe = train_recipe(args)
    try:
        check_recipe(recipe)        # the recipe's rules, said as the option that broke one
    except RecipeError as e:
        sys.exit(f"error: --{e.field.replace('_', '-')} {e.message}")
    config = _model_config(args)
    device = _check_device(args.device)
    _check_launch(recipe["batch_size"])
    if _env_rank() > 0:         # rank 0 alone locks --out, prints and writes
        return _train(args, recipe, config, device, None)
    with _OutFolder(args.out, args.overwrite) as out:
        try:
            return _train(args, recipe, config, device, out)
        except KeyboardInterrupt:   # outside the epochs: loading data, drawing the curves
            print(f"\ninterrupted: {out.held()}", flush=True)
            return 130


def _train(args, recipe, config, device, out):
    """``train`` after the checks: data, model, fit, test, curves. Every way it ends says
    what --out holds, read from model.pt itself. ``out`` is None on the ranks other than 0
    of a torchrun run: they train and test with rank 0, then wait for it at a barrier."""
    try:
        return _train_steps(args, recipe, config, device, out)
    except RuntimeError as e:
        from . import distributed
        if not distributed.is_peer_failure(e):
            raise
        who = "" if out is not None else f"rank {_env_rank()}: "
        reason = distributed.failure_reason(e)
        sys.exit(f"error: {who}another process of this torchrun run failed or stopped "
                 f"({reason})" + (f"; {out.held()}" if out is not None else ""))


def _train_steps(args, recipe, config, device, out):
    from . import distributed
    from .recipes import build_run, recipe_data
    try:
        data = recipe_data(recipe, args.root, split_seed=args.split_seed)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    test_size = len(data.test) if data.test is not None else 0
    print(f"data: {recipe['data']}: {len(data.train)} training, {len(data.val)} validation and "
          f"{test_size} test images, {data.num_classes} classes ({', '.join(data.classes)})",
          flush=True)
    try:
        _, model, trainer = build_run(recipe, config, data, device=device, seed=args.seed,
                                      checkpoint=out.model if out is not None else None)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if out is None:             # a rank other than 0: train and test with rank 0, silently
        return _follow_run(trainer, model, data)
    out.trainer, trainer.before_checkpoint_replace = trainer, out.forget_curves
    world = distributed.world_size()
    print(f"model: {args.model}, device: {trainer.device}"
          + (", bf16 autocast" if trainer.bf16 else "") + f", {recipe['epochs']} epochs"
          + (f", {world} processes ({distributed.backend_for(trainer.device)}), "
             f"{recipe['batch_size'] // world} images each per step" if world > 1 else ""),
          flush=True)
    title = f"{args.model} on {recipe['data']}"
    try:
        trainer.fit(model, data)
    except (FloatingPointError, ValueError, OSError) as e:  # diverged, classes, a failed write
        ours, held = out.keep(title)
        sys.exit(f"error: {e}; " + (f"kept {held}" if ours else held))
    if trainer.interrupted:         # fit said where it stopped and what model.pt holds
        ours, held = out.keep(title)
        print(f"kept {held}" if ours else held, flush=True)
        return 130
    if data.test is not None:
        seconds = sum(h["seconds"] for h in trainer.history)
        try:
            accuracy = trainer.test(model, data)["test_acc"]
        except KeyboardInterrupt:
            ours, held = out.keep(title)
            print("\ninterrupted during the test pass: no test accuracy; "
                  + (f"kept {held}; `python -m d2l_ext evaluate {out.model}` reads it"
                     if ours else held), flush=True)
            return 130
        print(f"test accuracy: {accuracy:.4f} ({test_size} images, read once) after "
              f"{len(trainer.history)} epochs, {seconds:.0f}s of training", flush=True)
    ours, held = out.keep(title)
    _require(ours, held)
    print(f"wrote {held}", flush=True)
    distributed.barrier()       # the other ranks wait here until model.pt and curves.png exist
    return 0


def _follow_run(trainer, model, data):
    """Training and the test pass on a rank other than 0 (each is collective: every rank
    takes part); then the barrier where rank 0 arrives once its files are written."""
    from . import distributed
    try:
        trainer.fit(model, data)
    except (FloatingPointError, ValueError):    # rank 0 meets it too, and says it
        sys.exit(1)
    if trainer.interrupted:
        return 130
    if data.test is not None:
        trainer.test(model, data)
    distributed.barrier()
    return 0


def cmd_evaluate(args):
    from .evaluation import accuracy
    from .checkpoints import load_checkpoint, model_from_checkpoint
    _check_numbers(args, {"batch_size": RULES["batch_size"], "resize": RULES["resize"]})
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
    # A folder without train/ and val/ is split as train split it (--split-seed, which the
    # checkpoint records; one from before that flag was split by its --seed).
    seed = ckpt.get("split_seed", (ckpt.get("trainer") or {}).get("seed")) or 0
    data = _make_data(args.data, args.batch_size, resize, args.root, seed=seed)
    if ckpt.get("class_names") and list(ckpt["class_names"]) != list(data.classes):
        sys.exit(f"error: {args.checkpoint} was trained on {len(ckpt['class_names'])} classes "
                 f"({', '.join(ckpt['class_names'])}), --data {args.data} has "
                 f"{data.num_classes} ({', '.join(data.classes)})")
    model.to(device)
    split, loader = (("test", data.test_dataloader()) if data.test is not None
                     else ("validation", data.val_dataloader()))
    size = "x".join(map(str, data.train.images.shape[-2:]))
    try:
        outputs = _outputs(model, loader, device)
        _require(outputs == data.num_classes,
                 f"{args.checkpoint} holds a model with {outputs} outputs (classes), --data "
                 f"{args.data} has {data.num_classes} classes ({', '.join(data.classes)})")
        print(f"{split} accuracy: {accuracy(model, loader):.4f} "
              f"({len(loader.dataset)} {split} images of {args.data}, {size})")
        if args.tta:
            print(f"with {args.tta} TTA:   {accuracy(model, loader, args.tta):.4f}")
    except ValueError as e:     # images the model was not built for (channels, say)
        sys.exit(f"error: {args.checkpoint} on --data {args.data}: {e}")
    return 0


def _outputs(model, loader, device):
    """How many classes ``model`` tells apart: the width of its output on one image."""
    import torch
    X, _ = next(iter(loader))
    with torch.no_grad():
        return model(X[:1].to(device)).shape[-1]


def cmd_ablate(args):
    from .experiments import estimate_experiment, run_experiment
    # train's rules for the same numbers; the warm-up is clamped as train's (clamp_warmup)
    _check_numbers(args, {"epochs": RULES["epochs"], "seeds": RULES["seed"]})
    _require(args.seeds is None or len(set(args.seeds)) == len(args.seeds),
             f"--seeds has a seed twice: {' '.join(map(str, args.seeds or []))}")
    _check_device(args.device)
    out = _OutFolder(args.out, overwrite=True)
    out._make()     # a writable folder, or one line why; removed at the end if left empty
    try:
        for name in [e for name in args.experiments for e in GROUPS.get(name, [name])]:
            (estimate_experiment if args.estimate else run_experiment)(
                name, seeds=args.seeds, out=args.out, device=args.device, root=args.root,
                epochs=args.epochs)
    except KeyboardInterrupt:
        print("\ninterrupted" + ("" if args.estimate else
              ": finished runs are kept; the run in progress keeps what its checkpoint holds "
              "(said above); run the same command to go on from there"), flush=True)
        return 130
    except (FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    finally:
        if out.created:     # this call made --out: what it left empty goes
            for folder in sorted(out.path.glob("*/"), reverse=True):
                with _quietly():
                    folder.rmdir()
            out._remove_created()
    return 0


def _quietly():
    import contextlib
    return contextlib.suppress(OSError)


def cmd_tables(args):
    from .results import render_all
    _require(Path(args.out).is_dir(), f"--out {args.out} is not a folder of results: run "
                                      f"`python -m d2l_ext ablate ...` first")
    # docs/experiments.md shows the repository's own results/, not another folder's.
    own = Path(args.out).resolve() == Path("results").resolve()
    pages = (Path("docs") / "experiments.md", Path("README.md"), Path("README.zh-CN.md"))
    docs = [page for page in pages if own and page.exists()]
    try:
        written = render_all(args.out, docs=docs)
    except (ValueError, OSError) as e:      # a broken result file, a full disk
        sys.exit(f"error: {e}")
    _require(written, f"no result files in {args.out}/<experiment>/*.json: nothing to "
                      f"render; run `python -m d2l_ext ablate ...` first")
    return 0


def cmd_diagrams(args):
    from .diagrams import NoCJKFontError, draw_all
    try:
        paths = draw_all(args.out, langs=args.lang)
    except NoCJKFontError as e:       # no font with Chinese glyphs: say which package to install
        sys.exit(f"error: {e}")
    except OSError as e:              # --out not writable, a full disk
        sys.exit(f"error: cannot write the diagrams into --out {args.out}: {e}")
    for path in paths:
        print(f"wrote {path}")
    return 0


def _catch_interrupts():
    """The first Ctrl-C raises ``KeyboardInterrupt`` as usual; every later one is only
    noted, so that the cleanup the first one started (a temporary file, the lock, saying
    what --out holds) runs to its end instead of ending in a traceback. Returns a function
    that puts the previous handler back if no Ctrl-C came; after one, later ones are
    ignored until the process ends (Python's shutdown would otherwise die of them). It
    does nothing outside the main thread, where no handler can be set."""
    def again(signum, frame):
        os.write(2, b"\n(stopping already: finishing the cleanup, a moment)\n")

    def first(signum, frame):
        signal.signal(signal.SIGINT, again)
        if signum == signal.SIGTERM and _env_rank() == 0:
            os.write(2, b"\nstopped by SIGTERM: torchrun ends every process of a run when one "
                        b"of them fails or is interrupted (its report follows)\n")
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, first)
    except ValueError:
        return lambda: None
    # torchrun stops the other processes with SIGTERM: stop as on Ctrl-C (cleanup included)
    previous_term = signal.signal(signal.SIGTERM, first) if _launched() else None

    def restore():
        interrupted = signal.getsignal(signal.SIGINT) is not first
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else previous)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return restore


def main(argv=None):
    """Run one command; its exit status. No traceback reaches the user: a mistake or a
    failure is one ``error:`` line (exit 1), Ctrl-C says what was kept (exit 130), and
    anything unforeseen is one line too (``D2L_EXT_TRACEBACK=1`` shows where it came
    from)."""
    restore_signals = _catch_interrupts()
    try:
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "evaluate": cmd_evaluate, "ablate": cmd_ablate,
                "tables": cmd_tables, "diagrams": cmd_diagrams}[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:         # `... | head`: the reader is gone, nothing to say
        sys.stdout = open(os.devnull, "w")
        return 1
    except Exception as e:
        if os.environ.get("D2L_EXT_TRACEBACK"):
            raise
        sys.exit(f"error: {type(e).__name__}: {' '.join(str(e).split())[:300]} (unexpected; "
                 f"D2L_EXT_TRACEBACK=1 shows where it happened)")
    finally:
        restore_signals()


if __name__ == "__main__":
    sys.exit(main())
