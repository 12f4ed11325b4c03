"""``results/<experiment>/*.json`` -> tables, intervals and plots. Reads files only.

Every number in README and notebook 05 is rendered from here, so it can be traced to a
file and the command that wrote it.
"""
import json
import math
import re
import statistics
from pathlib import Path

import torch

from . import stats
from .experiments import EXPERIMENTS, REPORT, SWEEPS, SWEPT, network_of, sweep_of
from .experiments import load_results as _read_records

from .recipes import DATA_SIZE_RECIPES, DATA_SIZES, LR_EXTENDED, RECIPES

__all__ = ["summarize", "compare_rows", "markdown_table", "differences_table",
           "lr_sweep_table", "data_size_table", "plot_data_size", "findings_table",
           "plot_experiment", "render_table", "render_docs", "render_all",
           "CONVENTION"]

#: Said once, under every table of differences.
CONVENTION = ("Rows: mean ± SD over seeds. Differences: mean of the per-seed differences "
              "with a paired 95% t interval where the rows share seeds (Welch otherwise); "
              "an interval that contains 0 means no difference was detected, and its ends "
              "say how large one could still be. Intervals cover seed noise only: the "
              "training images are one fixed draw.")


#: What the tables and plots read from a run record, by type: every record, the sweep's,
#: the other experiments'. A record without one (a file edited by hand, padded after a
#: crash, from another tool) is named with the field, instead of a ``KeyError: 'label'``
#: from deep inside a table.
_NUMBER, _MAYBE = (int, float), (int, float, type(None))
_EVERY = {"label": str, "config": dict, "seed": int}
_SWEEP = {"finished": {"train_loss": _NUMBER, "val_acc": _MAYBE}, "diverged": {"history": list}}
_TABLE = {"every": {"recipe": dict, "seconds": _NUMBER, "history": list},
          "finished": {"train_loss": _NUMBER, "val_acc": _NUMBER, "test_acc": _NUMBER}}


def load_results(experiment, out="results"):
    """``experiments.load_results``, each record checked for the fields the tables read:
    a ``ValueError`` naming the file and the fields, and what to do."""
    records = _read_records(experiment, out)    # names a file that is not JSON
    paths = sorted((Path(out) / experiment).glob("*.json"))     # the order it read them in
    for path, record in zip(paths, records):
        problem = _record_problem(record, experiment in SWEEPS)
        if problem:
            raise ValueError(f"{path} is not a whole run record ({problem}); delete it and "
                             f"run the experiment again to redo that run")
    return records


def _record_problem(record, sweep):
    """What is missing from a run record (of the sweep, or of another experiment), or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    diverged = bool(record.get("diverged"))
    wanted = dict(_EVERY)
    if sweep:
        wanted.update(_SWEEP["diverged" if diverged else "finished"])
    else:
        wanted.update(_TABLE["every"], **({} if diverged else _TABLE["finished"]))
    bad = [k for k, kind in wanted.items() if not isinstance(record.get(k), kind)]
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    if "model" not in config:
        bad.append("config.model")
    if "lr" not in config and "lr" not in (record.get("recipe") or {}):
        bad.append("an lr in config or recipe")
    rows = record.get("history") if isinstance(record.get("history"), list) else []
    if not sweep and not diverged and not all(
            isinstance(h, dict) and isinstance(h.get("train_loss"), _NUMBER)
            and isinstance(h.get("val_acc"), _NUMBER) for h in rows):
        bad.append("history rows with train_loss and val_acc")
    return f"{', '.join(bad)}: missing or of the wrong type" if bad else None


def _mean_std(values):
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(experiment, out="results"):
    """Rows in the experiment's order: label, n, lr, final train loss and accuracy,
    validation and test accuracy (mean and std over seeds; ``test_by_seed`` for paired
    comparisons), the train − validation gap, the report's number, s/run."""
    records = load_results(experiment, out)
    rows = []
    for label, _ in EXPERIMENTS[experiment][1]:
        every = [r for r in records if r.get("label") == label]
        mine = [r for r in every if not r.get("diverged")]
        get = lambda key: [r[key] for r in mine if key in r]  # noqa: E731
        row = {"label": label, "n": len(mine), "diverged": len(every) - len(mine),
               "report": REPORT.get(experiment, {}).get(label),
               "lr": sorted({r["config"].get("lr", r["recipe"]["lr"]) for r in mine}),
               "seconds": statistics.mean([r["seconds"] for r in every]) if every else math.nan,
               "devices": sorted({_device_type(r) for r in every}),
               "test_accs": get("test_acc"),
               "test_by_seed": {r["seed"]: r["test_acc"] for r in mine}}
        for key in ("train_loss", "train_acc", "val_acc", "test_acc"):
            row[key], row[key + "_std"] = _mean_std(get(key))
        row["gap"] = row["train_acc"] - row["val_acc"]
        row["params"] = next((r["params"] for r in mine if "params" in r), None)
        row["flops"] = next((r["flops"] for r in mine if "flops" in r), None)
        tta = get("test_acc_flip_tta")
        row["flip_tta_mean"] = statistics.mean(tta) if tta else None
        rows.append(row)
    return rows


def compare_rows(experiment, a, b, out="results", other=None):
    """Test accuracy of row ``a`` minus row ``b`` (``b`` from experiment ``other`` if given),
    paired by seed (``stats.compare``)."""
    rows = {r["label"]: r for r in summarize(experiment, out)}
    others = rows if other is None else {r["label"]: r for r in summarize(other, out)}
    return stats.compare(rows[a]["test_by_seed"], others[b]["test_by_seed"])


def _pct(x, std=None, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.{digits}f}%" + (f" ± {100 * std:.{digits}f}" if std is not None else "")


def markdown_table(experiment, out="results"):
    """The experiment's table in Markdown: ours beside the report's, with the train − val gap."""
    recipe_name = EXPERIMENTS[experiment][0]
    rows = summarize(experiment, out)
    tta = any(r["flip_tta_mean"] is not None for r in rows)
    size = experiment in ("cardinality", "cardinality-full")  # parameters and FLOPs: the point
    lines = ["| configuration | lr | train loss | train acc | val acc | test acc (mean ± std) "
             "| seeds | report | train − val | s/run |" + (" test acc, flip TTA |" if tta else "")
             + (" parameters | MFLOPs |" if size else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if tta else "")
             + ("---|---|" if size else "")]
    for r in rows:
        if not r["n"]:
            lines.append(f"| {r['label']} | – | – | – | – | "
                         + (f"diverged ({r['diverged']} seeds)" if r["diverged"] else "not run")
                         + " | 0 | "
                         f"{_pct(r['report'])} | – | – |" + (" – |" if tta else "")
                         + (" – | – |" if size else ""))
            continue
        line = (f"| {r['label']} | {', '.join(f'{lr:g}' for lr in r['lr'])} "
                f"| {r['train_loss']:.3f} | {_pct(r['train_acc'])} | {_pct(r['val_acc'])} "
                f"| {_pct(r['test_acc'], r['test_acc_std'])} | {r['n']}"
                + (f" (+{r['diverged']} diverged)" if r["diverged"] else "")
                + f" | {_pct(r['report'])} "
                f"| {100 * r['gap']:.1f} points | {r['seconds']:.0f}{_on_gpu(r['devices'])} |")
        if tta:
            line += f" {_pct(r['flip_tta_mean'], digits=2)} |"
        if size:
            line += f" {r['params']:,} | {r['flops'] / 1e6:.1f} |"
        lines.append(line)
    recipe = dict(RECIPES[recipe_name])
    if experiment in SWEPT:     # the recipe's own lr is not used: each row has its network's
        sweeps = sorted({SWEPT[experiment] or sweep_of(network_of(c))
                         for _, c in EXPERIMENTS[experiment][1]})
        recipe["lr"] = f"each network's, from {' and '.join(sweeps)}"
    lines += ["", f"Recipe `{recipe_name}`: " + ", ".join(f"{k}={v}" for k, v in recipe.items())
              + f". Regenerate: `python -m d2l_ext ablate {experiment}` ({cost(experiment, out)})."
              + (f" {GPU_NOTE}" if any("cuda" in r["devices"] for r in rows) else "")]
    return "\n".join(lines)


def _device_type(record):
    """'cpu' or 'cuda': where a run trained (its record's ``device``, 'cuda:0' as 'cuda')."""
    return str(record.get("device", "cpu")).split(":")[0]


def _on_gpu(devices):
    """The mark an s/run cell gets when its runs trained on a GPU: their seconds are not
    this CPU's."""
    return {("cuda",): " (GPU)", ("cpu", "cuda"): " (CPU and GPU)"}.get(tuple(devices), "")


#: What a table says of its GPU rows: the recipes' ``amp=True`` trains in bf16 there.
GPU_NOTE = ("GPU: trained on a GPU, with bf16 autocast (the recipes' `amp=True`) and the "
            "initial weights and batch order drawn by the GPU's generator, so its seeds pair "
            "with the CPU rows' by training images only; its seconds are not this CPU's (and "
            "runs that shared the GPU took longer than one alone). The other rows ran on the "
            "CPU in fp32. The same run trained on both: `results/device_check.md`.")


def cost(experiment, out="results"):
    """How long the experiment's runs took, from their records: what regenerating the table
    from nothing costs ('N runs, about X min on K thread(s)'; runs made on a GPU counted
    apart). Runs shared with another table are trained once and copied, so all tables
    together cost less than the sum."""
    return _cost(load_results(experiment, out))


def _cost(records):
    cpu = [r for r in records if _device_type(r) == "cpu"]
    gpu = [r for r in records if _device_type(r) != "cpu"]
    threads = sorted({r.get("threads") for r in cpu if r.get("threads")})
    text = (f"{len(records)} runs, about {sum(r.get('seconds', 0) for r in cpu) / 60:.0f} min "
            f"on {'/'.join(map(str, threads)) or '?'} thread(s)")
    if gpu:
        text += (f" for the {len(cpu)} on the CPU; the {len(gpu)} on a GPU took about "
                 f"{sum(r.get('seconds', 0) for r in gpu) / 60:.0f} min")
    return text


def differences_table(experiment, out="results", reference=0):
    """Each row's test accuracy minus the reference row's: mean, 95% interval, verdict."""
    rows = summarize(experiment, out)
    ref = rows[reference]
    lines = [f"| {experiment}: difference in test accuracy | mean | 95% interval | verdict |",
             "|---|---|---|---|"]
    for r in rows:
        if r is ref or not r["test_by_seed"] or not ref["test_by_seed"]:
            continue
        c = stats.compare(r["test_by_seed"], ref["test_by_seed"])
        interval = "–" if c.low is None else f"[{100 * c.low:+.1f}, {100 * c.high:+.1f}]"
        lines.append(f"| {r['label']} − {ref['label']} | {100 * c.diff:+.1f} points | "
                     f"{interval} | {stats.verdict(c)} |")
    return "\n".join(lines) + "\n\n" + CONVENTION


def lr_sweep_table(out="results", sweep="lr-sweep"):
    """Validation accuracy per network of ``sweep`` and learning rate, the chosen one in bold."""
    from .experiments import selected_lr
    records = load_results(sweep, out)
    rates = [lr for lr in LR_EXTENDED if any(r["config"]["lr"] == lr for r in records)]
    lines = ["| network | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
             "|---|" + "---|" * (len(rates) + 1)]
    for name in SWEEPS[sweep]:
        cells, chosen = [], None
        try:
            chosen = selected_lr(name, out, sweep)
        except FileNotFoundError:
            pass
        for lr in rates:
            r = [x for x in records if network_of(x["config"]) == name and x["config"]["lr"] == lr]
            if not r:
                cell = "–"
            elif r[0].get("diverged"):
                cell = f"diverged (epoch {len(r[0]['history']) + 1})"
            else:
                cell = f"{_pct(r[0]['val_acc'])} (loss {r[0]['train_loss']:.2f})"
            cells.append(f"**{cell}**" if lr == chosen else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {chosen if chosen else '–'} |")
    return "\n".join(lines) + ("\n\nValidation accuracy after the last epoch (training loss "
                               "in brackets), seed 0; – not run: the sweep goes past an edge "
                               "of the grid only where the best rate sits there. Regenerate: "
                               f"`python -m d2l_ext ablate {sweep} --seeds 0` "
                               f"({cost(sweep, out)}).")


def plot_experiment(experiment, out="results", axes=None):
    """Training loss (log scale) and validation accuracy per epoch, one line per row
    (mean over seeds, the seeds' range shaded): two panels, so neither scale flattens
    the other."""
    from .plotting import log_scale, plt
    records = load_results(experiment, out)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax, acc_ax = axes
    for label, _ in EXPERIMENTS[experiment][1]:
        mine = [r for r in records if r["label"] == label and not r.get("diverged")]
        if not mine:
            continue
        color = None
        for ax, key in ((loss_ax, "train_loss"), (acc_ax, "val_acc")):
            curves = torch.tensor([[h[key] for h in r["history"]] for r in mine])
            epochs = range(1, curves.shape[1] + 1)
            line, = ax.plot(epochs, curves.mean(0), label=label, color=color)
            color = line.get_color()
            ax.fill_between(epochs, curves.min(0).values, curves.max(0).values, color=color,
                            alpha=0.15)
    log_scale(loss_ax); loss_ax.set_ylabel("training loss (log scale)")
    acc_ax.set_ylabel("validation accuracy")
    for ax in axes:
        ax.set_xlabel("epoch"); ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7)
    loss_ax.figure.suptitle(experiment)
    loss_ax.figure.tight_layout()
    return axes


#: ``benchmarks/device_check.py``'s folder under ``results/``: GPU runs trained again on the CPU.
DEVICE_CHECK = "device_check"


def device_check_table(out="results"):
    """Each checked run on the GPU (its record in its table) and its twin trained on the CPU
    (``results/device_check/``): test accuracy of both and the difference, in the tables'
    order."""
    order = list(EXPERIMENTS)
    lines = ["| run | GPU (bf16 autocast) | CPU (fp32) | CPU − GPU |", "|---|---|---|---|"]
    for path in sorted((Path(out) / DEVICE_CHECK).glob("*/*.json"),
                       key=lambda p: (order.index(p.parent.name), p.name)):
        cpu = json.loads(path.read_text())
        gpu = json.loads((Path(out) / cpu["gpu_record"]).read_text())
        lines.append(f"| {cpu['experiment']} / {cpu['label']}, seed {cpu['seed']} "
                     f"| {100 * gpu['test_acc']:.1f}% | {100 * cpu['test_acc']:.1f}% "
                     f"| {100 * (cpu['test_acc'] - gpu['test_acc']):+.1f} points |")
    return ("\n".join(lines) + "\n\nTest accuracy of one run trained twice: on a GPU (the record "
            "in its table; bf16 autocast) and again on this CPU (fp32), with the same recipe, "
            "training images and seed; the initial weights and the batch order are drawn by "
            "each device's own generator, so they differ too. Regenerate: `python "
            "benchmarks/device_check.py EXPERIMENT/LABEL:SEED ...`.")


def render_table(name, out="results"):
    """The Markdown of ``results/<name>.md``: the sweep's table, or the experiment's table
    with its differences."""
    if name in SWEEPS:
        return lr_sweep_table(out, name)
    if name == "data-size":
        return data_size_table(out)
    if name == DEVICE_CHECK:
        return device_check_table(out)
    if name.startswith("findings"):
        return findings_table(out, lang=name.split("-", 1)[1] if "-" in name else "en")
    return markdown_table(name, out) + "\n\n" + differences_table(name, out)


def _size_rows(out):
    """{network label: {images a class: summarize() row}} over the data-size experiments."""
    table = {}
    for n in DATA_SIZES:
        for r in summarize(f"data-size-{n}", out):
            table.setdefault(r["label"], {})[n] = r
    return table


def _mean_interval(values):
    """(mean, half-width of its 95% t interval) over seeds; half-width None with one seed."""
    if not values:
        return None, None
    m = statistics.mean(values)
    if len(values) < 2:
        return m, None
    return m, stats.t_quantile(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


#: The data-size comparisons: (row a, row b), each at every size, paired by seed.
DATA_SIZE_PAIRS = [("ResNeXt18, dropout 0.2/0.4", "baseline CNN"),
                   ("ResNeXt18, no dropout", "baseline CNN"),
                   ("ResNet-18", "baseline CNN"),
                   ("ResNeXt18, no dropout", "ResNet-18"),
                   ("ResNeXt18, dropout 0.2/0.4", "ResNeXt18, no dropout")]


def data_size_table(out="results"):
    """Test accuracy per network and training-set size (mean, 95% interval of the mean,
    seeds; training accuracy at the end), then the paired differences at each size."""
    rows = _size_rows(out)
    head = " | ".join(f"{n:,} a class" for n in DATA_SIZES)
    lines = [f"| network | {head} |", "|---|" + "---|" * len(DATA_SIZES)]
    for label, by_size in rows.items():
        cells = []
        for n in DATA_SIZES:
            r = by_size.get(n)
            m, h = _mean_interval(r["test_accs"] if r else [])
            cells.append("–" if m is None else
                         f"{100 * m:.1f}%" + (f" ± {100 * h:.1f}" if h is not None else "")
                         + f" ({r['n']}; train {100 * r['train_acc']:.0f}%"
                         + ("; GPU)" if "cuda" in r["devices"] else ")"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"| difference in test accuracy | {head} |",
              "|---|" + "---|" * len(DATA_SIZES)]
    for a, b in DATA_SIZE_PAIRS:
        cells = []
        for n in DATA_SIZES:
            ra, rb = rows.get(a, {}).get(n), rows.get(b, {}).get(n)
            c = (stats.compare(ra["test_by_seed"], rb["test_by_seed"])
                 if ra and rb and ra["n"] and rb["n"] else None)
            text = ("–" if c is None or c.low is None else
                    f"{100 * c.diff:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}] ({c.n})")
            cells.append(f"**{text}**" if c is not None and c.clear_of_zero else text)
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    epochs = ", ".join(f"{n:,}: {RECIPES[DATA_SIZE_RECIPES[n]]['epochs']}" for n in DATA_SIZES)
    trained = [r for n in DATA_SIZES[1:] for r in load_results(f"data-size-{n}", out)
               if "copied_from" not in r]
    return "\n".join(lines) + (
        "\n\nCells: test accuracy, mean ± half-width of its 95% t interval (seeds; training "
        "accuracy at the end). Each network at the rate `lr-sweep` chose with 100 images a class. "
        f"Epochs by images a class: {epochs} (60 · √(100/n)). Validation (200 a class) and test "
        "(1,000 a class) are the same at every size; each larger training set holds the "
        "smaller ones. Differences: the mean of the per-seed differences, in points, with its "
        "paired 95% t interval (seeds), in bold where the interval is clear of zero; one that "
        "contains 0 means no difference was detected, and its ends say how large one could "
        "still be. Intervals cover seed noise only: each training set is one fixed draw. "
        "Regenerate: `python -m "
        "d2l_ext ablate data-size` (100 a class copies the runs of the tables above; the "
        f"rest: {_cost(trained)})."
        + (f" {GPU_NOTE}" if any(_device_type(r) == "cuda" for r in trained) else ""))


def plot_data_size(out="results", ax=None):
    """Test accuracy against training images a class (log scale), one line per network,
    the 95% interval of the mean as error bars (the networks' points slightly apart)."""
    from .plotting import plt
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    rows = _size_rows(out)
    for i, (label, by_size) in enumerate(rows.items()):
        points = [(n, *_mean_interval(r["test_accs"])) for n, r in sorted(by_size.items())
                  if r["n"]]
        if not points:
            continue
        xs, ms, hs = zip(*points)
        shift = 1 + 0.04 * (i - (len(rows) - 1) / 2)    # side by side, so no bar hides another
        ax.errorbar([x * shift for x in xs], [100 * m for m in ms],
                    yerr=[100 * (h or 0) for h in hs], label=label, marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xticks(DATA_SIZES, [f"{n:,}" for n in DATA_SIZES])
    ax.minorticks_off()
    ax.set_xlabel("training images a class (5 classes)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("data-size: test accuracy, 95% intervals over seeds", fontsize=9)
    ax.figure.tight_layout()
    return ax


#: README's verdicts (the report's three findings, then the paper's on cardinality, on 500
#: images and on all of Fashion-MNIST):
#: (claim, [(experiment, row a, row b), ...]); the first comparison of
#: each decides the verdict, the others are shown beside it.
FINDINGS = [
    ("dropout", [("dropout-4stages", "(0.2, 0.4)", "(0, 0)"),
                 ("dropout-4stages-stock-d2l", "(0.2, 0.4)", "(0, 0)"),
                 ("dropout-3stages", "(0.2, 0.4)", "(0, 0)")]),
    ("stages", [("stages", "3 stages", "4 stages"), ("stages", "4 stages", "5 stages"),
                ("stages-no-dropout", "3 stages", "4 stages"),
                ("stages-no-dropout", "3 stages", "5 stages")]),
    ("baseline", [("baselines", "ResNeXt18 (3 stages, dropout 0.2/0.4)", "baseline CNN")]),
    ("cardinality", [("cardinality", "8x19d", "1x64d"), ("cardinality", "4x29d", "1x64d"),
                     ("cardinality", "2x44d", "1x64d")]),
    ("cardinality_full", [("cardinality-full", "8x19d", "1x64d"),
                          ("cardinality-full", "4x29d", "1x64d"),
                          ("cardinality-full", "2x44d", "1x64d")]),
]

WORDS = {
    "en": dict(
        head="| the report found | here: difference in test accuracy, 95% interval (seeds) | verdict |",
        dropout="dropout (0.2, 0.4) best, on its 4-stage net (65.0% vs 62.8% without)",
        stages="3 stages > 4 > 5, because deeper nets overfit",
        baseline="ResNeXt18 74.4% against a 49.8% course baseline",
        cardinality=("more groups (cardinality) help without adding parameters (the paper: at "
                     "the same parameters and FLOPs, 32x4d beats 1x64d by 1.7 points on "
                     "ImageNet); here templates within 5% of each other"),
        cardinality_full=("the same claim with more data: the templates against 1x64d on all "
                          "of Fashion-MNIST (10 classes, 55,000 training images, 28×28, "
                          "10 epochs)"),
        holds="holds", opposite="does not hold: the opposite is clear of zero",
        unseen="not detected: at most {x:.1f} points either way",
        ranking="ranking: {verdict}", missing="not run yet",
        few="too few seeds for an interval ({n}): `python -m d2l_ext ablate {experiment}` runs the rest",
        sep="; ", colon=": ",
        fit="training accuracy (3 / 4 / 5 stages) with dropout {a}, without {b}",
        names={"dropout-4stages": "4 stages", "dropout-4stages-stock-d2l": "4 stages, stock d2l",
               "dropout-3stages": "3 stages", "stages": "with dropout",
               "stages-no-dropout": "no dropout", "baselines": "", "cardinality": "",
               "cardinality-full": ""},
        short={"ResNeXt18 (3 stages, dropout 0.2/0.4)": "ResNeXt18", "baseline CNN": "CNN"}),
    "zh": dict(
        head="| 报告的结论 | 这里：测试精度之差，95% 置信区间（种子数） | 判断 |",
        dropout="暂退概率 (0.2, 0.4) 最好，在它的 4 阶段网络上（65.0%，不用暂退法 62.8%）",
        stages="3 个阶段 > 4 > 5，因为更深的网络过拟合",
        baseline="ResNeXt18 74.4%，课程基线 49.8%",
        cardinality=("通过增加基数（分组数），可以在不显著增加参数数量的情况下增强模型的性能"
                     "（论文：参数量和计算量相同时，ImageNet 上 32x4d 比 1x64d 高 1.7 个百分点）；"
                     "这里各模板相差不到 5%"),
        cardinality_full=("同一论断，数据更多：在完整的 Fashion-MNIST 上（10 类，55,000 张训练图像，"
                          "28×28，10 轮）比较各模板与 1x64d"),
        holds="成立", opposite="不成立：相反方向的差异，区间不含零",
        unseen="未检测到差异：任一方向至多 {x:.1f} 个百分点",
        ranking="排名：{verdict}", missing="尚未运行",
        few="种子太少，无法给出区间（{n}）：`python -m d2l_ext ablate {experiment}` 会补上其余的运行",
        sep="；", colon="：",
        fit="训练精度（3 / 4 / 5 个阶段）带暂退法 {a}，不带 {b}",
        names={"dropout-4stages": "4 个阶段", "dropout-4stages-stock-d2l": "4 个阶段，原版 d2l 训练",
               "dropout-3stages": "3 个阶段", "stages": "带暂退法",
               "stages-no-dropout": "不带暂退法", "baselines": "", "cardinality": "",
               "cardinality-full": ""},
        short={"ResNeXt18 (3 stages, dropout 0.2/0.4)": "ResNeXt18", "baseline CNN": "CNN",
               "3 stages": "3 阶段", "4 stages": "4 阶段", "5 stages": "5 阶段"}),
}


def _finding_cell(experiment, a, b, out, words):
    c = compare_rows(experiment, a, b, out)
    name = lambda label: words["short"].get(label, label)  # noqa: E731
    where = words["names"][experiment]
    interval = "–" if c.low is None else f"[{100 * c.low:+.1f}, {100 * c.high:+.1f}]"
    return (f"{where + words['colon'] if where else ''}{name(a)} − {name(b)} {100 * c.diff:+.1f} "
            f"{interval} ({c.n})"), c


def _verdict(c, words, experiment):
    if c.low is None:
        return words["few"].format(n=c.n, experiment=experiment)
    if c.clear_of_zero:
        return words["holds"] if c.low > 0 else words["opposite"]
    return words["unseen"].format(x=100 * c.at_most)


def findings_table(out="results", lang="en"):
    """README's table of the report's findings (and the paper's on cardinality), paired by
    seed, from the result files: every number and each verdict (by the first comparison of
    its row) rendered, none typed. A claim whose runs are missing says which command makes them."""
    words = WORDS[lang]
    lines = [words["head"], "|---|---|---|"]
    for claim, comparisons in FINDINGS:
        missing = sorted({e for e, a, b in comparisons
                          if any(not r["n"] for r in summarize(e, out) if r["label"] in (a, b))})
        if missing:
            lines.append(f"| {words[claim]} | {words['missing']}{words['colon']}`python -m d2l_ext ablate "
                         f"{' '.join(missing)}` | – |")
            continue
        cells = [_finding_cell(e, a, b, out, words) for e, a, b in comparisons]
        verdict = _verdict(cells[0][1], words, comparisons[0][0])
        if claim == "stages":
            fits = [" / ".join(f"{100 * r['train_acc']:.0f}%" for r in summarize(e, out))
                    for e in ("stages", "stages-no-dropout")]
            verdict = (words["ranking"].format(verdict=verdict) + words["sep"]
                       + words["fit"].format(a=fits[0], b=fits[1]))
        lines.append(f"| {words[claim]} | {words['sep'].join(t for t, _ in cells)} | {verdict} |")
    return "\n".join(lines)


#: A block of a Markdown page that ``render_docs`` fills with ``results/<name>.md``:
#: ``<!-- rendered: NAME -->`` ... ``<!-- /rendered -->``.
RENDERED = re.compile(r"(<!-- rendered: (?P<name>[\w-]+) -->\n)(?:.*?\n)??(<!-- /rendered -->)",
                      re.S)     # an empty block (a new page's) ends at its own closing marker


def render_docs(path, out="results"):
    """Refill every rendered block of the Markdown page ``path`` from the result files, so
    the page cannot drift from them; returns whether the page changed."""
    path = Path(path)
    text = path.read_text()
    new = RENDERED.sub(lambda m: m.group(1) + render_table(m.group("name"), out) + "\n"
                       + m.group(3), text)
    if new != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new)
        tmp.replace(path)
    return new != text


def render_all(out="results", docs=(), log=print):
    """results/<experiment>.md and .png for every experiment with runs, then the rendered
    blocks of the pages ``docs``."""
    from .plotting import save_figure
    written = []
    for name in EXPERIMENTS:
        if name.startswith("data-size-") or not load_results(name, out):
            continue        # the data-size experiments: one table and one plot, below
        path = Path(out) / f"{name}.md"
        path.write_text(f"## {name}\n\n{render_table(name, out)}\n")
        if name in SWEEPS:          # 32 curves on one plot say less than the table
            log(f"wrote {path}")
            written.append(path)
            continue
        axes = plot_experiment(name, out)
        save_figure(axes[0].figure, path.with_suffix(".png"))
        log(f"wrote {path} and {path.with_suffix('.png')}")
        written.append(path)
    if any(load_results(f"data-size-{n}", out) for n in DATA_SIZES[1:]):
        from .plotting import plt
        path = Path(out) / "data-size.md"
        path.write_text(f"## data-size\n\n{data_size_table(out)}\n")
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        plot_data_size(out, ax)
        save_figure(fig, path.with_suffix(".png"))
        log(f"wrote {path} and {path.with_suffix('.png')}")
        written.append(path)
    if list((Path(out) / DEVICE_CHECK).glob("*/*.json")):
        path = Path(out) / f"{DEVICE_CHECK}.md"
        path.write_text(f"## {DEVICE_CHECK}\n\n{device_check_table(out)}\n")
        log(f"wrote {path}")
        written.append(path)
    for page in docs:
        if render_docs(page, out):
            log(f"updated the tables in {page}")
    return written
