"""The report's experiments as configurations x seeds -> ``results/<experiment>/*.json``.

Every run writes one JSON file: config (learning rate included), seed, the final
training loss and accuracy, the last epoch's validation accuracy, the test accuracy
(read once, after the last epoch), the per-epoch history, seconds, the command that made
it, torch version, device. ``results.py`` renders tables and plots from those files
alone. A run whose file exists is not redone; an interrupted run resumes from its
checkpoint.

The order follows the report's own path: it chose dropout rates on its 4-stage ResNeXt
(its (0.2, 0.4) row, 65.0%, is its 4-stage "baseline" row), then compared 3, 4 and 5
stages, then set the final 3-stage model against the course baseline. Every network gets
its own learning rate, chosen on the validation split from ``LR_GRID`` (``lr-sweep``);
the rows of the other experiments read it from there.
"""
import hashlib
import itertools
import json
import os
import platform
import time
from pathlib import Path

import torch

from .data import AUGMENTATIONS
from .evaluation import accuracy
from .complexity import counted_flops
from .models import CARDINALITY_TEMPLATES, count_parameters
from .recipes import (DATA_SIZE_RECIPES, DATA_SIZES, LR_EXTENDED, LR_GRID, RECIPES,
                      build_run, recipe_data)
from .locks import release_lock, remove_litter, take_lock
from .training import clamp_warmup

__all__ = ["EXPERIMENTS", "GROUPS", "NETWORKS", "TEMPLATE_NETWORKS", "TEMPLATE_PAIR", "SWEEPS", "REPORT",
           "run_experiment", "estimate_experiment", "seconds_per_batch", "load_results",
           "selected_lr", "network_of", "sweep_of", "row_seeds", "sweep_extension",
           "sweep_rows"]

_R = lambda stages, dropout=(0.2, 0.4): dict(model="resnext", stages=stages,  # noqa: E731
                                             dropout=list(dropout))

#: The networks whose learning rate is swept, by name: ResNeXt with the report's dropout
#: (0.2, 0.4) and without any; a row with other dropout rates takes the rate of the
#: network with the report's dropout (``network_of``).
NETWORKS = {
    "baseline CNN": dict(model="baseline"),
    "ResNet-18": dict(model="resnet18"),
    "ResNeXt, 3 stages": _R(3),
    "ResNeXt, 4 stages": _R(4),
    "ResNeXt, 5 stages": _R(5),
    "ResNeXt, 3 stages, no dropout": _R(3, (0, 0)),
    "ResNeXt, 4 stages, no dropout": _R(4, (0, 0)),
    "ResNeXt, 5 stages, no dropout": _R(5, (0, 0)),
}

#: The paper's experiment (Xie et al. 2017, Table 3): the report's 3-stage network as templates
#: "C x d" of matched parameters and FLOPs (``CARDINALITY_TEMPLATES``, within 5%), without
#: dropout, as the paper trains them; each its own network with its own learning rate.
TEMPLATE_NETWORKS = {f"ResNeXt {name}": dict(_R(3, (0, 0)), **groups)
                     for name, groups in CARDINALITY_TEMPLATES.items()}

#: The pair of templates the paper's claim is about: 5 seeds each where the others run 3.
TEMPLATE_PAIR = ("1x64d", "8x19d")

#: The rows of ``cardinality`` and ``cardinality-full``: each template by its short name.
TEMPLATE_ROWS = list(zip(CARDINALITY_TEMPLATES, TEMPLATE_NETWORKS.values()))

#: Each learning-rate sweep and the networks it chooses a rate for (seed 0, on validation).
#: A network's rate comes from the first sweep listing it (``sweep_of``) unless the
#: experiment names another (``SWEPT``): a rate chosen on 500 images is not one for 55,000.
SWEEPS = {"lr-sweep": NETWORKS, "cardinality-lr-sweep": TEMPLATE_NETWORKS,
          "cardinality-full-lr-sweep": TEMPLATE_NETWORKS}


def _sweep_grid(networks):
    return [(f"{name}, lr {lr:g}", dict(config, lr=lr))
            for name, config in networks.items() for lr in LR_GRID]


#: ``ablate data-size-N``: the LeNet-style CNN, d2l's ResNet-18 and the report's network with
#: and without its dropout, with N training images a class (``recipes.DATA_SIZES``), each at
#: the rate its ``lr-sweep`` chose at 100 a class (not chosen again at each size: the sweep
#: would cost more than the runs). With 100 a class every run is one of the tables above
#: (copied, not trained again). ResNet-18 is about 5x slower than ResNeXt18 on a CPU: its
#: larger sizes were run on a GPU (each record says where; ``benchmarks/device_check.py``).
DATA_SIZE_ROWS = [("baseline CNN", dict(model="baseline")), ("ResNet-18", dict(model="resnet18")),
                  ("ResNeXt18, dropout 0.2/0.4", _R(3)), ("ResNeXt18, no dropout", _R(3, (0, 0)))]

#: Each experiment: (recipe, [(row label, model config), ...]), in the report's order.
EXPERIMENTS = {
    "lr-sweep": ("5class", _sweep_grid(NETWORKS)),
    "dropout-4stages": ("5class", [
        ("(0, 0)", _R(4, (0, 0))), ("(0.2, 0.4)", _R(4)), ("(0.3, 0.5)", _R(4, (0.3, 0.5)))]),
    "dropout-3stages": ("5class", [
        ("(0, 0)", _R(3, (0, 0))), ("(0.2, 0.4)", _R(3)), ("(0.3, 0.5)", _R(3, (0.3, 0.5)))]),
    "stages": ("5class", [("3 stages", _R(3)), ("4 stages", _R(4)), ("5 stages", _R(5))]),
    "stages-no-dropout": ("5class", [("3 stages", _R(3, (0, 0))), ("4 stages", _R(4, (0, 0))),
                                     ("5 stages", _R(5, (0, 0)))]),
    "baselines": ("5class", [
        ("baseline CNN", dict(model="baseline")),
        ("ResNet-18 (4 stages)", dict(model="resnet18")),
        ("ResNeXt18 (3 stages, dropout 0.2/0.4)", _R(3)),
    ]),
    # The two rows of README's dropout verdict, with stock d2l's training (the report's lr).
    "dropout-4stages-stock-d2l": ("5class-stock-d2l", [
        ("(0, 0)", _R(4, (0, 0))), ("(0.2, 0.4)", _R(4))]),
    "stages-64px": ("5class-64px", [("3 stages", _R(3)), ("4 stages", _R(4)),
                                    ("5 stages", _R(5))]),
    "cardinality-lr-sweep": ("5class", _sweep_grid(TEMPLATE_NETWORKS)),
    "cardinality": ("5class", TEMPLATE_ROWS),
    "cardinality-full-lr-sweep": ("full-28px", _sweep_grid(SWEEPS["cardinality-full-lr-sweep"])),
    "cardinality-full": ("full-28px", TEMPLATE_ROWS),
    **{f"data-size-{n}": (DATA_SIZE_RECIPES[n], DATA_SIZE_ROWS) for n in DATA_SIZES},
    "full": ("full", [("ResNeXt18, 10 classes", _R(3))]),
    "full-cpu10min": ("full-cpu10min", [("ResNeXt18, 10 classes, 10 CPU minutes", _R(3))]),
}

#: Names ``ablate`` takes for several experiments at once, run in this order.
GROUPS = {"data-size": [f"data-size-{n}" for n in DATA_SIZES]}

#: Seeds a row runs when ``ablate`` is given no ``--seeds``: 5 for the rows behind README's
#: three verdicts, 3 for the rest.
DEFAULT_SEEDS = (0, 1, 2)
HEADLINE_SEEDS = (0, 1, 2, 3, 4)
HEADLINE_ROWS = {
    "dropout-4stages": {"(0, 0)", "(0.2, 0.4)"},
    "stages": {"3 stages", "4 stages"},
    "stages-no-dropout": {"3 stages", "4 stages"},
    "baselines": {"baseline CNN", "ResNeXt18 (3 stages, dropout 0.2/0.4)"},
    "cardinality": set(TEMPLATE_PAIR),
    "cardinality-full": set(TEMPLATE_PAIR),
}


def row_seeds(experiment, label):
    """The seeds ``ablate`` runs for a row by default (a learning-rate sweep: seed 0)."""
    if experiment in SWEEPS:
        return (0,)
    return HEADLINE_SEEDS if label in HEADLINE_ROWS.get(experiment, ()) else DEFAULT_SEEDS


#: The report's accuracies (its own 5-class data set), by experiment and row label. Its
#: dropout table ran on 4 stages, so it sits beside ``dropout-4stages``.
REPORT = {
    "baselines": {"baseline CNN": 0.498, "ResNeXt18 (3 stages, dropout 0.2/0.4)": 0.744},
    "dropout-4stages": {"(0, 0)": 0.628, "(0.2, 0.4)": 0.650, "(0.3, 0.5)": 0.646},
    "dropout-4stages-stock-d2l": {"(0, 0)": 0.628, "(0.2, 0.4)": 0.650},
    "stages": {"3 stages": 0.678, "4 stages": 0.650, "5 stages": 0.578},
}

#: Experiments whose rows take their network's learning rate from a sweep: the sweep each
#: names, or (None) the network's own, ``sweep_of``.
SWEPT = {**dict.fromkeys(["dropout-4stages", "dropout-3stages", "stages", "stages-no-dropout",
                          "baselines", "stages-64px", "cardinality",
                          *(f"data-size-{n}" for n in DATA_SIZES)]),
         "cardinality-full": "cardinality-full-lr-sweep"}


def _without_dropout(config):
    return config["model"] == "resnext" and not any(config.get("dropout", (0.2, 0.4)))


_SHAPE = ("model", "stages", "cardinality", "width_per_group")


def network_of(config):
    """The name in ``NETWORKS`` or ``TEMPLATE_NETWORKS`` of a row's network (its lr aside):
    ResNeXt without dropout is a network of its own; any other dropout rates count as the
    report's (0.2, 0.4); each template of ``CARDINALITY_TEMPLATES`` is one."""
    for networks in SWEEPS.values():
        for name, net in networks.items():
            if (all(net.get(k) == config.get(k) for k in _SHAPE)
                    and _without_dropout(net) == _without_dropout(config)):
                return name
    raise ValueError(f"no network in NETWORKS or TEMPLATE_NETWORKS matches {config}")


def sweep_of(network):
    """The learning-rate sweep (an experiment of ``SWEEPS``) that chooses ``network``'s rate."""
    return next(sweep for sweep, networks in SWEEPS.items() if network in networks)


def _sweep_scores(network, out, sweep=None):
    """{lr: validation accuracy or None (diverged)} of ``network``'s runs in ``sweep``
    (by default its own, ``sweep_of``)."""
    return {r["config"]["lr"]: r.get("val_acc")
            for r in load_results(sweep or sweep_of(network), out)
            if network_of(r["config"]) == network}


def _best_lr(scores):
    """The rate with the best validation accuracy (the lower on a tie), or None."""
    finished = [(acc, -lr) for lr, acc in scores.items() if acc is not None]
    return -max(finished)[1] if finished else None


def sweep_extension(network, out="results", sweep=None):
    """The next rate ``lr-sweep`` must try for ``network``, or None: one step along
    ``LR_EXTENDED`` past the edge where the best rate sits, until it has a neighbour on
    each side (a diverged rate counts as a neighbour) or the list ends."""
    scores = _sweep_scores(network, out, sweep)
    best = _best_lr(scores)
    if not set(LR_GRID) <= scores.keys() or best is None:
        return None
    i = LR_EXTENDED.index(best)
    for j in (i - 1, i + 1):
        if 0 <= j < len(LR_EXTENDED) and LR_EXTENDED[j] not in scores:
            return LR_EXTENDED[j]
    return None


def selected_lr(network, out="results", sweep=None):
    """The rate with the best final validation accuracy for ``network`` in ``sweep`` (by
    default its own, ``sweep_of``; seed 0), once the sweep has run ``LR_GRID`` and every
    extension the choice asked for; an error naming the command otherwise."""
    sweep = sweep or sweep_of(network)
    scores = _sweep_scores(network, out, sweep)
    if not set(LR_GRID) <= scores.keys() or sweep_extension(network, out, sweep) is not None:
        raise FileNotFoundError(
            f"the learning-rate sweep for {network!r} is incomplete in {out}/{sweep} "
            f"(has {sorted(scores)}; needs {list(LR_GRID)} and, where the best rate sits at "
            f"an edge, the next of {list(LR_EXTENDED)}): run `python -m d2l_ext ablate "
            f"{sweep} --seeds 0` first")
    best = _best_lr(scores)
    if best is None:
        raise ValueError(f"every learning rate of the sweep diverged for {network!r}")
    return best


def sweep_rows(out="results", sweep="lr-sweep"):
    """A sweep's rows: ``LR_GRID`` for each of its networks, then the extensions the results
    so far ask for (``sweep_extension``)."""
    rows = list(EXPERIMENTS[sweep][1])
    for name, config in SWEEPS[sweep].items():
        lr = sweep_extension(name, out, sweep)
        if lr is not None:
            rows.append((f"{name}, lr {lr:g}", dict(config, lr=lr)))
    return rows


def row_config(experiment, config, out="results"):
    """The row's config as it is run: with its network's swept lr where the experiment says."""
    if experiment in SWEPT and "lr" not in config:
        return dict(config, lr=selected_lr(network_of(config), out, SWEPT[experiment]))
    return config


def _slug(label):
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


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
    into the recorded command. The Trainer reports on the validation split every epoch;
    the test split is read once, after the last epoch.

    A checkpoint beside the JSON file (``checkpoint_path``) is written after every epoch,
    and a later call resumes from it, so an interrupted hour-long run loses at most the
    epoch it was in; the file is deleted once the JSON file is written. A resumed run is
    not bit-identical to one that never stopped (batches are reshuffled from the seed): its
    record says after which epoch it resumed.
    """
    checkpoint = checkpoint_path(path, config, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_litter(path.parent, [path.name, checkpoint.name])    # a killed attempt's temp files
    data, model, trainer = build_run(recipe, config, root=root, seed=seed, device=device,
                                     progress=progress, checkpoint=checkpoint)
    resumed_from = None
    if checkpoint.exists():
        try:
            trainer.restore(checkpoint, model)
            resumed_from = len(trainer.history)
        except ValueError as e:     # what restore says of a truncated or foreign file
            # Kept aside, not deleted: anything else (out of memory, a bug) propagates and
            # leaves the checkpoint, with its hours of training, where it is.
            bad = checkpoint.with_name(checkpoint.name + ".bad")
            checkpoint.replace(bad)
            print(f"warning: cannot resume from {checkpoint} ({e}); moved it to {bad} and "
                  f"training this run from the start", flush=True)
    try:
        trainer.fit(model, data)
        diverged = None
    except FloatingPointError as e:     # a learning rate too high: a result, not a crash
        diverged = str(e)
    if trainer.interrupted:
        raise KeyboardInterrupt
    if diverged:
        scores = {"train_loss": None, "train_acc": None, "val_acc": None, "test_acc": None,
                  "diverged": diverged}
    else:
        _, train_acc = trainer.evaluate(model, data.fit_dataloader())
        scores = {"train_loss": trainer.history[-1]["train_loss"], "train_acc": train_acc,
                  "val_acc": trainer.history[-1]["val_acc"], **trainer.test(model, data)}
        X, _ = next(iter(data.val_dataloader()))
        scores.update(params=count_parameters(model),
                      flops=counted_flops(model, X.to(trainer.device)))
    record = {
        "experiment": experiment, "label": label, "config": config, "recipe": recipe,
        "seed": seed, **scores, "epochs": recipe["epochs"], "history": trainer.history,
        "seconds": sum(h["seconds"] for h in trainer.history),   # training + val passes
        "command": f"python -m d2l_ext ablate {experiment} --seeds {seed}"
                   + (f" --epochs {epochs}" if epochs else ""),
        "torch": torch.__version__, "device": str(trainer.device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
    }
    if trainer.device.type == "cuda":   # which GPU, and in what precision it trained there
        record.update(gpu=torch.cuda.get_device_name(trainer.device), bf16=trainer.bf16)
    if "flip" in AUGMENTATIONS[recipe["augment"]] and not diverged:
        # Trained on mirror images too: what averaging each test image with its mirror gives.
        record["test_acc_flip_tta"] = accuracy(model, data.test_dataloader(), tta="flip")
    if resumed_from is not None:
        record["resumed_after_epoch"] = resumed_from
    _write_json(path, record)
    checkpoint.unlink(missing_ok=True)
    return record


def _claim(path):
    """A lock file beside ``path`` holding this process's PID and host, or None if a live
    process holds it: two ``ablate`` calls (say, one per CPU core) share an experiment's
    runs. A lock left by a process that died is taken over (``locks.take_lock``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    return lock if take_lock(lock) is None else None


def _readable_record(path):
    """The run record ``path`` holds (a JSON object with its test accuracy), or None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "test_acc" in record else None


def _write_json(path, record):
    """A run is either complete on disk or absent: write a temporary file, then rename.
    The temporary file is removed on every path that runs code (a full disk, Ctrl-C);
    one a SIGKILL leaves, the run's next attempt removes (``run_one``)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def run_experiment(experiment, seeds=None, out="results", device="auto", root="data",
                   progress="terminal", epochs=None, log=print):
    """Run every row x seed of one experiment that has no result file yet (``seeds``: the
    same for every row; by default ``row_seeds``). A sweep (``SWEEPS``) then runs the
    extensions its results ask for, until there are none."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    recipe, folder = _run_recipe(experiment, epochs)
    if folder == experiment:
        epochs = None       # the recipe's own epochs: the recorded command needs no --epochs
    done, rows_seen = [], set()
    while True:
        rows = (sweep_rows(out, experiment) if experiment in SWEEPS and folder == experiment
                else EXPERIMENTS[experiment][1])
        rows = [(label, row_config(experiment, config, out))   # lr looked up before any work
                for label, config in rows if label not in rows_seen]
        if not rows:
            return done
        rows_seen.update(label for label, _ in rows)
        runs = [(seed, label, config)
                for seed in sorted({s for label, _ in rows
                                    for s in (seeds or row_seeds(experiment, label))})
                for label, config in rows
                if seed in (seeds or row_seeds(experiment, label))]   # seed 0 of every row first
        for seed, label, config in runs:
            path = _result_path(out, folder, label, seed)
            if _finished(path, config, recipe, experiment, label, seed, log):
                continue
            record = _run_or_copy(experiment, label, config, seed, path, recipe, out,
                                  device, root, progress, epochs, log)
            if record is not None:
                done.append(path)


def _finished(path, config, recipe, experiment, label, seed, log):
    """Whether ``path`` holds this run's record. A file from other settings (the sweep chose
    another rate since) is moved to ``archive/stale/`` and the run is done again; an empty
    or cut-short file (a full disk, a copy) is not a result either."""
    if not path.exists():
        return False
    record = _readable_record(path)
    if record is None:
        log(f"[{experiment}] {label} seed {seed}: warning: {path} is empty or not a "
            f"readable result file; training this run again")
        return False
    if (record.get("config"), record.get("recipe")) == (config, recipe):
        log(f"[{experiment}] {label} seed {seed}: done already ({path})")
        return True
    stale = path.parent.parent / "archive" / "stale" / path.parent.name / path.name
    stale.parent.mkdir(parents=True, exist_ok=True)
    path.replace(stale)
    log(f"[{experiment}] {label} seed {seed}: {path} ran other settings "
        f"(lr {record.get('config', {}).get('lr')}, now {config.get('lr')}): moved to "
        f"{stale}; training this run again")
    return False


def _run_or_copy(experiment, label, config, seed, path, recipe, out, device, root, progress,
                 epochs, log):
    """Copy the record of the same run made for another table, or train it (under a lock
    shared with other ``ablate`` processes); the record, or None if another process has it."""
    twin = _same_run_elsewhere(out, config, recipe, seed)
    if twin is not None:    # same model, recipe and seed: one run serves both tables
        path.parent.mkdir(parents=True, exist_ok=True)
        record = dict(twin, experiment=experiment, label=label,
                      copied_from=f"{twin['experiment']}/{twin['label']}")
        _write_json(path, record)
        log(f"[{experiment}] {label} seed {seed}: same run as {twin['experiment']}/"
            f"{twin['label']}, copied")
        return record
    lock = _claim(path)
    if lock is None:
        log(f"[{experiment}] {label} seed {seed}: being trained by another process")
        return None
    resuming = (" (resuming from its checkpoint)"
                if checkpoint_path(path, config, recipe).exists() else "")
    log(f"[{experiment}] {label} seed {seed}: training{resuming}"
        + (f", lr {config['lr']:g}" if "lr" in config else ""))
    try:
        record = run_one(experiment, label, config, seed, path, recipe,
                         device, root, progress, epochs)
    finally:
        release_lock(lock)
    if record.get("diverged"):
        log(f"[{experiment}] {label} seed {seed}: diverged: {record['diverged']} -> {path}")
    else:
        log(f"[{experiment}] {label} seed {seed}: train loss {record['train_loss']:.3f}, "
            f"val acc {record['val_acc']:.4f}, test acc {record['test_acc']:.4f} "
            f"in {record['seconds']:.0f}s -> {path}")
    return record


def _run_recipe(experiment, epochs=None):
    """The experiment's recipe with ``epochs`` applied, and the folder its runs go to."""
    recipe_name = EXPERIMENTS[experiment][0]
    # Runs with other epochs than the recipe's go to their own folder ("full-100ep"), so
    # they neither count as the recipe's runs nor mix into its table.
    if epochs == RECIPES[recipe_name]["epochs"]:
        epochs = None
    folder = f"{experiment}-{epochs}ep" if epochs else experiment
    recipe = dict(RECIPES[recipe_name], **({"epochs": epochs} if epochs else {}))
    if epochs and recipe.get("warmup", 0) >= epochs:    # as train clamps it: a short run works
        recipe["warmup"] = clamp_warmup(recipe["warmup"], epochs)
    return recipe, folder


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


def estimate_experiment(experiment, seeds=None, out="results", device="auto",
                        root="data", epochs=None, batches=20, warmup=3, log=print):
    """How long ``run_experiment`` would take here, from a few timed batches per row.

    A GPU recipe can take hours on a laptop; this says so in a minute, before a run is
    started. Each row's model trains ``warmup + batches`` batches of the recipe (its
    augmentation, input size and batch size) and is evaluated on as many validation batches;
    an epoch is projected from the per-batch times, a run from the epochs. Runs whose
    JSON file exists are not counted. Returns one dict per row.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    if batches < 1 or warmup < 0:
        raise ValueError(f"batches must be >= 1 and warmup >= 0, got {batches} and {warmup}")
    recipe, folder = _run_recipe(experiment, epochs)
    data = recipe_data(recipe, root)
    rows = []
    for label, config in EXPERIMENTS[experiment][1]:
        config = row_config(experiment, config, out) if experiment in SWEPT else config
        pending = [s for s in (seeds or row_seeds(experiment, label))  # neither written
                   # nor copyable from a twin
                   if not _result_path(out, folder, label, s).exists()
                   and _same_run_elsewhere(out, config, recipe, s) is None]
        _, model, trainer = build_run(recipe, config, data, seed=0, device=device,
                                      progress="none")
        trainer.setup(model, data)
        log(f"[{experiment}] {label}: timing {warmup} + {batches} training and validation batches "
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
        try:
            record = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue        # load_results names it when its own experiment is read
        if not isinstance(record, dict) or not {"config", "recipe", "seed"} <= record.keys():
            continue        # not a whole run record: not a twin
        if (record["config"], record["recipe"], record["seed"]) == (config, recipe, seed):
            return record
    return None



def load_results(experiment, out="results"):
    """Every run record of an experiment; an unreadable file is an error naming it."""
    records = []
    for path in sorted((Path(out) / experiment).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a readable result file ({e}); delete it and run "
                             f"the experiment again to redo that run") from None
    return records
