"""benchmarks/device_check.py: a GPU run's twin trained on the CPU, and the table beside it."""
import importlib.util
import json
from pathlib import Path

import pytest

from d2l_ext import experiments as E

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("device_check",
                                               ROOT / "benchmarks" / "device_check.py")
DC = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(DC)


def _record(out, experiment, label, seed, device, test_acc):
    path = E._result_path(out, experiment, label, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"experiment": experiment, "label": label, "seed": seed, "device": device,
              "config": {"model": "resnet18", "lr": 0.03}, "recipe": E.RECIPES["5class"],
              "test_acc": test_acc}
    path.write_text(json.dumps(record))
    return record


@pytest.fixture
def fake_training(monkeypatch):
    """run_one as far as device_check sees it: writes the record (CPU, 0.80) and returns it."""
    calls = []

    def run_one(experiment, label, config, seed, path, recipe, device, root, progress):
        calls.append((experiment, label, seed, device))
        record = {"experiment": experiment, "label": label, "seed": seed, "device": device,
                  "config": config, "recipe": recipe, "test_acc": 0.80,
                  "command": f"python -m d2l_ext ablate {experiment} --seeds {seed}"}
        E._write_json(path, record)
        return record
    monkeypatch.setattr(DC.E, "run_one", run_one)
    return calls


@pytest.mark.parametrize("text", ["data-size-300", "data-size-300/ResNet-18", "x/y:one",
                                  "ResNet-18:0"])
def test_a_malformed_run_is_one_line_naming_it_before_any_work(text, tmp_path, capsys,
                                                               fake_training):
    with pytest.raises(SystemExit) as e:
        DC.main([text, "--out", str(tmp_path)])
    assert e.value.code == 2 and not fake_training
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and repr(text) in err and "EXPERIMENT/LABEL:SEED" in err


def test_only_gpu_records_are_checked_and_every_argument_before_training(tmp_path, capsys,
                                                                          fake_training):
    _record(tmp_path, "data-size-300", "ResNet-18", 0, "cuda", 0.75)
    _record(tmp_path, "data-size-300", "baseline CNN", 0, "cpu", 0.76)
    with pytest.raises(SystemExit):     # the second argument is a CPU run: nothing trains
        DC.main(["data-size-300/ResNet-18:0", "data-size-300/baseline CNN:0",
                 "--out", str(tmp_path)])
    assert "ran on 'cpu', not on a GPU" in capsys.readouterr().err and not fake_training
    with pytest.raises(SystemExit):
        DC.main(["data-size-300/ResNet-18:4", "--out", str(tmp_path)])
    assert "resnet-18__seed4.json does not exist" in capsys.readouterr().err


def test_the_twin_trains_once_on_the_cpu_and_the_table_sets_it_beside_the_gpu_run(
        tmp_path, capsys, fake_training):
    _record(tmp_path, "data-size-300", "ResNet-18", 0, "cuda", 0.754)
    DC.main(["data-size-300/ResNet-18:0", "--out", str(tmp_path)])
    DC.main(["data-size-300/ResNet-18:0", "--out", str(tmp_path)])     # done: not trained again
    assert fake_training == [("data-size-300", "ResNet-18", 0, "cpu")]
    twin = json.loads((tmp_path / "device_check" / "data-size-300" /
                       "resnet-18__seed0.json").read_text())
    assert twin["command"] == "python benchmarks/device_check.py data-size-300/ResNet-18:0"
    assert twin["gpu_record"] == "data-size-300/resnet-18__seed0.json"   # under --out
    table = (tmp_path / "device_check.md").read_text()
    assert "| data-size-300 / ResNet-18, seed 0 | 75.4% | 80.0% | +4.6 points |" in table
    assert capsys.readouterr().out.endswith(f"wrote {tmp_path / 'device_check.md'}\n")


def test_a_twin_killed_before_its_label_is_labelled_and_a_held_lock_is_left_alone(
        tmp_path, fake_training):
    _record(tmp_path, "data-size-300", "ResNet-18", 0, "cuda", 0.754)
    _record(tmp_path, "data-size-300", "ResNet-18", 1, "cuda", 0.746)
    twin = E._result_path(tmp_path / "device_check", "data-size-300", "ResNet-18", 0)
    twin.parent.mkdir(parents=True)
    twin.write_text(json.dumps({"experiment": "data-size-300", "label": "ResNet-18",
                                "seed": 0, "test_acc": 0.8, "command": "python -m d2l_ext"}))
    assert DC.check(tmp_path, "data", "data-size-300", "ResNet-18", 0)["gpu_record"] == \
        "data-size-300/resnet-18__seed0.json"
    assert "device_check.py" in json.loads(twin.read_text())["command"]
    lock = E._claim(E._result_path(tmp_path / "device_check", "data-size-300", "ResNet-18", 1))
    try:        # another process trains seed 1: this one neither trains it nor waits
        assert DC.check(tmp_path, "data", "data-size-300", "ResNet-18", 1) is None
    finally:
        E.release_lock(lock)
    assert not fake_training
