"""The report's experiments as configurations x seeds -> ``results/*.json`` -> tables and plots.

Every run writes one JSON file (config, seed, test accuracy, per-epoch history, seconds,
the command that made it, torch version, device). Tables and plots are rendered from
those files alone, so a number in README or a notebook can always be traced to a file
and the command that wrote it. A run whose file exists is not redone.
"""
import hashlib
import itertools
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from .data import AUGMENTATIONS, FashionMNIST, FashionMNIST5
from .evaluation import accuracy
from .models import build_model
from .training import Trainer

__all__ = ["EXPERIMENTS", "RECIPES", "REPORT", "run_experiment", "estimate_experiment",
           "seconds_per_batch", "load_results", "summarize", "markdown_table", "plot_experiment"]

#: One recipe per table: the same epochs, batch size, learning rate and input size for
#: every row. The 5-class recipe is SGD with Nesterov momentum and a cosine schedule on
#: 32x32 inputs, no augmentation (the report's regime is overfitting on little data); the
#: cosine schedule makes the last epoch's accuracy, the one reported, less noisy. The full
#: recipe upsamples to 96x96 (the stem would leave 8x8 maps of a 32x32 image) and adds random
#: erasing; at ~6 min per run on a GPU and hours on a 2-core CPU, it is the GPU recipe. The
#: 10-minute CPU recipe trains in bf16 (``amp``; this project's CPU has native bf16), which
#: pays for 48x48 inputs.
RECIPES = {
    "5class": dict(data="fashion5", epochs=30, batch_size=32, lr=0.05, momentum=0.9,
                   weight_decay=5e-4, schedule="cosine", resize=32, augment=False),
    "full": dict(data="fashion", epochs=50, batch_size=256, lr=0.1, momentum=0.9,
                 weight_decay=5e-4, schedule="cosine", resize=96, augment="crop-flip-erase"),
    "full-cpu10min": dict(data="fashion", epochs=7, batch_size=128, lr=0.1, momentum=0.9,
                          weight_decay=5e-4, schedule="cosine", resize=48, augment=False,
                          amp="bf16"),
}

#: Each experiment: (recipe, [(row label, model config), ...]).
EXPERIMENTS = {
    "baselines": ("5class", [
        ("baseline CNN", dict(model="baseline")),
        ("ResNet-18 (4 stages)", dict(model="resnet18")),
        ("ResNeXt18 (3 stages, dropout 0.2/0.4)", dict(model="resnext", stages=3, dropout=[0.2, 0.4])),
    ]),
    "dropout": ("5class", [
        ("(0, 0)", dict(model="resnext", stages=3, dropout=[0.0, 0.0])),
        ("(0.2, 0.4)", dict(model="resnext", stages=3, dropout=[0.2, 0.4])),
        ("(0.3, 0.5)", dict(model="resnext", stages=3, dropout=[0.3, 0.5])),
    ]),
    "stages": ("5class", [
        ("3 stages", dict(model="resnext", stages=3, dropout=[0.2, 0.4])),
        ("4 stages", dict(model="resnext", stages=4, dropout=[0.2, 0.4])),
        ("5 stages", dict(model="resnext", stages=5, dropout=[0.2, 0.4])),
    ]),
    "full": ("full", [
        ("ResNeXt18, 10 classes", dict(model="resnext", stages=3, dropout=[0.2, 0.4])),
    ]),
    "full-cpu10min": ("full-cpu10min", [
        ("ResNeXt18, 10 classes, 10 CPU minutes", dict(model="resnext", stages=3, dropout=[0.2, 0.4])),
    ]),
}

#: The report's accuracies (its own 5-class data set), by experiment and row label.
REPORT = {
    "baselines": {"baseline CNN": 0.498, "ResNeXt18 (3 stages, dropout 0.2/0.4)": 0.744},
    "dropout": {"(0, 0)": 0.628, "(0.2, 0.4)": 0.650, "(0.3, 0.5)": 0.646},
    "stages": {"3 stages": 0.678, "4 stages": 0.650, "5 stages": 0.578},
}


def _slug(label):
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


def make_data(recipe, root="data"):
    if recipe["data"] == "fashion5":
        return FashionMNIST5(batch_size=recipe["batch_size"], resize=recipe["resize"],
                             root=root, augment=recipe["augment"], seed=0)
    return FashionMNIST(batch_size=recipe["batch_size"], resize=recipe["resize"], root=root,
                        augment=recipe["augment"])


def _model_and_trainer(config, recipe, data, **trainer_args):
    """The row's model and a Trainer with the recipe's optimizer, schedule and precision."""
    model = build_model(config["model"], num_classes=data.num_classes, lr=recipe["lr"],
                        stages=config.get("stages", 3), dropout=config.get("dropout", (0.2, 0.4)))
    trainer = Trainer(max_epochs=recipe["epochs"], momentum=recipe["momentum"],
                      weight_decay=recipe["weight_decay"], schedule=recipe["schedule"],
                      amp=recipe.get("amp", True), **trainer_args)
    return model, trainer


def _result_path(out, folder, label, seed):
    return Path(out) / folder / f"{_slug(label)}__seed{seed}.json"


def checkpoint_path(path, config, recipe):
    """Where the run that will write ``path`` keeps its checkpoint while it trains.

    The name carries a digest of the configuration and recipe, so a checkpoint left by a
    run with other settings (say, more epochs: another cosine schedule) is never resumed.
    """
    key = json.dumps([config, recipe], sort_keys=True).encode()
    return path.with_name(f"{path.stem}.{hashlib.sha256(key).hexdigest()[:8]}.pt")


def run_one(experiment, label, config, seed, path, recipe, device="auto", root="data",
            progress="terminal", epochs=None):
    """Train one configuration with one seed and write its JSON file.

    ``recipe`` is the one the run uses (``epochs`` already applied); ``epochs`` only goes
    into the recorded command.

    A checkpoint beside the JSON file (``checkpoint_path``) is written after every epoch and on
    Ctrl-C, and a later call resumes from it, so an interrupted hour-long run loses nothing: it
    goes on with the epoch it was in, from the weights as they were when it stopped; the file
    is deleted once the JSON file is written. A resumed run is not bit-identical to one that
    never stopped (the interrupted epoch is redone from part-trained weights, and batches are
    reshuffled from the seed): its record says after which epoch it resumed.
    """
    data = make_data(recipe, root)
    checkpoint = checkpoint_path(path, config, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    model, trainer = _model_and_trainer(config, recipe, data, seed=seed, device=device,
                                        progress=progress, checkpoint=checkpoint)
    resumed_from = None
    if checkpoint.exists():
        trainer.restore(checkpoint, model)
        resumed_from = len(trainer.history)
    trainer.fit(model, data)
    if trainer.interrupted:
        raise KeyboardInterrupt
    test_acc = trainer.history[-1]["val_acc"]     # the last epoch's pass over the test set
    record = {
        "experiment": experiment, "label": label, "config": config, "recipe": recipe,
        "seed": seed, "test_acc": test_acc, "epochs": recipe["epochs"],
        "history": trainer.history,
        "seconds": sum(h["seconds"] for h in trainer.history),   # training + test passes
        "command": f"python -m d2l_ext ablate {experiment} --seeds {seed}"
                   + (f" --epochs {epochs}" if epochs else ""),
        "torch": torch.__version__, "device": str(trainer.device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
    }
    if "flip" in AUGMENTATIONS[recipe["augment"]]:
        # Trained on mirror images too: what averaging each test image with its mirror gives.
        record["test_acc_flip_tta"] = accuracy(model, data.val_dataloader(), tta="flip")
    if resumed_from is not None:
        record["resumed_after_epoch"] = resumed_from
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)           # a run is either complete on disk or absent
    checkpoint.unlink(missing_ok=True)
    return record


def run_experiment(experiment, seeds=(0, 1, 2), out="results", device="auto", root="data",
                   progress="terminal", epochs=None, log=print):
    """Run every row x seed of one experiment that has no result file yet."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    recipe, folder = _run_recipe(experiment, epochs)
    if folder == experiment:
        epochs = None       # the recipe's own epochs: the recorded command needs no --epochs
    done = []
    for label, config in EXPERIMENTS[experiment][1]:
        for seed in seeds:
            path = _result_path(out, folder, label, seed)
            if path.exists():
                log(f"[{experiment}] {label} seed {seed}: done already ({path})")
                continue
            twin = _same_run_elsewhere(out, config, recipe, seed)
            if twin is not None:    # same model, recipe and seed: one run serves both tables
                record = dict(twin, experiment=experiment, label=label)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1))
                log(f"[{experiment}] {label} seed {seed}: same run as {twin['experiment']}/"
                    f"{twin['label']}, copied")
                continue
            resuming = (" (resuming from its checkpoint)"
                        if checkpoint_path(path, config, recipe).exists() else "")
            log(f"[{experiment}] {label} seed {seed}: training{resuming}")
            record = run_one(experiment, label, config, seed, path, recipe,
                             device, root, progress, epochs)
            log(f"[{experiment}] {label} seed {seed}: test acc {record['test_acc']:.4f} "
                f"in {record['seconds']:.0f}s -> {path}")
            done.append(path)
    return done


def _run_recipe(experiment, epochs=None):
    """The experiment's recipe with ``epochs`` applied, and the folder its runs go to."""
    recipe_name = EXPERIMENTS[experiment][0]
    # Runs with other epochs than the recipe's go to their own folder ("full-100ep"), so
    # they neither count as the recipe's runs nor mix into its table.
    if epochs == RECIPES[recipe_name]["epochs"]:
        epochs = None
    folder = f"{experiment}-{epochs}ep" if epochs else experiment
    return dict(RECIPES[recipe_name], **({"epochs": epochs} if epochs else {})), folder


def seconds_per_batch(step, loader, batches, warmup, device):
    """Seconds per batch of taking the next batch from ``loader`` and calling ``step`` on it
    (so a CPU-side augmentation counts), over ``batches`` batches after ``warmup`` more."""
    def now():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    start, timed = now(), 0
    for i, batch in enumerate(itertools.islice(loader, warmup + batches), 1):
        step(batch)
        if i == warmup:
            start = now()
        elif i > warmup:
            timed += 1
    if not timed:
        raise ValueError(f"the loader has {warmup} batches or fewer: none left to time")
    return (now() - start) / timed


def estimate_experiment(experiment, seeds=(0, 1, 2), out="results", device="auto",
                        root="data", epochs=None, batches=20, warmup=3, log=print):
    """How long ``run_experiment`` would take here, from a few timed batches per row.

    A GPU recipe can take hours on a laptop; this says so in a minute, before a run is
    started. Each row's model trains ``warmup + batches`` batches of the recipe (its
    augmentation, input size and batch size) and is evaluated on as many test batches;
    an epoch is projected from the per-batch times, a run from the epochs. Runs whose
    JSON file exists are not counted. Returns one dict per row.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    if batches < 1 or warmup < 0:
        raise ValueError(f"batches must be >= 1 and warmup >= 0, got {batches} and {warmup}")
    recipe, folder = _run_recipe(experiment, epochs)
    data = make_data(recipe, root)
    rows = []
    for label, config in EXPERIMENTS[experiment][1]:
        pending = [s for s in seeds       # runs neither written nor copyable from a twin
                   if not _result_path(out, folder, label, s).exists()
                   and _same_run_elsewhere(out, config, recipe, s) is None]
        model, trainer = _model_and_trainer(config, recipe, data, seed=0, device=device,
                                            progress="none")
        trainer.setup(model, data)
        log(f"[{experiment}] {label}: timing {warmup} + {batches} training and test batches "
            f"of {recipe['batch_size']} images at {recipe['resize']}x{recipe['resize']}")
        train_s = seconds_per_batch(trainer.train_step, trainer.train_dataloader, batches,
                                    warmup, trainer.device)
        val_s = seconds_per_batch(lambda b: trainer.evaluate(model, [b]), trainer.val_dataloader,
                                  batches, warmup, trainer.device)
        epoch_s = train_s * trainer.num_train_batches + val_s * trainer.num_val_batches
        row = {"experiment": experiment, "label": label, "device": str(trainer.device),
               "threads": torch.get_num_threads(), "batch_size": recipe["batch_size"],
               "train_img_s": recipe["batch_size"] / train_s, "epoch_s": epoch_s,
               "epochs": recipe["epochs"], "run_s": epoch_s * recipe["epochs"],
               "pending_runs": len(pending)}
        rows.append(row)
        log(f"[{experiment}] {label}: {row['train_img_s']:.0f} training images/s on "
            f"{row['device']} ({row['threads']} threads); about {_duration(epoch_s)} per epoch, "
            f"{_duration(row['run_s'])} per run of {recipe['epochs']} epochs; "
            f"{len(pending)} run(s) to do: {_duration(row['run_s'] * len(pending))}")
    return rows


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _same_run_elsewhere(out, config, recipe, seed):
    for p in sorted(Path(out).glob("*/*.json")):
        record = json.loads(p.read_text())
        if (record["config"], record["recipe"], record["seed"]) == (config, recipe, seed):
            return record
    return None


def load_results(experiment, out="results"):
    return [json.loads(p.read_text()) for p in sorted((Path(out) / experiment).glob("*.json"))]


def summarize(experiment, out="results"):
    """Rows in the experiment's order: label, n seeds, mean, std, report, seconds/run."""
    records = load_results(experiment, out)
    rows = []
    for label, _ in EXPERIMENTS[experiment][1]:
        accs = [r["test_acc"] for r in records if r["label"] == label]
        secs = [r["seconds"] for r in records if r["label"] == label]
        tta = [r["test_acc_flip_tta"] for r in records
               if r["label"] == label and "test_acc_flip_tta" in r]
        rows.append({
            "label": label, "n": len(accs),
            "mean": statistics.mean(accs) if accs else math.nan,
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0 if accs else math.nan,
            "report": REPORT.get(experiment, {}).get(label),
            "seconds": statistics.mean(secs) if secs else math.nan,
            "flip_tta_mean": statistics.mean(tta) if tta else None,
        })
    return rows


def markdown_table(experiment, out="results"):
    """The experiment's table in Markdown, ours beside the report's."""
    recipe_name = EXPERIMENTS[experiment][0]
    recipe = RECIPES[recipe_name]
    rows = summarize(experiment, out)
    tta = any(r["flip_tta_mean"] is not None for r in rows)    # a column only where recorded
    lines = ["| configuration | test acc (ours, mean ± std) | seeds | report | s/run |"
             + (" with flip TTA (mean) |" if tta else ""),
             "|---|---|---|---|---|" + ("---|" if tta else "")]
    for r in rows:
        ours = f"{100 * r['mean']:.1f}% ± {100 * r['std']:.1f}" if r["n"] else "not run"
        report = f"{100 * r['report']:.1f}%" if r["report"] is not None else "–"
        line = f"| {r['label']} | {ours} | {r['n']} | {report} | {r['seconds']:.0f} |"
        if tta:
            line += (f" {100 * r['flip_tta_mean']:.2f}% |" if r["flip_tta_mean"] is not None
                     else " – |")
        lines.append(line)
    lines.append("")
    lines.append(f"Recipe `{recipe_name}`: " + ", ".join(f"{k}={v}" for k, v in recipe.items())
                 + f". Regenerate: `python -m d2l_ext ablate {experiment}`.")
    return "\n".join(lines)


def plot_experiment(experiment, out="results", ax=None):
    """Mean validation accuracy per epoch for each row, with the seeds' range shaded."""
    from .plotting import plt
    records = load_results(experiment, out)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, _ in EXPERIMENTS[experiment][1]:
        curves = [[h["val_acc"] for h in r["history"]] for r in records if r["label"] == label]
        if not curves:
            continue
        curves = torch.tensor(curves)
        epochs = range(1, curves.shape[1] + 1)
        line, = ax.plot(epochs, curves.mean(0), label=label)
        ax.fill_between(epochs, curves.min(0).values, curves.max(0).values,
                        color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch"); ax.set_ylabel("test accuracy"); ax.set_title(experiment)
    ax.grid(alpha=0.3); ax.legend(fontsize=7)
    return ax
