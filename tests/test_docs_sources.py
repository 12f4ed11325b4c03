"""docs/package.md (the main command, the data, the command line), docs/performance.md and
docs/setup.md state only numbers that their sources hold.

Each test reads a source (a log or JSON file under results/, a notebook's stored output, a
constant in d2l_ext/, requirements.txt, pyproject.toml, .ci/run, the installed d2l's metadata,
a commit that recorded a measurement by hand) and asserts the exact text the doc prints, so it
fails when either side changes. tests/test_docs.py covers the rest of performance.md (the
speed, bf16, estimate, flip-TTA and CPU-budget tables and numbers). Files only: no torch import,
no training.
"""
import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ARCHIVE = RESULTS / "archive"


def flat(text):
    """Whitespace collapsed, so that re-wrapping a paragraph does not matter."""
    return " ".join(text.split())


PACKAGE = flat((ROOT / "docs" / "package.md").read_text())
PERFORMANCE = flat((ROOT / "docs" / "performance.md").read_text())
SETUP = flat((ROOT / "docs" / "setup.md").read_text())


def load(path):
    return json.loads(Path(path).read_text())


def defaults(module, function):
    """{argument: default} of ``module.function`` (or of ``Class.__init__`` when
    ``function`` is "Class"), read from the source without importing it (no torch)."""
    tree = ast.parse((ROOT / "d2l_ext" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == function:
            node = next(n for n in node.body if isinstance(n, ast.FunctionDef)
                        and n.name == "__init__")
        elif not (isinstance(node, ast.FunctionDef) and node.name == function):
            continue
        args = node.args.args[len(node.args.args) - len(node.args.defaults):]
        out = {}
        for a, d in zip(args, node.args.defaults):
            try:
                out[a.arg] = ast.literal_eval(d)
            except ValueError:                       # a default that is not a literal
                pass
        return out
    raise LookupError(function)


def constant(module, name):
    """A module-level constant of d2l_ext/<module>.py, read from the source: literals, and
    dicts of ``dict(...)`` calls with literal arguments (``recipes.RECIPES``)."""
    tree = ast.parse((ROOT / "d2l_ext" / f"{module}.py").read_text())

    def value(node):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            return {k.arg: value(k.value) for k in node.keywords}
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        return ast.literal_eval(node)

    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", None) == name for t in targets):
                return value(node.value)
    raise LookupError(name)


def notebook_output(path, startswith):
    """The stored text output of the notebook's code cell whose source starts so."""
    for cell in load(ROOT / path)["cells"]:
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(startswith):
            return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
    raise LookupError(startswith)


def pct(x, digits=2):
    return f"{100 * x:.{digits}f}%"


# ---------------------------------------------------------------- docs/package.md

def main_command_log():
    log = (RESULTS / "main_command.log").read_text()
    acc, epochs, secs = re.search(r"test accuracy: ([0-9.]+) \((\d+) images, read once\) after "
                                  r"(\d+) epochs, (\d+)s of training", log).group(1, 3, 4)
    m, s = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):(\d+)", log).groups()
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
    return log, dict(acc=float(acc), epochs=int(epochs), secs=int(secs), wall=(int(m), int(s)),
                     rss_gib=rss_kib / 2 ** 20)


def test_package_main_command_numbers_come_from_its_log():
    log, n = main_command_log()
    assert log.startswith("$ OMP_NUM_THREADS=1 ") and "# seed 0;" in log.splitlines()[0]
    assert "the 2-core CPU otherwise idle" in log.splitlines()[0]
    assert ("(`results/main_command.log`, seed 0, one thread, the CPU otherwise idle)") in PACKAGE
    assert (f"**{pct(n['acc'])} test accuracy** on the 5,000 test images after {n['epochs']} "
            f"epochs, {n['secs']} s of training, {n['wall'][0]} min {n['wall'][1]} s in all, "
            f"{n['rss_gib']:.1f} GiB of memory (maximum resident set size)") in PACKAGE
    assert "(5000 images, read once)" in log


def test_package_main_command_defaults_are_the_recipe_and_the_log():
    """The code block's comment: the train defaults (recipes.py), as the log ran them."""
    recipe, lr = constant("recipes", "RECIPES")["5class"], constant("recipes", "TRAIN_LR")
    log, n = main_command_log()
    assert n["epochs"] == recipe["epochs"] and f"device: cpu, {recipe['epochs']} epochs" in log
    assert f"# ResNeXt18, 5-class Fashion-MNIST, CPU, {recipe['epochs']} epochs, lr {lr}" in PACKAGE


def test_package_same_seed_same_threads_repeats_the_main_command():
    """The same command with the same code repeats to the last digit; the record in
    results/baselines/ came from an earlier version, and docs/package.md says so."""
    log, n = main_command_log()
    again = (RESULTS / "ddp_accuracy" / "1-process.log").read_text()
    assert again.startswith("python -m d2l_ext train --seed 0 ")
    assert f"test accuracy: {n['acc']:.4f} (5000 images" in again
    first = lambda text: re.search(r"epoch +1 +train loss ([\d.]+)", text).group(1)  # noqa: E731
    assert first(again) == first(log)
    run = load(RESULTS / "baselines" / "resnext18-3-stages-dropout-0-2-0-4__seed0.json")
    assert run["threads"] == 1 and run["seed"] == 0 and run["epochs"] == n["epochs"]
    assert run["config"]["lr"] == constant("recipes", "TRAIN_LR")
    assert (f"also gave {pct(n['acc'])}. The 1-thread seed-0 run of the same recipe in "
            f"`results/baselines/` gave {pct(run['test_acc'])}") in PACKAGE
    assert (f"(its first epoch ends at training loss {run['history'][0]['train_loss']:.4f}, "
            f"this version's at {first(log)})") in PACKAGE


def test_package_command_line_options_exist():
    block = re.search(r"```bash\n(python -m d2l_ext train .*?)```",
                      (ROOT / "docs" / "package.md").read_text(), re.S).group(1)
    cli = (ROOT / "d2l_ext" / "__main__.py").read_text()
    flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", block))
    assert {"--data", "--epochs", "--lr", "--warmup", "--bf16", "--overwrite"} <= flags
    for flag in flags - {"--help"}:
        assert f'"{flag}"' in cli, flag
    assert "--tta flip" in PACKAGE and '"--tta"' in cli and '"flip"' in \
        (ROOT / "d2l_ext" / "evaluation.py").read_text()


def test_package_data_numbers_are_the_data_module_defaults():
    sizes = re.search(r"fashion: (\d+) training and (\d+) test images, (\d+) classes",
                      (RESULTS / "full_gpu_no_erase_35ep.log").read_text())
    n_train, n_test, n_classes = map(int, sizes.groups())              # 60000, 10000, 10
    full = defaults("data", "FashionMNIST")
    val = full["val_per_class"] * n_classes
    assert f"`val` ({full['val_per_class']} images a class held out of the training file" in PACKAGE
    assert f"{n_train - val:,} / {val:,} / {n_test:,} images" in PACKAGE
    assert f"and `test` (the official {n_test:,})" in PACKAGE
    assert f"now holds {val:,} of the {n_train:,} training images out for validation" in PERFORMANCE

    five = defaults("data", "FashionMNIST5")
    names = re.search(r"CLASSES = \[(.*?)\]", (ROOT / "d2l_ext" / "data.py").read_text()).group(1)
    names = [n.strip(" '\"") for n in names.split(",")]
    assert f"{', '.join(names[:-1])} and {names[-1]}" in PACKAGE     # t-shirt, ..., and shirt
    assert f"{five['train_per_class']} training images each" in PACKAGE
    assert (f"`val` {five['val_per_class']} a class from the rest of the training file "
            f"({five['val_per_class'] * len(names):,}:") in PACKAGE
    per_class_test = n_test // n_classes
    assert f"all {per_class_test * len(names):,} official test images" in PACKAGE
    assert f"classes, {five['resize'][0]}×{five['resize'][1]}." in PACKAGE
    log = (RESULTS / "main_command.log").read_text()
    assert (f"{five['train_per_class'] * len(names)} training, {five['val_per_class'] * len(names)}"
            f" validation and {per_class_test * len(names)} test images") in log

    folder = defaults("data", "ImageFolderData")
    assert f"else a seeded {folder['val_fraction']:.0%} of `train` is held out" in PACKAGE
    assert f"an image below {constant('data', 'MIN_IMAGE_SIZE')} px" in PACKAGE


# ---------------------------------------------------------------- docs/performance.md: speed

SPEED = load(RESULTS / "speed.json")


def test_performance_speed_setup_and_ratios_come_from_the_benchmark_file():
    assert (f"batch {SPEED['batch_size']}, training images per second after warm-up, "
            f"{SPEED['batches']} timed batches per row (the last four rows: the best of "
            f"{SPEED['rounds']} interleaved rounds)") in PERFORMANCE
    assert f"(torch {SPEED['torch']}, {SPEED['threads']} threads, nothing else running)" in PERFORMANCE
    assert f"**{SPEED['d2l_ext / d2l.Trainer (same tensors)']:.2f}×**" in PERFORMANCE
    assert f"**{SPEED['d2l_ext / stock d2l end to end']:.2f}×**" in PERFORMANCE
    assert f"bare `channels_last` loop: {SPEED['d2l_ext / bare channels_last']:.2f}×" in PERFORMANCE


def test_performance_matmul_fraction_uses_notebook_3s_flop_count():
    """0.053 GFLOP per training image (notebook 3, solution 5), not the counter's 0.072."""
    out = notebook_output("notebooks/03_resnext_network.ipynb", "# Solution 5")
    fwd, counter_bwd, textbook_bwd = map(float, re.search(
        r"per image: forward ([0-9.]+) MFLOPs; backward, torch's counter ([0-9.]+), "
        r"textbook ([0-9.]+)", out).groups())
    assert f"solution 5: {fwd} MFLOPs forward" in PERFORMANCE
    assert f"every convolution, {textbook_bwd} backward" in PERFORMANCE
    gflop = (fwd + textbook_bwd) / 1000
    assert f"forward and backward: {gflop:.3f} GFLOP (notebook 3, solution 5" in PERFORMANCE
    # the benchmark's counter is the notebook's forward + counter backward (10 classes, not 5)
    assert SPEED["gflop_per_train_image"] == pytest.approx((fwd + counter_bwd) / 1000, abs=1e-3)
    assert f"torch's FLOP counter says {SPEED['gflop_per_train_image']:.3f} GFLOP" in PERFORMANCE
    img_s = SPEED["images_per_s"]["d2l_ext.Trainer, pre-decoded tensors"]
    sgemm = SPEED["sgemm_gflops"]
    gflops = img_s * round(gflop, 3)
    assert f"`torch.matmul` reaches {sgemm:.0f} GFLOP/s" in PERFORMANCE
    assert (f"({img_s:.0f} images/s × {gflop:.3f} GFLOP = {gflops:.0f} GFLOP/s) runs at "
            f"**{gflops / sgemm:.0%}** of the matrix-multiply limit") in PERFORMANCE
    assert f"the script's own {SPEED['d2l_ext fraction of sgemm limit']:.0%} counts with the " \
           f"overcount" in PERFORMANCE
    assert "0.072 GFLOP (forward and backward" not in PERFORMANCE       # the superseded claim


def test_performance_profile_shares_come_from_the_benchmark_profile():
    share = {name: float(p) for name, p in
             re.findall(r"^\s*(aten::\w+)\s+([0-9.]+)%", SPEED["profile"], re.M)}
    assert f"convolution backward ≈ {share['aten::convolution_backward']:.0f}%" in PERFORMANCE
    assert f"forward ≈ {share['aten::mkldnn_convolution']:.0f}% of the CPU time" in PERFORMANCE
    assert f"(`bernoulli_`) ≈ {share['aten::bernoulli_']:.0f}%**" in PERFORMANCE
    bn = share["aten::native_batch_norm_backward"] + share["aten::native_batch_norm"]
    relu = share["aten::threshold_backward"] + share["aten::clamp_min"]
    assert f"batch norm ≈ {bn:.0f}%; ReLU ≈ {relu:.0f}%" in PERFORMANCE


# ---------------------------------------------------------------- docs/performance.md: bf16

def test_performance_bf16_machine_is_the_one_the_file_recorded():
    bench = load(RESULTS / "cpu_bf16.json")
    assert bench["native_bf16"] is True
    assert "the file records `\"native_bf16\": true`" in PERFORMANCE
    assert (f"batch {bench['batch_size']}, {bench['batches']} timed batches, best of "
            f"{bench['rounds']} interleaved rounds, {bench['threads']} threads") in PERFORMANCE
    # One machine per claim: no sentence says the machine without native bf16 has it.
    assert "this cpu has native bf16" not in PERFORMANCE.lower()
    assert "this cpu (amd epyc) has native" not in PERFORMANCE.lower()
    fast = {r["size"]: r["speedup"] for r in bench["rows"]}
    est = re.findall(r"([0-9.]+) h per run of 50 epochs", (RESULTS / "cpu_estimates.log").read_text())
    lo, hi = (float(h) / fast[96] for h in est)
    assert f"bf16 on the CPU ({fast[96]:.2f}× at 96×96" in PERFORMANCE
    assert f"would bring a run to about {lo:.0f}–{hi:.1f} h" in PERFORMANCE


def test_performance_bf16_accuracy_gap_and_epoch_times_come_from_the_logs():
    d = re.search(r"test accuracy: ([0-9.]+)",
                  (RESULTS / "cpu10min_search" / "D_28px_bf16_14ep.log").read_text()).group(1)
    fp32 = load(ARCHIVE / "full-cpu10min-28px-fp32-14ep__seed0.json")
    assert (f"{pct(float(d))} in bf16 (`results/cpu10min_search/D_28px_bf16_14ep.log`) against "
            f"{pct(fp32['test_acc'])} in fp32") in PERFORMANCE
    assert f"the {100 * (fp32['test_acc'] - float(d)):.2f}-point gap" in PERFORMANCE
    secs = [float(s) for s in re.findall(r"^epoch .* ([0-9.]+)s$", (
        RESULTS / "cpu10min_search" / "E_48px_bf16_8ep.log").read_text(), re.M)]
    assert len(secs) == 8
    assert (f"48×48 epochs took from {min(secs):.0f} to {max(secs):.0f} s "
            f"(`results/cpu10min_search/E_48px_bf16_8ep.log`), the slowest "
            f"{max(secs) / min(secs):.1f}× the fastest") in PERFORMANCE


# ---------------------------------------------------------------- docs/performance.md: full

def test_performance_full_tables_are_the_archived_tables():
    for name in ("full", "full-cpu10min"):
        rows = [l for l in (ARCHIVE / "full-test-as-val" / f"{name}.md").read_text().splitlines()
                if l.startswith("| ResNeXt18")]
        assert len(rows) == 1 and rows[0] in PERFORMANCE, name


def test_performance_full_recipe_and_runs_come_from_their_files():
    runs = [load(p) for p in sorted((ARCHIVE / "full-test-as-val" / "full").glob("*.json"))]
    r = runs[0]["recipe"]
    assert all(run["recipe"] == r for run in runs)
    assert f"images upsampled to {r['resize']}×{r['resize']}" in PERFORMANCE
    assert f"(`augment=\"{r['augment']}\"`), batch {r['batch_size']}, SGD lr {r['lr']}, " \
           f"Nesterov momentum {r['momentum']}, weight decay {r['weight_decay']:.0e}".replace(
               "e-04", "e-4") + f", {r['schedule']} schedule, {r['epochs']} epochs" in PERFORMANCE
    assert "random crops (4-pixel padding)" in PERFORMANCE
    assert "a random crop after 4-pixel zero" in (ROOT / "d2l_ext" / "data.py").read_text()
    gpu = load(RESULTS / "gpu.json")
    assert {run["torch"] for run in runs} == {gpu["torch"]} and gpu["gpu"] == "NVIDIA H200"
    assert f"lent NVIDIA H200 (torch {gpu['torch']}, bf16 autocast" in PERFORMANCE
    minutes = {round(run["seconds"] / 60) for run in runs}
    assert minutes == {6}
    assert "about 6 minutes each (the `seconds` in their JSON files)" in PERFORMANCE
    assert "rerun that way (about six minutes on a GPU" in PERFORMANCE
    mean = 100 * sum(run["test_acc"] for run in runs) / len(runs)
    assert f"of issue 15's 95.0% target** by about {95.0 - mean:.1f} points" in PERFORMANCE
    last = runs[0]["history"][-1]
    assert (f"({last['train_loss']:.3f} and {last['val_loss']:.3f} for seed 0, in the `history` "
            f"of `results/archive/full-test-as-val/full/*.json`)") in PERFORMANCE
    per_epoch = gpu["throughput"][-1]["full_epoch_s"]
    assert gpu["throughput"][-1]["size"] == r["resize"] and 100 * per_epoch < 600
    assert (f"`results/gpu.json` measured on the H200, about {per_epoch:.0f} s per epoch, take "
            f"under 10 minutes") in PERFORMANCE


def test_performance_other_full_runs_come_from_their_files():
    log = (RESULTS / "full_gpu_no_erase_35ep.log").read_text()
    acc, epochs, secs = re.search(r"test accuracy: ([0-9.]+) \(10000 images\) after (\d+) "
                                  r"epochs, (\d+)s of training", log).groups()
    assert "device: cuda, 35 epochs" in log and epochs == "35"
    assert f"--epochs {epochs} --batch-size 256 --lr 0.1 --device cuda`" in PERFORMANCE
    assert f"same H200): {pct(float(acc))} in {secs} s of training" in PERFORMANCE
    old = load(ARCHIVE / "full-32px-crop-flip-30ep__seed0.json")
    r = old["recipe"]
    assert (f"at {r['resize']}×{r['resize']} with crops and flips, batch {r['batch_size']}, "
            f"{r['epochs']} epochs, reached only {pct(old['test_acc'])} in "
            f"{old['seconds'] / 60:.0f} minutes") in PERFORMANCE


def test_performance_cpu_budget_recipe_comes_from_its_files():
    runs = [load(p) for p in sorted((ARCHIVE / "full-test-as-val" / "full-cpu10min").glob("*.json"))]
    r = runs[0]["recipe"]
    assert r["amp"] == "bf16" and r["augment"] is False and all(x["recipe"] == r for x in runs)
    assert (f"recipe, {r['resize']}×{r['resize']}, bf16 autocast on the CPU") in PERFORMANCE
    assert (f"no augmentation, batch {r['batch_size']}, SGD lr {r['lr']}, Nesterov momentum "
            f"{r['momentum']}, weight decay 5e-4, {r['schedule']} schedule, {r['epochs']} "
            f"epochs:") in PERFORMANCE and r["weight_decay"] == 5e-4
    fp32 = load(ARCHIVE / "full-cpu10min-28px-fp32-14ep__seed0.json")
    f_log = (RESULTS / "cpu10min_search" / "F_28px_fp32_14ep_seed1.log").read_text()
    fp32_seed1 = float(re.search(r"test accuracy: ([0-9.]+)", f_log).group(1))
    ahead = 100 * (sum(x["test_acc"] for x in runs) / 2 - (fp32["test_acc"] + fp32_seed1) / 2)
    assert f"the bf16 recipe is about {ahead:.1f} points ahead on two seeds each" in PERFORMANCE
    command = f_log.splitlines()[0].split(" --seed")[0]
    assert command == ("python -m d2l_ext train --data fashion --resize 28 --epochs 14 "
                       "--batch-size 128 --lr 0.1")
    assert f"use the 28×28 fp32 recipe: `{command}`" in PERFORMANCE


# ---------------------------------------------------------------- docs/performance.md: GPU

def test_performance_gpu_check_is_tied_to_the_archived_recipe():
    gpu = load(RESULTS / "gpu.json")
    assert (f"(`results/gpu.json`, {gpu['gpu']}, torch {gpu['torch']})") in PERFORMANCE
    epochs = gpu["restore_epochs"][0]                          # resumed after the last epoch
    old = (ARCHIVE / "5class-30ep-test-as-val" / "baselines.md").read_text()
    assert f"epochs={epochs}," in old and "lr=0.05," in old and "warmup" not in old
    assert f"the 5-class recipe of the time ({epochs} epochs, lr 0.05, no warm-up" in PERFORMANCE
    row = re.search(r"\| ResNeXt18 \(3 stages, dropout 0.2/0.4\) \| ([0-9.]+% ± [0-9.]+) \| "
                    r"(\d+) \|", old)
    assert (f"trains to {pct(gpu['five_class']['test_acc'], 1)} on the 5,000 test images, which "
            f"then served as validation (the CPU runs of that recipe: {row.group(1)} over "
            f"{row.group(2)} seeds, `results/archive/5class-30ep-test-as-val/baselines.md`")\
        in PERFORMANCE
    assert constant("recipes", "RECIPES")["5class"]["epochs"] != epochs   # hence "of the time"
    sizes = " / ".join(str(r["size"]) for r in gpu["throughput"])
    batch = {r["batch_size"] for r in gpu["throughput"]}
    assert f"batch {batch.pop()}, crop-flip-erase, at {sizes} pixels" in PERFORMANCE
    epoch_s = [r["full_epoch_s"] for r in gpu["throughput"]]
    assert round(max(epoch_s)) == 5 and "one Fashion-MNIST epoch in about 5 s" in PERFORMANCE


# ---------------------------------------------------------------- docs/setup.md

REQUIREMENTS = (ROOT / "requirements.txt").read_text()
CI = (ROOT / ".ci" / "run").read_text() + (ROOT / ".ci" / "py313").read_text()   # and its leg


def pinned(name):
    return re.search(rf"^{name}==([0-9.]+)$", REQUIREMENTS, re.M).group(1)


def test_setup_torch_versions_are_the_requirements():
    torch, vision = pinned("torch"), pinned("torchvision")
    assert f"torch=={torch} torchvision=={vision}" in SETUP               # CPU-only and old stack
    assert f"torch {torch} / torchvision {vision} are pinned" in SETUP
    assert f"(`{torch}+cpu` satisfies `torch=={torch}`)" in SETUP
    assert f"torch=={torch} torchvision=={vision}" in CI
    mpl = re.search(r"^matplotlib>=([0-9.]+)$", REQUIREMENTS, re.M).group(1)
    assert f"matplotlib from {mpl} on no longer imports IPython's `backend2gui`" in SETUP
    assert f"nbval=={pinned('nbval')}" in SETUP


def test_setup_ci_legs_are_the_ci_script():
    legs = re.search(r'LEGS=\$\{CI_LEGS:-([^}]*)\}', CI).group(1).split()
    assert legs == ["default", "py313", "d2l-pins"]
    for leg in legs:
        assert f"| `{leg}` |" in (ROOT / "docs" / "setup.md").read_text()
    assert "PYTHON=${PYTHON:-python3.11}" in CI and "trixie" in CI     # trixie: Debian 13
    assert "CI runs 3.11 and 3.13" in SETUP
    assert "| `default` | 3.11 (this machine's) |" in SETUP and "| `d2l-pins` | 3.11 |" in SETUP
    assert "| `py313` | 3.13, in a Debian 13 tree that `debootstrap` makes" in SETUP
    pins_line = re.search(r"^D2L_PINS_SETUP='(.*)'$", CI, re.M).group(1)
    assert f"`{pins_line}`" in SETUP
    # torch's pins live in requirements.txt; the d2l-pins line (what a student types, so it
    # spells them out) must name the same ones
    torch_pins = re.findall(r"^(torch(?:vision)?==\S+)$",
                            (ROOT / "requirements.txt").read_text(), re.M)
    assert len(torch_pins) == 2 and [p for p in pins_line.split() if p.startswith("torch")] \
        == torch_pins
    assert '"$PYTHON" -m venv --clear .venv' in CI     # the default leg's venv from scratch
    assert "grep -v '^d2l 1\\.0\\.3 has requirement [a-z-]*==' " in CI  # pip check: only d2l's pins


def test_setup_pyproject_dependencies_are_the_ones_named():
    deps = re.search(r"dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S)
    deps = re.findall(r'"([^"]+)"', deps.group(1))
    names = [re.split(r"[<>=]", d)[0] for d in deps]
    shown = {"ipython": "IPython"}
    listed = ", ".join(shown.get(n, n) for n in names[:-1]) + f" and {names[-1]}"
    assert f"`-e .` names {listed}, without versions except tqdm's floor" in SETUP
    floors = [d for d in deps if re.search(r"[<>=]", d)]
    assert floors == ["tqdm>=4.66"] and "tqdm's floor (4.66)" in SETUP


def test_setup_d2l_pins_are_d2l_1_0_3s_metadata():
    try:
        requires = importlib.metadata.requires("d2l")
        version = importlib.metadata.version("d2l")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("d2l is not installed")
    assert version == "1.0.3"
    pins = dict(re.match(r"([a-z-]+) \(==([0-9.]+)\)", r).groups() for r in requires)
    assert len(pins) == 7 and "reports d2l's pins, seven lines" in SETUP
    order = ["numpy", "matplotlib", "pandas", "scipy", "matplotlib-inline", "requests", "jupyter"]
    assert set(order) == set(pins)
    assert "pins exact versions: " + ", ".join(f"{n} {pins[n]}" for n in order) + "." in SETUP
    assert f"`d2l 1.0.3 has requirement numpy=={pins['numpy']}, but you have numpy" in SETUP
    assert (f"with its numpy {pins['numpy']} and matplotlib {pins['matplotlib']})") in SETUP
    assert (f"CI stacks (when the times above were measured: numpy {pins['numpy']}, 2.4 and 2.5, "
            f"matplotlib {pins['matplotlib'].rsplit('.', 1)[0]} and 3.11") in SETUP
    assert all(f"{n} {pins[n]}" in REQUIREMENTS for n in order[:5])    # its comment names them


def test_setup_quotes_d2l_exts_import_error_exactly():
    tree = ast.parse((ROOT / "d2l_ext" / "__init__.py").read_text())
    message = next(n.exc.args[0] for n in ast.walk(tree) if isinstance(n, ast.Raise))
    text = "".join(v.value if isinstance(v, ast.Constant) else "0.17.6" for v in message.values)
    assert f"`ImportError: {text}`" in SETUP


def test_setup_ipython_version_that_removed_backend2gui():
    try:
        version = importlib.metadata.version("ipython")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("IPython is not installed")
    if tuple(map(int, version.split(".")[:2])) < (9, 16):
        pytest.skip(f"IPython {version} (the pinned stack) predates the removal")
    source = Path(importlib.util.find_spec("IPython").origin).parent / "core" / "pylabtools.py"
    removed = re.search(r"`backend2gui` aliases were deprecated in IPython [0-9.]+ and removed in "
                        r"([0-9.]+)\.", source.read_text()).group(1)
    assert f"IPython's `backend2gui`, which IPython {removed} removed" in SETUP


def test_setup_install_size_adds_up():
    total, torch, cuda, triton = map(float, re.search(
        r"puts ([0-9.]+) GB in `.venv`.*?\(torch ([0-9.]+) GB, NVIDIA's CUDA libraries ([0-9.]+) "
        r"GB, triton ([0-9.]+) GB\)", SETUP).groups())
    cpu_wheel = float(re.search(r"unpacks to about ([0-9.]+) GB", SETUP).group(1))
    assert f"so about {total - torch - cuda - triton + cpu_wheel:.1f} GB in all" in SETUP


def git(*args):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git history here (CI's py313 leg copies the tree without .git)")
    run = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if run.returncode:
        pytest.skip(f"git {' '.join(args)}: {run.stderr.strip()[:80]} (shallow clone?)")
    return run.stdout


def test_setup_ci_times_are_the_commits_that_measured_them():
    one_core = git("log", "-1", "--format=%s", "8c78239")
    assert "measured CI leg times (25 min on one core)" in one_core and "3.10 run by hand" in one_core
    assert "the other core; commit 8c78239, before the Chinese edition): 25 minutes in all" in SETUP
    assert "3.10 was run here by hand (the setup line, then every test and notebook; commit " \
           "8c78239)" in SETUP
    table = git("show", "8c78239:README.md")
    for leg in ("default", "py313", "d2l-pins"):
        old = re.search(rf"^\| `{leg}` \|.*\| ([^|]*min[^|]*) \|$", table, re.M).group(1)
        assert re.search(rf"\| `{leg}` \|.*\| {re.escape(old)} \|", SETUP), leg
    both = git("log", "-1", "--format=%s", "98c27e7")
    times = dict(re.findall(r"(default|py313|d2l-pins) (\d+:\d+)", both))
    for leg, t in times.items():
        m, s = t.split(":")
        assert f"{leg} {int(m)} min {int(s)} s" in SETUP, leg
    passed, skipped = re.search(r"(\d+) passed, (\d+) skipped each", both).groups()
    assert (f"at that commit {passed} tests passed and {skipped} skipped (the CUDA-only one)"
            in SETUP)


# ---------------------------------------------------------------- what the scripts ran

def test_performance_benchmark_settings_are_the_scripts():
    speed = (ROOT / "benchmarks" / "speed.py").read_text()
    assert "ResNeXt18(lr=0.05, num_classes=10)" in speed and "resize=32" in speed
    assert "`python benchmarks/speed.py` (writes `results/speed.json`): ResNeXt18, 10 classes, " \
           "Fashion-MNIST at 32×32, batch 128" in PERFORMANCE
    bf16 = (ROOT / "benchmarks" / "cpu_bf16.py").read_text()
    assert 'RECIPES["full-cpu10min"]' in bf16 and "FashionMNIST(" in bf16     # 10 classes
    from d2l_ext.recipes import RECIPES
    assert (RECIPES["full-cpu10min"]["data"], RECIPES["full-cpu10min"]["batch_size"]) == \
        ("fashion", 128) and "BATCH = 128" in bf16
    assert '(ResNeXt18, 10 classes, full Fashion-MNIST, batch 128' in PERFORMANCE
    gpu = (ROOT / "benchmarks" / "gpu.py").read_text()
    assert "images[:1000]" in gpu and "predictions on 99.6% of 1,000 test images" in PERFORMANCE
    batches = defaults("experiments", "estimate_experiment")["batches"]
    assert f"(a minute; it trains nothing) times {batches} batches of the recipe" in PERFORMANCE


def test_performance_cpu_budget_tries_are_described_by_their_commands():
    """Each try's description (size, epochs, batch, lr, bf16, augmentation) is its command's."""
    def run(name):
        text = (RESULTS / "cpu10min_search" / name).read_text()
        cmd = text.splitlines()[0]
        flag = lambda f: re.search(rf"--{f} (\S+)", cmd).group(1)           # noqa: E731
        acc, secs = re.search(r"test accuracy: ([0-9.]+) .* (\d+)s of training", text).groups()
        return cmd, flag, f"{pct(float(acc))} in {secs} s"

    cmd, f, result = run("B_32px_10ep.log")
    assert f"{f('resize')}×{f('resize')} for {f('epochs')} epochs: {result}" in PERFORMANCE
    cmd, f, result = run("A_28px_cropflip_14ep.log")
    assert "--augment " in cmd and f("epochs") == "14"
    assert f"{f('resize')}×{f('resize')} with crops and flips: {result}" in PERFORMANCE
    cmd, f, result = run("C_28px_bs256_lr0.2_14ep.log")
    assert f"batch {f('batch-size')} with lr {f('lr')}: {result}" in PERFORMANCE
    for name in ("D_28px_bf16_14ep.log", "E_48px_bf16_8ep.log"):
        cmd, f, result = run(name)
        assert "--bf16" in cmd
        assert f"{f('resize')}×{f('resize')} in bf16 for {f('epochs')} epochs: {result}" \
            in PERFORMANCE
    assert "over the budget, which is why the recipe has 7" in PERFORMANCE
    assert constant("recipes", "RECIPES")["full-cpu10min"]["epochs"] == 7


def test_package_one_against_two_processes_comes_from_the_logs():
    """docs/package.md's 1- and 2-process accuracies are the ones the two logs end with."""
    import re
    text = (ROOT / "docs" / "package.md").read_text()
    accs = []
    for name, start in (("1-process", "python -m d2l_ext train --seed 0"),
                        ("2-processes", "torchrun --standalone")):
        log = (RESULTS / "ddp_accuracy" / f"{name}.log").read_text()
        assert log.startswith(start)
        accs.append(100 * float(re.search(r"test accuracy: ([0-9.]+) \(5000 images", log).group(1)))
    assert (f"**{accs[0]:.2f}% test accuracy\nwith 1 process, {accs[1]:.2f}% with 2**, "
            f"{accs[0] - accs[1]:.2f} points apart") in text
