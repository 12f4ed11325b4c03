"""The experiment runner: one JSON per run, resumable, lr chosen on validation, tables from
the files alone, differences with intervals (issues 5 and 10)."""
import json
import os
import socket

import pytest

from d2l_ext import experiments as E, results as Rs


@pytest.fixture
def tiny_experiment(monkeypatch):
    recipe = dict(E.RECIPES["5class"], epochs=1, resize=16, batch_size=100, warmup=0)
    monkeypatch.setitem(E.RECIPES, "tiny", recipe)
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline"))]))
    monkeypatch.setitem(E.EXPERIMENTS, "tiny-again", ("tiny", [("same cnn", dict(model="baseline"))]))
    monkeypatch.setitem(E.REPORT, "tiny", {"cnn": 0.5})
    return recipe


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_runs_write_json_resume_and_render(tiny_experiment, tmp_path):
    log = []
    done = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append)
    assert [p.name for p in done] == ["cnn__seed0.json"]
    record = json.loads(done[0].read_text())
    for key in ("experiment", "config", "seed", "train_loss", "train_acc", "val_acc",
                "test_acc", "test_loss", "epochs", "history", "seconds", "command", "torch",
                "device"):
        assert key in record
    assert record["experiment"] == "tiny" and record["config"] == {"model": "baseline"}
    assert 0.2 < record["test_acc"] < 1 and len(record["history"]) == 1
    # val_acc is the last epoch's validation pass; test_acc one pass over the other images
    assert record["history"][0]["val_acc"] == record["val_acc"] != record["test_acc"]
    assert record["history"][0]["train_loss"] == record["train_loss"]
    assert "test_acc_flip_tta" not in record            # trained without flips

    # A second call trains nothing; the same configuration elsewhere is copied, not retrained.
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, log=log.append) == []
    E.run_experiment("tiny-again", seeds=(0,), out=tmp_path, log=log.append)
    assert "copied" in log[-1]
    again = E.load_results("tiny-again", tmp_path)[0]
    assert again["test_acc"] == record["test_acc"] and again["label"] == "same cnn"

    # Other epochs than the recipe's: a folder of their own, the recipe's table untouched.
    [longer] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                                progress="none", epochs=2, log=log.append)
    assert longer == tmp_path / "tiny-2ep" / "cnn__seed0.json"
    assert len(json.loads(longer.read_text())["history"]) == 2
    assert len(E.load_results("tiny", tmp_path)) == 1

    table = Rs.markdown_table("tiny", tmp_path)
    assert (f"| cnn | 0.05 | {record['train_loss']:.3f} | {100 * record['train_acc']:.1f}% | "
            f"{100 * record['val_acc']:.1f}% | {100 * record['test_acc']:.1f}% ± 0.0 | 1 | "
            f"50.0% | {100 * (record['train_acc'] - record['val_acc']):.1f} points |") in table


def test_unknown_experiment_is_named():
    with pytest.raises(ValueError, match="unknown experiment 'dropuot'"):
        E.run_experiment("dropuot")


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_experiment, tmp_path, monkeypatch):
    from d2l_ext.training import Trainer
    E.RECIPES["tiny"]["epochs"] = 3
    fit_epoch = Trainer.fit_epoch

    def stop_in_epoch_3(self):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return fit_epoch(self)

    monkeypatch.setattr(Trainer, "fit_epoch", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent", progress="none")
    [checkpoint] = (tmp_path / "tiny").glob("cnn__seed0.*.pt")
    assert not (tmp_path / "tiny" / "cnn__seed0.json").exists()
    other = E.checkpoint_path(tmp_path / "x.json", {"model": "baseline"}, dict(E.RECIPES["tiny"], epochs=4))
    assert other.name != E.checkpoint_path(tmp_path / "x.json", {"model": "baseline"},
                                           E.RECIPES["tiny"]).name     # other settings, other file

    monkeypatch.setattr(Trainer, "fit_epoch", fit_epoch)
    log = []
    E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent", progress="none",
                     log=log.append)
    assert "resuming from its checkpoint" in log[0]
    record = E.load_results("tiny", tmp_path)[0]
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["resumed_after_epoch"] == 2 and not checkpoint.exists()
    assert record["seconds"] == pytest.approx(sum(h["seconds"] for h in record["history"]))


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_estimate_projects_a_run_from_a_few_batches(tiny_experiment, tmp_path):
    E.RECIPES["tiny"]["epochs"] = 2
    log = []
    [row] = E.estimate_experiment("tiny", seeds=(0, 1), out=tmp_path, root="/nonexistent",
                                  batches=2, warmup=1, log=log.append)
    assert row["pending_runs"] == 2 and row["epochs"] == 2
    assert row["run_s"] == pytest.approx(2 * row["epoch_s"])
    assert "timing 1 + 2 training and validation batches of 100 images at 16x16" in log[0]
    assert "2 run(s) to do" in log[1] and "training images/s on cpu" in log[1]
    # The projection is of the same order as the real thing (timings on a shared CPU vary).
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=log.append)
    real = json.loads(path.read_text())["history"][-1]["seconds"]
    assert real / 6 < row["epoch_s"] < real * 6     # a shared CPU moves timings a lot
    [row] = E.estimate_experiment("tiny", seeds=(0, 1), out=tmp_path, root="/nonexistent",
                                  batches=2, warmup=1, log=log.append)
    assert row["pending_runs"] == 1                       # seed 0's file exists now
    with pytest.raises(ValueError, match="5 batches or fewer"):
        E.estimate_experiment("tiny", out=tmp_path, root="/nonexistent", batches=1, warmup=5,
                              log=log.append)


def test_cli_estimate_trains_nothing(tiny_experiment, tmp_path, monkeypatch, capsys):
    from d2l_ext.__main__ import build_parser, cmd_ablate
    args = build_parser().parse_args(["ablate", "full", "--estimate", "--out", str(tmp_path)])
    calls = []
    monkeypatch.setattr(E, "estimate_experiment", lambda name, **kw: calls.append((name, kw)))
    monkeypatch.setattr(E, "run_experiment", lambda *a, **kw: pytest.fail("trained"))
    assert cmd_ablate(args) == 0
    assert calls[0][0] == "full" and calls[0][1]["out"] == str(tmp_path)


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_runs_trained_with_flips_also_record_flip_tta(tiny_experiment, tmp_path):
    E.RECIPES["tiny"]["augment"] = "crop-flip"
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=lambda _: None)
    record = json.loads(path.read_text())
    assert 0.2 < record["test_acc_flip_tta"] < 1
    table = Rs.markdown_table("tiny", tmp_path)
    assert "| test acc, flip TTA |" in table.splitlines()[0]
    assert table.splitlines()[2].endswith(f" {100 * record['test_acc_flip_tta']:.2f}% |")


def _sweep_record(out, network, lr, val_acc):
    config = dict(E.NETWORKS[network], lr=lr)
    label = f"{network}, lr {lr:g}"
    path = E._result_path(out, "lr-sweep", label, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"label": label, "config": config, "recipe": {}, "seed": 0,
                                "val_acc": val_acc, "train_loss": 0.1}))


def test_each_network_gets_the_lr_with_the_best_validation_accuracy(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"incomplete .*\(has \[\]; needs \[0.01, 0.03, "
                                                r"0.1, 0.3\] .*: run `python -m d2l_ext ablate "
                                                r"lr-sweep --seeds 0` first"):
        E.run_experiment("stages", out=tmp_path)        # before any training
    for lr, acc in zip(E.LR_GRID, (0.60, 0.70, 0.65, 0.20)):
        _sweep_record(tmp_path, "ResNeXt, 3 stages", lr, acc)
    assert E.sweep_extension("ResNeXt, 3 stages", tmp_path) is None     # 0.03 is inside
    assert E.selected_lr("ResNeXt, 3 stages", tmp_path) == 0.03
    assert E.row_config("dropout-3stages", E._R(3, (0.3, 0.5)), tmp_path) == \
        dict(E._R(3, (0.3, 0.5)), lr=0.03)              # dropout variants share their net's lr
    assert E.row_config("lr-sweep", dict(model="baseline", lr=0.1), tmp_path)["lr"] == 0.1
    with pytest.raises(FileNotFoundError, match="'ResNeXt, 4 stages'"):
        E.row_config("stages", E._R(4), tmp_path)
    with pytest.raises(FileNotFoundError, match="'ResNeXt, 3 stages, no dropout'"):
        E.row_config("dropout-3stages", E._R(3, (0, 0)), tmp_path)     # a network of its own
    assert "**70.0% (loss 0.10)**" in Rs.lr_sweep_table(tmp_path)


def test_a_choice_at_the_edge_of_the_grid_extends_the_sweep(tmp_path):
    net = "ResNeXt, 4 stages"
    for lr, acc in zip(E.LR_GRID, (0.69, 0.63, 0.64, 0.55)):
        _sweep_record(tmp_path, net, lr, acc)
    assert E.sweep_extension(net, tmp_path) == 0.003                  # best at the low edge
    with pytest.raises(FileNotFoundError, match="sits at an edge"):
        E.selected_lr(net, tmp_path)
    assert (f"{net}, lr 0.003", dict(E.NETWORKS[net], lr=0.003)) in E.sweep_rows(tmp_path)
    _sweep_record(tmp_path, net, 0.003, 0.71)                         # better still: go on
    assert E.sweep_extension(net, tmp_path) == 0.001
    _sweep_record(tmp_path, net, 0.001, 0.70)                         # now inside
    assert E.sweep_extension(net, tmp_path) is None
    assert E.selected_lr(net, tmp_path) == 0.003
    table = Rs.lr_sweep_table(tmp_path)
    assert table.splitlines()[0].startswith("| network | lr 0.001 | lr 0.003 | lr 0.01 |")
    # At the top of the grid a diverged rate beyond the best one counts as its neighbour.
    for lr, acc in zip(E.LR_GRID + (1.0,), (0.60, 0.61, 0.62, 0.70, None)):
        _sweep_record(tmp_path, "baseline CNN", lr, acc)
    assert E.selected_lr("baseline CNN", tmp_path) == 0.3


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_a_record_of_other_settings_is_archived_and_redone(tiny_experiment, tmp_path):
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=lambda _: None)
    record = json.loads(path.read_text())
    path.write_text(json.dumps(dict(record, config=dict(record["config"], lr=9.0))))
    log = []
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append) == [path]
    stale = tmp_path / "archive" / "stale" / path.parent.name / path.name
    assert json.loads(stale.read_text())["config"]["lr"] == 9.0
    assert json.loads(path.read_text())["config"] == record["config"]
    assert any("ran other settings (lr 9.0" in line for line in log)


def test_headline_rows_run_five_seeds_by_default():
    assert E.row_seeds("dropout-4stages", "(0, 0)") == (0, 1, 2, 3, 4)
    assert E.row_seeds("dropout-4stages", "(0.3, 0.5)") == (0, 1, 2)
    assert E.row_seeds("lr-sweep", "baseline CNN, lr 0.01") == (0,)     # the sweep: seed 0
    for experiment, labels in E.HEADLINE_ROWS.items():
        assert labels <= {label for label, _ in E.EXPERIMENTS[experiment][1]}


def test_the_report_path_in_its_order():
    """The report chose dropout on 4 stages, then stages, then compared with the baseline."""
    order = list(E.EXPERIMENTS)
    assert order[:4] == ["lr-sweep", "dropout-4stages", "dropout-3stages", "stages"]
    assert order.index("baselines") < order.index("stages-64px")
    assert {c["stages"] for _, c in E.EXPERIMENTS["dropout-4stages"][1]} == {4}
    assert E.REPORT["dropout-4stages"]["(0.2, 0.4)"] == E.REPORT["stages"]["4 stages"] == 0.65


def test_the_reports_numbers_are_the_ones_docs_report_quotes():
    """``REPORT`` is typed from the report; docs/report.md quotes its tables: each number
    of the one is in the other, so a typo in either fails here."""
    from pathlib import Path
    quoted = (Path(__file__).parent.parent / "docs" / "report.md").read_text()
    numbers = {acc for rows in E.REPORT.values() for acc in rows.values()}
    assert len(numbers) == 7
    for acc in numbers:
        assert f"{100 * acc:.1f}%" in quoted, acc
    assert len(E.EXPERIMENTS["lr-sweep"][1]) == len(E.NETWORKS) * len(E.LR_GRID) == 32


def test_two_processes_share_an_experiment_and_broken_files_are_named(tmp_path):
    path = tmp_path / "x" / "run__seed0.json"
    lock = E._claim(path)
    assert lock.read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert E._claim(path) is None                   # held by a live process (this one)
    lock.write_text("999999999")                    # a process that died
    assert E._claim(path) == lock
    lock.unlink()
    path.write_text("")                             # a truncated result file
    with pytest.raises(ValueError, match=f"{path} is not a readable result file .* delete it"):
        E.load_results("x", tmp_path)


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_a_diverging_run_is_recorded_not_a_crash(tiny_experiment, tmp_path, monkeypatch):
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline", lr=1e30))]))
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=lambda _: None)
    record = json.loads(path.read_text())
    assert "training loss became" in record["diverged"] and record["test_acc"] is None
    assert "| cnn | – | – | – | – | diverged (1 seeds) | 0 |" in Rs.markdown_table("tiny", tmp_path)


# --- cardinality and training-set size (issue 20) ------------------------------------------

def _template_record(out, experiment, label, config, seed, test_acc, val_acc=0.7):
    path = E._result_path(out, experiment, label, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "label": label, "config": config, "recipe": E.RECIPES["5class"], "seed": seed,
        "val_acc": val_acc, "test_acc": test_acc, "train_loss": 0.01, "train_acc": 1.0,
        "seconds": 60.0, "history": [{"train_loss": 0.01, "val_acc": val_acc}],
        "params": 1_906_181, "flops": 37_784_064}))


def test_each_template_is_a_network_with_its_own_sweep(tmp_path):
    """The templates' rates come from ``cardinality-lr-sweep``, not from ``lr-sweep``; the
    sweep's table lists the templates only; the table shows parameters and FLOPs."""
    assert list(E.TEMPLATE_NETWORKS) == [f"ResNeXt {t}" for t in E.CARDINALITY_TEMPLATES]
    for name, config in E.TEMPLATE_NETWORKS.items():
        assert E.network_of(dict(config, lr=0.1)) == name and E.sweep_of(name) == \
            "cardinality-lr-sweep"
    assert E.network_of(E._R(3, (0, 0))) == "ResNeXt, 3 stages, no dropout"   # the report's
    assert E.row_seeds("cardinality", "1x64d") == E.row_seeds("cardinality", "8x19d") == \
        (0, 1, 2, 3, 4) and E.row_seeds("cardinality", "2x44d") == (0, 1, 2)
    with pytest.raises(FileNotFoundError, match=r"in .*cardinality-lr-sweep .*run `python -m "
                                                r"d2l_ext ablate cardinality-lr-sweep --seeds 0`"):
        E.run_experiment("cardinality", out=tmp_path)
    config = dict(E.TEMPLATE_NETWORKS["ResNeXt 1x64d"])
    for lr, acc in zip(E.LR_GRID, (0.60, 0.70, 0.65, 0.20)):
        label = f"ResNeXt 1x64d, lr {lr:g}"
        _template_record(tmp_path, "cardinality-lr-sweep", label, dict(config, lr=lr), 0,
                         0.5, acc)
    assert E.selected_lr("ResNeXt 1x64d", tmp_path) == 0.03
    assert E.row_config("cardinality", config, tmp_path)["lr"] == 0.03
    table = Rs.lr_sweep_table(tmp_path, "cardinality-lr-sweep")
    assert "| ResNeXt 1x64d | 60.0% (loss 0.01) | **70.0% (loss 0.01)** |" in table
    assert "| ResNeXt 8x19d | – |" in table and "baseline CNN" not in table
    for seed, acc in enumerate((0.70, 0.72)):
        _template_record(tmp_path, "cardinality", "1x64d", dict(config, lr=0.03), seed, acc)
    table = Rs.markdown_table("cardinality", tmp_path)
    assert "| parameters | MFLOPs |" in table and "| 1,906,181 | 37.8 |" in table
    assert "each network's, from cardinality-lr-sweep" in table


def test_the_full_data_pair_takes_its_rate_from_its_own_sweep(tmp_path):
    """A rate chosen on 500 images is not one for 55,000: ``cardinality-full`` reads
    ``cardinality-full-lr-sweep`` (every template, on the ``full-28px`` recipe), even where
    the 5-class sweep has chosen another rate for the same template."""
    config = dict(E.TEMPLATE_NETWORKS["ResNeXt 1x64d"])
    for sweep, best in (("cardinality-lr-sweep", 0.03), ("cardinality-full-lr-sweep", 0.1)):
        for lr in E.LR_GRID:
            _template_record(tmp_path, sweep, f"ResNeXt 1x64d, lr {lr:g}", dict(config, lr=lr),
                             0, 0.5, 0.9 if lr == best else 0.6)
    assert E.row_config("cardinality", config, tmp_path)["lr"] == 0.03
    assert E.row_config("cardinality-full", config, tmp_path)["lr"] == 0.1
    assert list(E.SWEEPS["cardinality-full-lr-sweep"]) == list(E.TEMPLATE_NETWORKS)
    assert [label for label, _ in E.EXPERIMENTS["cardinality-full"][1]] == \
        ["1x64d", "2x44d", "4x29d", "8x19d"]
    assert E.sweep_of("ResNeXt 2x44d") == "cardinality-lr-sweep"   # its own, not the full one
    assert E.EXPERIMENTS["cardinality-full"][0] == "full-28px" == \
        E.EXPERIMENTS["cardinality-full-lr-sweep"][0]
    assert E.row_seeds("cardinality-full", "8x19d") == (0, 1, 2, 3, 4)
    assert E.row_seeds("cardinality-full", "4x29d") == (0, 1, 2)
    _template_record(tmp_path, "cardinality-full", "1x64d", dict(config, lr=0.1), 0, 0.9)
    assert "each network's, from cardinality-full-lr-sweep" in \
        Rs.markdown_table("cardinality-full", tmp_path)


def test_notebook_4_trains_with_the_train_recipe():
    """Notebook 4's training cell and ``python -m d2l_ext train`` are one recipe,
    ``RECIPES["train"]``: the cell's numbers, read from the notebook, are the recipe's."""
    import ast
    from pathlib import Path
    from d2l_ext.__main__ import build_parser, train_recipe
    from d2l_ext.recipes import TRAIN_LR
    recipe = E.RECIPES["train"]
    assert recipe == dict(E.RECIPES["5class"], lr=TRAIN_LR)
    assert train_recipe(build_parser().parse_args(["train"])) == recipe   # no option given
    notebook = Path(__file__).parent.parent / "notebooks" / "04_training.ipynb"
    source = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                       if c["cell_type"] == "code")
    calls = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            calls.setdefault(node.func.attr, []).append(
                {k.arg: ast.literal_eval(k.value) for k in node.keywords
                 if isinstance(k.value, ast.Constant)})
    data, model, trainer = calls["FashionMNIST5"][0], calls["ResNeXt18"][0], calls["Trainer"][0]
    assert (data["batch_size"], data["resize"], data["seed"]) == \
        (recipe["batch_size"], recipe["resize"], 0)
    assert model["lr"] == recipe["lr"]
    assert {k: trainer[k] for k in ("momentum", "weight_decay", "warmup", "schedule")} == \
        {k: recipe[k] for k in ("momentum", "weight_decay", "warmup", "schedule")}
    assert f"EPOCHS = 4 if QUICK else {recipe['epochs']}" in source

@pytest.mark.usefixtures("offline_fashion_mnist")
def test_data_size_sets_hold_the_smaller_ones_and_validation_stays(tmp_path):
    """300 images a class are the 100 and 200 more; validation and test do not move; the
    recipes' epochs shrink as 60 * sqrt(100 / n)."""
    from d2l_ext.data import FashionMNIST5
    small, large = (FashionMNIST5(root="data", train_per_class=n) for n in (100, 300))
    assert len(small.train) == 500 and len(large.train) == 1500

    def keys(split):        # each image as bytes, with its label
        return {(bytes(x.numpy()), int(y)) for x, y in zip(split.images, split.labels)}
    assert keys(small.train) <= keys(large.train)
    assert keys(small.val) == keys(large.val) and len(large.test) == 5000
    assert [E.RECIPES[f"5class-{n}"]["epochs"] for n in (300, 1000, 3000)] == [35, 19, 11]
    assert E.EXPERIMENTS["data-size-100"][0] == "5class" and E.GROUPS["data-size"] == \
        ["data-size-100", "data-size-300", "data-size-1000", "data-size-3000"]


def test_data_size_table_pairs_each_size_by_seed(tmp_path):
    for n, accs in ((100, {"baseline CNN": (0.70, 0.71, 0.72),
                           "ResNeXt18, dropout 0.2/0.4": (0.68, 0.70, 0.71)}),
                    (1000, {"baseline CNN": (0.80, 0.81, 0.80),
                            "ResNeXt18, dropout 0.2/0.4": (0.84, 0.85, 0.85)})):
        for label, values in accs.items():
            config = dict(E.DATA_SIZE_ROWS)[label]
            for seed, acc in enumerate(values):
                _template_record(tmp_path, f"data-size-{n}", label, dict(config, lr=0.1),
                                 seed, acc)
    table = Rs.data_size_table(tmp_path)
    assert "| ResNeXt18, dropout 0.2/0.4 | 69.7% ± 3.8 (3; train 100%) | – | 84.7% ± 1.4 " \
           "(3; train 100%) | – |" in table
    # 1,000 a class: +4, +4, +5 points, paired: mean 4.3, clear of zero (in bold)
    assert "| ResNeXt18, dropout 0.2/0.4 − baseline CNN | -1.3 [-2.8, +0.1] (3) | – | " \
           "**+4.3 [+2.9, +5.8] (3)** | – |" in table


def test_runs_made_on_a_gpu_are_marked_and_their_time_counted_apart(tmp_path):
    """A GPU run's seconds are neither this CPU's nor bf16-free: its row's s/run and its
    data-size cells say GPU, the footer counts its minutes apart and says how it trained."""
    for seed, device in enumerate(("cpu", "cpu", "cuda")):
        _template_record(tmp_path, "data-size-300", "ResNet-18", dict(model="resnet18", lr=0.03),
                         seed, 0.75)
        _template_record(tmp_path, "data-size-300", "baseline CNN", dict(model="baseline",
                                                                         lr=0.1), seed, 0.76)
        path = E._result_path(tmp_path, "data-size-300", "ResNet-18", seed)
        path.write_text(json.dumps(dict(json.loads(path.read_text()), device=device,
                                        seconds=120.0 if device == "cuda" else 600.0,
                                        threads=1)))
    rows = {r["label"]: r for r in Rs.summarize("data-size-300", tmp_path)}
    assert rows["ResNet-18"]["devices"] == ["cpu", "cuda"]
    assert rows["baseline CNN"]["devices"] == ["cpu"]
    table = Rs.data_size_table(tmp_path)
    assert "| ResNet-18 | – | 75.0% ± 0.0 (3; train 100%; GPU) |" in table
    assert "| baseline CNN | – | 76.0% ± 0.0 (3; train 100%) |" in table
    assert "the rest: 6 runs, about 23 min on 1 thread(s) for the 5 on the CPU; the 1 on a " \
           "GPU took about 2 min). GPU: trained on a GPU, with bf16 autocast" in table
    assert Rs._on_gpu(["cuda"]) == " (GPU)" and Rs._on_gpu(["cpu"]) == ""
    assert Rs.cost("data-size-300", tmp_path) == ("6 runs, about 23 min on 1 thread(s) for "
                                                  "the 5 on the CPU; the 1 on a GPU took "
                                                  "about 2 min")


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_train_seed_is_ablates_seed_and_the_split_has_its_own(tiny_experiment, tmp_path):
    """``train --seed 1`` is ``ablate``'s seed-1 run of the same recipe: the seed draws the
    initialization and the batch order, not the images (``--split-seed``, 0 in ablate,
    recorded in model.pt)."""
    from d2l_ext.__main__ import main
    from d2l_ext.checkpoints import load_checkpoint
    E.run_experiment("tiny", seeds=[1], out=tmp_path / "results", root="data", progress="none")
    record = json.loads((tmp_path / "results" / "tiny" / "cnn__seed1.json").read_text())
    flags = ["train", "--model", "baseline", "--epochs", "1", "--resize", "16", "--batch-size",
             "100", "--warmup", "0", "--lr", str(tiny_experiment["lr"]), "--root", "data"]
    assert main(flags + ["--seed", "1", "--out", str(tmp_path / "a")]) == 0
    ckpt = load_checkpoint(tmp_path / "a" / "model.pt")
    assert ckpt["split_seed"] == 0 and ckpt["trainer"]["seed"] == 1
    assert [(h["train_loss"], h["val_acc"]) for h in ckpt["history"]] == \
        [(h["train_loss"], h["val_acc"]) for h in record["history"]]
    assert main(flags + ["--seed", "1", "--split-seed", "1", "--out", str(tmp_path / "b")]) == 0
    other = load_checkpoint(tmp_path / "b" / "model.pt")
    assert other["split_seed"] == 1 and other["history"][0]["train_loss"] != \
        ckpt["history"][0]["train_loss"]           # other training images
