"""``results/<experiment>/*.json`` -> tables, intervals and plots. Reads files only.

Every number in README and notebook 05 is rendered from here, so it can be traced to a
file and the command that wrote it.
"""
import math
import statistics
from pathlib import Path

import torch

from .experiments import EXPERIMENTS, REPORT, SWEPT, load_results, network_of
from .recipes import RECIPES

__all__ = ["summarize", "fit_verdict", "difference", "markdown_table", "differences_table",
           "lr_sweep_table", "plot_experiment", "render_all", "T_975"]

#: Two-sided 95% quantiles of Student's t by degrees of freedom (1-30); beyond, 1.96-ish.
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

#: A network that classifies less than this fraction of its own 500 training images
#: correctly (in eval mode) after its last epoch has not fit them: it underfits.
FITS_TRAINING_SET = 0.95
#: A network that fits its training images and is this much worse on validation images
#: overfits: it learned the 500 images, not the classes.
OVERFIT_GAP = 0.15


def _t975(df):
    return T_975[min(max(int(df), 1), len(T_975)) - 1] if df < len(T_975) else 1.96


def _mean_std(values):
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fit_verdict(train_acc, val_acc):
    """'underfit', 'overfit' or 'neither', from training and validation accuracy."""
    if train_acc < FITS_TRAINING_SET:
        return "underfit"
    return "overfit" if train_acc - val_acc >= OVERFIT_GAP else "neither"


def summarize(experiment, out="results"):
    """Rows in the experiment's order: label, n, lr, final train loss and accuracy,
    validation and test accuracy (mean and std over seeds), the report's number, s/run."""
    records = load_results(experiment, out)
    rows = []
    for label, _ in EXPERIMENTS[experiment][1]:
        every = [r for r in records if r["label"] == label]
        mine = [r for r in every if not r.get("diverged")]
        get = lambda key: [r[key] for r in mine if key in r]  # noqa: E731
        row = {"label": label, "n": len(mine), "diverged": len(every) - len(mine),
               "report": REPORT.get(experiment, {}).get(label),
               "lr": sorted({r["config"].get("lr", r["recipe"]["lr"]) for r in mine}),
               "seconds": statistics.mean([r["seconds"] for r in every]) if every else math.nan,
               "test_accs": get("test_acc")}
        for key in ("train_loss", "train_acc", "val_acc", "test_acc"):
            row[key], row[key + "_std"] = _mean_std(get(key))
        tta = get("test_acc_flip_tta")
        row["flip_tta_mean"] = statistics.mean(tta) if tta else None
        row["verdict"] = (fit_verdict(row["train_acc"], row["val_acc"])
                          if not math.isnan(row["train_acc"]) else "–")
        rows.append(row)
    return rows


def difference(a, b):
    """Mean of ``a`` minus mean of ``b`` and its 95% confidence interval (Welch's t), for
    two lists of per-seed accuracies; the interval is None with fewer than 2 seeds each."""
    diff = statistics.mean(a) - statistics.mean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _t975(df) * se
    return diff, (diff - half, diff + half)


def _pct(x, std=None, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.{digits}f}%" + (f" ± {100 * std:.{digits}f}" if std is not None else "")


def markdown_table(experiment, out="results"):
    """The experiment's table in Markdown: ours beside the report's, with the fit verdict."""
    recipe_name = EXPERIMENTS[experiment][0]
    rows = summarize(experiment, out)
    tta = any(r["flip_tta_mean"] is not None for r in rows)
    lines = ["| configuration | lr | train loss | train acc | val acc | test acc (mean ± std) "
             "| seeds | report | fit | s/run |" + (" test acc, flip TTA |" if tta else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if tta else "")]
    for r in rows:
        if not r["n"]:
            lines.append(f"| {r['label']} | – | – | – | – | "
                         + (f"diverged ({r['diverged']} seeds)" if r["diverged"] else "not run")
                         + " | 0 | "
                         f"{_pct(r['report'])} | – | – |" + (" – |" if tta else ""))
            continue
        line = (f"| {r['label']} | {', '.join(f'{lr:g}' for lr in r['lr'])} "
                f"| {r['train_loss']:.3f} | {_pct(r['train_acc'])} | {_pct(r['val_acc'])} "
                f"| {_pct(r['test_acc'], r['test_acc_std'])} | {r['n']}"
                + (f" (+{r['diverged']} diverged)" if r["diverged"] else "")
                + f" | {_pct(r['report'])} "
                f"| {r['verdict']} | {r['seconds']:.0f} |")
        if tta:
            line += f" {_pct(r['flip_tta_mean'], digits=2)} |"
        lines.append(line)
    recipe = dict(RECIPES[recipe_name])
    if experiment in SWEPT:     # the recipe's own lr is not used: each row has its network's
        recipe["lr"] = "each network's, from lr-sweep"
    lines += ["", f"Recipe `{recipe_name}`: " + ", ".join(f"{k}={v}" for k, v in recipe.items())
              + f". Regenerate: `python -m d2l_ext ablate {experiment}` ({cost(experiment, out)})."]
    return "\n".join(lines)


def cost(experiment, out="results"):
    """How long the experiment's runs took, from their records: what regenerating the table
    from nothing costs ('N runs, about X min on K thread(s)'). Runs shared with another
    table are trained once and copied, so all tables together cost less than the sum."""
    records = load_results(experiment, out)
    minutes = sum(r.get("seconds", 0) for r in records) / 60
    threads = sorted({r.get("threads") for r in records if r.get("threads")})
    return (f"{len(records)} runs, about {minutes:.0f} min on "
            f"{'/'.join(map(str, threads)) or '?'} thread(s) of a 2-core CPU")


def differences_table(experiment, out="results", reference=0):
    """Each row's test accuracy minus the reference row's, with a 95% interval (Welch)."""
    rows = summarize(experiment, out)
    ref = rows[reference]
    lines = [f"| {experiment}: difference in test accuracy | mean | 95% interval | verdict |",
             "|---|---|---|---|"]
    for r in rows:
        if r is ref or len(r["test_accs"]) == 0 or len(ref["test_accs"]) == 0:
            continue
        diff, ci = difference(r["test_accs"], ref["test_accs"])
        if ci is None:
            verdict, interval = "too few seeds", "–"
        else:
            interval = f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"
            verdict = "within noise" if ci[0] <= 0 <= ci[1] else "real"
        lines.append(f"| {r['label']} − {ref['label']} | {100 * diff:+.1f} points | {interval} "
                     f"| {verdict} |")
    return "\n".join(lines)


def lr_sweep_table(out="results"):
    """Validation accuracy per network and learning rate, the chosen one in bold."""
    from .experiments import selected_lr, NETWORKS
    from .recipes import LR_GRID
    records = load_results("lr-sweep", out)
    lines = ["| network | " + " | ".join(f"lr {lr:g}" for lr in LR_GRID) + " | chosen |",
             "|---|" + "---|" * (len(LR_GRID) + 1)]
    for name in NETWORKS:
        cells, chosen = [], None
        try:
            chosen = selected_lr(name, out)
        except FileNotFoundError:
            pass
        for lr in LR_GRID:
            r = [x for x in records if network_of(x["config"]) == name and x["config"]["lr"] == lr]
            if not r:
                cell = "–"
            elif r[0].get("diverged"):
                cell = f"diverged (epoch {len(r[0]['history']) + 1})"
            else:
                cell = f"{_pct(r[0]['val_acc'])} (loss {r[0]['train_loss']:.2f})"
            cells.append(f"**{cell}**" if lr == chosen else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {chosen if chosen else '–'} |")
    return "\n".join(lines) + ("\n\nValidation accuracy after the last epoch (training loss in "
                               "brackets), seed 0. Regenerate: `python -m d2l_ext ablate "
                               f"lr-sweep --seeds 0` ({cost('lr-sweep', out)}).")


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


def render_all(out="results", log=print):
    """results/<experiment>.md and .png for every experiment with runs."""
    from .plotting import save_figure
    written = []
    for name in EXPERIMENTS:
        if not load_results(name, out):
            continue
        path = Path(out) / f"{name}.md"
        if name == "lr-sweep":
            text = lr_sweep_table(out)
        else:
            text = markdown_table(name, out) + "\n\n" + differences_table(name, out)
        path.write_text(f"## {name}\n\n{text}\n")
        if name == "lr-sweep":      # 20 curves on one plot say less than the table
            log(f"wrote {path}")
            written.append(path)
            continue
        axes = plot_experiment(name, out)
        save_figure(axes[0].figure, path.with_suffix(".png"))
        log(f"wrote {path} and {path.with_suffix('.png')}")
        written.append(path)
    return written
