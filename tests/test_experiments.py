"""The experiment runner: one JSON per run, resumable, tables from the files alone (issue 5)."""
import json

import pytest

from d2l_ext import experiments as E


@pytest.fixture
def tiny_experiment(monkeypatch):
    recipe = dict(E.RECIPES["5class"], epochs=1, resize=16, batch_size=100)
    monkeypatch.setitem(E.RECIPES, "tiny", recipe)
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline"))]))
    monkeypatch.setitem(E.EXPERIMENTS, "tiny-again", ("tiny", [("same cnn", dict(model="baseline"))]))
    monkeypatch.setitem(E.REPORT, "tiny", {"cnn": 0.5})
    return recipe


def test_runs_write_json_resume_and_render(tiny_experiment, tmp_path):
    log = []
    done = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append)
    assert [p.name for p in done] == ["cnn__seed0.json"]
    record = json.loads(done[0].read_text())
    for key in ("experiment", "config", "seed", "test_acc", "epochs", "history", "seconds",
                "command", "torch", "device"):
        assert key in record
    assert record["experiment"] == "tiny" and record["config"] == {"model": "baseline"}
    assert 0.2 < record["test_acc"] < 1 and len(record["history"]) == 1
    assert record["history"][0]["val_acc"] == pytest.approx(record["test_acc"])
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

    table = E.markdown_table("tiny", tmp_path)
    assert f"| cnn | {100 * record['test_acc']:.1f}% ± 0.0 | 1 | 50.0% |" in table


def test_unknown_experiment_is_named():
    with pytest.raises(ValueError, match="unknown experiment 'dropuot'"):
        E.run_experiment("dropuot")


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


def test_estimate_projects_a_run_from_a_few_batches(tiny_experiment, tmp_path):
    E.RECIPES["tiny"]["epochs"] = 2
    log = []
    [row] = E.estimate_experiment("tiny", seeds=(0, 1), out=tmp_path, root="/nonexistent",
                                  batches=2, warmup=1, log=log.append)
    assert row["pending_runs"] == 2 and row["epochs"] == 2
    assert row["run_s"] == pytest.approx(2 * row["epoch_s"])
    assert "timing 1 + 2 training and test batches of 100 images at 16x16" in log[0]
    assert "2 run(s) to do" in log[1] and "training images/s on cpu" in log[1]
    # The projection is of the same order as the real thing (timings on a shared CPU vary).
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=log.append)
    real = json.loads(path.read_text())["history"][-1]["seconds"]
    assert real / 4 < row["epoch_s"] < real * 4
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


def test_runs_trained_with_flips_also_record_flip_tta(tiny_experiment, tmp_path):
    E.RECIPES["tiny"]["augment"] = "crop-flip"
    [path] = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                              progress="none", log=lambda _: None)
    record = json.loads(path.read_text())
    assert 0.2 < record["test_acc_flip_tta"] < 1
    table = E.markdown_table("tiny", tmp_path)
    assert "| with flip TTA (mean) |" in table.splitlines()[0]
    assert table.splitlines()[2].endswith(f" {100 * record['test_acc_flip_tta']:.2f}% |")
