"""The command line says what is wrong in one line, before any work (issue 13)."""
import subprocess
import sys

import pytest
import torch

import d2l_ext.training as T
from d2l_ext import BaselineCNN, Trainer
from d2l_ext.__main__ import build_parser, main
from d2l_ext.models import MODELS


def fails(argv):
    """The one-line message a command ends with (SystemExit)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture
def no_data(tmp_path):
    """--data that would fail if it were read: a check that passes it came first."""
    return ["--data", str(tmp_path / "no_such_data"), "--root", "/nonexistent"]


def test_an_occupied_out_is_refused_before_loading_data(tmp_path, no_data):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(b"a 30-epoch model")
    message = fails(["train", "--out", str(out), *no_data])
    assert f"{out / 'model.pt'} already exists; pass --overwrite" in message
    assert (out / "model.pt").read_bytes() == b"a 30-epoch model"
    # With --overwrite the run goes on (and here stops at the data, which does not exist).
    assert "no_such_data" in fails(["train", "--out", str(out), "--overwrite", *no_data])


def test_an_unwritable_out_is_one_line_up_front(tmp_path, no_data):
    (tmp_path / "a_file").write_text("not a folder")
    message = fails(["train", "--out", str(tmp_path / "a_file" / "run"), *no_data])
    assert f"--out {tmp_path / 'a_file' / 'run'} is not a writable folder" in message
    assert "no_such_data" not in message


@pytest.mark.parametrize("args, expected", [
    (["--dropout", "1.5", "0.4"], "--dropout rates must be in [0, 1), got 1.5 0.4"),
    (["--dropout", "0.2", "-0.1"], "--dropout rates must be in [0, 1), got 0.2 -0.1"),
    (["--device", "banana"], "--device: device 'banana' is not a device torch knows"),
    (["--model", "baseline", "--dropout", "0", "0"],
     "--dropout does not apply to --model baseline"),
    (["--model", "resnet18", "--stages", "4"], "--stages does not apply to --model resnet18"),
])
def test_bad_settings_are_one_line_before_any_work(args, expected, tmp_path, no_data):
    message = fails(["train", "--out", str(tmp_path / "run"), *args, *no_data])
    assert expected in message


def test_model_settings_are_none_unless_given_and_choices_come_from_the_registry():
    parse = build_parser().parse_args
    args = parse(["train"])
    assert args.dropout is None and args.stages is None
    assert parse(["train", "--model", "resnext", "--stages", "4"]).stages == 4
    model_action = next(a for a in build_parser()._subparsers._group_actions[0]
                        .choices["train"]._actions if a.dest == "model")
    assert list(model_action.choices) == list(MODELS)


def test_devices_torch_rejects_are_one_line(monkeypatch):
    with pytest.raises(ValueError, match="device 'banana' is not a device torch knows"):
        T.resolve_device("banana")
    with pytest.raises(ValueError, match="device 'cuda:x' is not a device torch knows"):
        T.resolve_device("cuda:x")
    # A GPU index the machine does not have (here: a pretend machine with one GPU).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device cuda:9 does not exist: this machine has "
                                         r"1 GPU\(s\) \(cuda:0 to cuda:0\)"):
        T.resolve_device("cuda:9")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_a_backend_this_machine_lacks_is_one_line():
    with pytest.raises(ValueError, match="device 'mps' cannot be used here"):
        T.resolve_device("mps")
    with pytest.raises(ValueError, match="'meta' holds no data"):
        T.resolve_device("meta")


def test_evaluate_on_files_that_are_not_checkpoints_names_the_file(tmp_path):
    model = BaselineCNN(num_classes=5)
    model(torch.zeros(2, 1, 28, 28))
    good = Trainer(max_epochs=1, progress="none").save_checkpoint(tmp_path / "good.pt", model)
    whole = good.read_bytes()
    cases = {"empty.pt": b"", "truncated.pt": whole[:len(whole) // 2],
             "text.pt": b"epoch 1: loss 0.5\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        message = fails(["evaluate", str(tmp_path / name)])
        assert f"{tmp_path / name} is not a readable checkpoint" in message
        assert "pass the model.pt that `python -m d2l_ext train`" in message
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert f"{tmp_path / 'list.pt'} is not a d2l_ext checkpoint" in \
        fails(["evaluate", str(tmp_path / "list.pt")])
    assert "checkpoint" in fails(["evaluate", str(tmp_path / "missing.pt")])
    assert "--device: device 'banana'" in fails(["evaluate", str(good), "--device", "banana"])
    # As a user runs it: one line on stderr, no traceback.
    run = subprocess.run([sys.executable, "-m", "d2l_ext", "evaluate", str(tmp_path / "empty.pt")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().startswith(f"error: {tmp_path / 'empty.pt'} is not a readable")


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_a_run_that_diverges_ends_with_one_line(tmp_path, monkeypatch):
    def diverge(self):
        raise FloatingPointError(f"training loss became nan in epoch {self.epoch + 1} (lr 5)")
    monkeypatch.setattr(Trainer, "fit_epoch", diverge)
    message = fails(["train", "--epochs", "2", "--resize", "16", "--root", "/nonexistent",
                     "--out", str(tmp_path / "run"), "--lr", "5"])
    assert message == (f"error: training loss became nan in epoch 1 (lr 5); nothing was saved "
                       f"({tmp_path / 'run' / 'model.pt'} was not written)")
    assert not (tmp_path / "run").exists()      # made by the run, left empty: removed
