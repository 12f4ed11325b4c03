"""Nothing claimed that did not happen (issue 21): interrupted writes, two runs on one --out,
divergence, class counts, options checked before work, no tracebacks, no litter.

Interruptions are real signals sent to a real ``python`` process at a chosen moment: the
child below makes one moment long (a checkpoint write that has started, the test pass) and
prints ``PAUSED`` there; the test waits for that line and sends the signal.
"""
import copy
import json
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from d2l_ext import BaselineCNN, FashionMNIST5, ResNeXt18, Trainer, experiments as E
from d2l_ext.__main__ import main
from d2l_ext.data import TensorImages
from image_folders import write_image_folder
from d2l_ext.evaluation import confusion_matrix, predict, predictions
from d2l_ext.models import build_model
from d2l_ext.checkpoints import describe_saved, load_checkpoint, saved_epochs
from d2l_ext.locks import remove_litter, take_lock
from d2l_ext.training import clamp_warmup

CHILD = r"""
import os, sys, time
pause = os.environ.get("PAUSE_AT", "")
import torch
if pause.startswith("save:"):          # the write of the N-epoch checkpoint has begun
    epochs, real_save = int(pause[5:]), torch.save
    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and len(obj.get("history", ())) == epochs:
            open(f, "wb").close()       # its temporary file exists, empty, as torch.save starts
            print("PAUSED", flush=True)
            time.sleep(120)
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
elif pause == "test":                   # the test pass has begun
    import d2l_ext.data as D
    real = D.TensorDataModule.test_dataloader
    class Slow:
        def __init__(self, loader):
            self.loader = loader
        def __len__(self):
            return len(self.loader)
        def __iter__(self):
            print("PAUSED", flush=True)
            time.sleep(120)
            yield from self.loader
    D.TensorDataModule.test_dataloader = lambda self: Slow(real(self))
if os.environ.get("TINY_EXPERIMENT"):   # `ablate tiny`: one small CNN, 3 epochs at 16x16
    from d2l_ext import experiments as E
    E.RECIPES["tiny"] = dict(E.RECIPES["5class"], epochs=3, resize=16, batch_size=100, warmup=0)
    E.EXPERIMENTS["tiny"] = ("tiny", [("cnn", dict(model="baseline"))])
from d2l_ext.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


class Child:
    """A ``python`` process whose output lines are read as they come."""

    def __init__(self, cmd, cwd, pause="", preexec_fn=None, env=()):
        def start():
            signal.signal(signal.SIGINT, signal.SIG_DFL)   # even if the tests run with it ignored
            if preexec_fn:
                preexec_fn()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PAUSE_AT=pause, **dict(env)),
                                     preexec_fn=start)
        self.lines, self.out, self.err = queue.Queue(), [], []
        self.readers = [threading.Thread(target=self._read, args=(s, k), daemon=True)
                        for s, k in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self.readers:
            r.start()

    def _read(self, stream, kept):
        for line in stream:
            kept.append(line)
            self.lines.put(line)

    def wait_for(self, matches, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if matches(self.lines.get(timeout=0.5)):
                    return
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
        self.proc.kill()
        pytest.fail(f"never came; output:\n{''.join(self.out)}\n{''.join(self.err)[-3000:]}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def finish(self, timeout=120):
        rc = self.proc.wait(timeout)
        for r in self.readers:
            r.join(10)
        return rc, "".join(self.out), "".join(self.err)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two classes of 16x16 images (8 / 4 / 4 a class in train/, val/, test/): a whole
    train command runs in a fraction of a second."""
    return write_image_folder(tmp_path_factory.mktemp("images"))


def train_args(images, out, *extra, epochs=2):
    return ["train", "--data", str(images), "--model", "baseline", "--resize", "16",
            "--batch-size", "4", "--lr", "0.05", "--epochs", str(epochs), "--out", str(out),
            *extra]


def child(images, out, tmp_path, pause, *extra, epochs=3):
    return Child([sys.executable, "-c", CHILD, *train_args(images, out, *extra, epochs=epochs)],
                 cwd=tmp_path, pause=pause)


def fails(argv):
    """The one line a command ends with: a specific error, not the catch-all."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "unexpected" not in message, message
    return message


def epochs_in(path):
    return len(load_checkpoint(path)["history"])


def litter(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --- 1. a write is claimed only after it happened ---------------------------------------

def test_ctrl_c_during_the_first_checkpoint_write_claims_nothing(images, tmp_path):
    """The epoch-1 write into a fresh --out has begun (its temporary file exists): Ctrl-C.
    The run says nothing was saved, and leaves no temporary file, lock or empty folder.
    Meanwhile a second train into the same --out stops at once; a second Ctrl-C while the
    first is being handled changes nothing."""
    out = tmp_path / "run"
    run = child(images, out, tmp_path, "save:1")
    run.wait_for(lambda line: line.startswith("PAUSED"))
    assert litter(out) == [f"model.pt.tmp{run.proc.pid}"]
    lock = (out / "train.lock").read_text().split()
    assert lock == [str(run.proc.pid), socket.gethostname()]
    # Deliverable 2: the second run stops before any work, naming the holder.
    message = fails(train_args(images, out, "--overwrite", "--seed", "1"))
    assert message == (f"error: --out {out} is in use by another train (PID {run.proc.pid} on "
                       f"{socket.gethostname()}); wait for it to end or choose another --out "
                       f"(if no train runs there any more, delete {out / 'train.lock'})")
    run.signal(signal.SIGINT)
    time.sleep(0.1)
    run.signal(signal.SIGINT)           # while the first is being handled
    rc, stdout, stderr = run.finish()
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert (f"interrupted: stopped in epoch 1; nothing was saved ({out / 'model.pt'} was not "
            f"written)") in stdout
    assert "wrote" not in stdout and "holds" not in stdout
    assert not out.exists()             # made by the run, left empty: removed


def test_overwrite_keeps_model_and_curves_of_one_run_through_kill_and_ctrl_c(images, tmp_path):
    """--overwrite over a 2-epoch run, in a folder where a killed run left an empty
    temporary file and its lock. The next run removes both; Ctrl-C while its first
    checkpoint is being written leaves the old model.pt and curves.png, and it says so.
    Another run, interrupted in its test pass, keeps its 3 epochs with curves.png drawn
    for them: the two files never come from two runs."""
    out = tmp_path / "run"
    assert main(train_args(images, out)) == 0
    old = {name: (out / name).read_bytes() for name in ("model.pt", "curves.png")}
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / f"model.pt.tmp{dead.pid}").write_bytes(b"")          # what SIGKILL leaves
    (out / "train.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")

    run = child(images, out, tmp_path, "save:1", "--overwrite", "--seed", "1")
    run.wait_for(lambda line: line.startswith("PAUSED"))
    assert litter(out) == [f"model.pt.tmp{run.proc.pid}"]     # the killed run's is gone
    assert (out / "train.lock").read_text().split()[0] == str(run.proc.pid)   # taken over
    run.signal(signal.SIGINT)
    rc, stdout, stderr = run.finish()
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert f"removed 1 temporary file(s) a killed run left in {out}" in stdout
    assert (f"interrupted: stopped in epoch 1; {out / 'model.pt'} was not replaced: it still "
            f"holds an earlier run's 2 epoch(s)") in stdout
    assert "kept" not in stdout and "wrote" not in stdout
    assert {name: (out / name).read_bytes() for name in old} == old
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "model.pt"]

    last = child(images, out, tmp_path, "test", "--overwrite", "--seed", "2")
    last.wait_for(lambda line: line.startswith("PAUSED"))
    assert not (out / "curves.png").exists()        # went when the new model.pt came
    last.signal(signal.SIGINT)
    rc, stdout, stderr = last.finish()
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert (f"interrupted during the test pass: no test accuracy; kept {out / 'model.pt'} "
            f"(3 finished epoch(s)) and {out / 'curves.png'}; `python -m d2l_ext evaluate "
            f"{out / 'model.pt'}` reads it") in stdout
    assert epochs_in(out / "model.pt") == 3 and (out / "curves.png").read_bytes() != old["curves.png"]
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "model.pt"]


def test_ctrl_c_during_an_ablate_checkpoint_write_says_what_the_file_holds(tmp_path):
    """Inside ``ablate``, the epoch-2 checkpoint write has begun: the run says its
    checkpoint holds 1 epoch (it said 2 before), and leaves no temporary file or lock."""
    run = Child([sys.executable, "-c", CHILD, "ablate", "tiny", "--seeds", "0", "--out",
                 str(tmp_path), "--root", "/nonexistent"], cwd=tmp_path, pause="save:2",
                env={"TINY_EXPERIMENT": "1"})
    run.wait_for(lambda line: line.startswith("PAUSED"))
    [checkpoint] = (tmp_path / "tiny").glob("cnn__seed0.*.pt")
    run.signal(signal.SIGINT)
    rc, stdout, stderr = run.finish()
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert f"interrupted: stopped in epoch 2; {checkpoint} holds the 1 finished epoch(s)" in stdout
    assert "finished runs are kept; the run in progress keeps what its checkpoint holds" in stdout
    assert epochs_in(checkpoint) == 1
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [checkpoint.name]


def test_ctrl_c_while_torch_loads_is_one_line(tmp_path):
    """``python -X importtime`` prints each module as it is loaded: Ctrl-C once torch.nn is."""
    out = tmp_path / "run"
    run = Child([sys.executable, "-X", "importtime", "-m", "d2l_ext", "train", "--out", str(out)],
                cwd=tmp_path)
    run.wait_for(lambda line: re.search(r"\|\s+torch\.nn$", line.rstrip()) is not None)
    run.signal(signal.SIGINT)
    rc, stdout, stderr = run.finish()
    assert rc == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert "interrupted while loading torch: nothing was done" in stderr
    assert stdout == "" and not out.exists()


def test_a_full_disk_is_one_line_and_leaves_nothing(images, tmp_path):
    """Files may not grow past 60 kB (RLIMIT_FSIZE: writes fail as on a full disk): the
    first checkpoint cannot be written. One line, exit 1, no temporary file, no --out."""
    out = tmp_path / "new" / "run"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    run = Child([sys.executable, "-m", "d2l_ext", *train_args(images, out)], cwd=tmp_path,
                preexec_fn=small_files)
    rc, stdout, stderr = run.finish()
    assert rc == 1 and "Traceback" not in stderr, stderr
    last = stderr[stderr.rindex("error: "):].strip()     # after the progress bar's \r
    assert re.fullmatch(rf"error: cannot write {re.escape(str(out / 'model.pt'))}: .+ "
                        rf"\(.+\); nothing was saved \({re.escape(str(out / 'model.pt'))} was "
                        rf"not written\)", last), last
    assert "enforce fail" not in last and not (tmp_path / "new").exists()
    assert "wrote" not in stdout


# --- 2. one run per --out ---------------------------------------------------------------

def test_a_lock_of_a_live_process_or_another_host_stops_train_and_a_dead_ones_is_taken(
        images, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    lock = out / "train.lock"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        lock.write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        assert f"is in use by another train (PID {sleeper.pid} on" in fails(
            train_args(tmp_path / "no_such_data", out))    # before the data is looked at
        assert lock.read_text().split()[0] == str(sleeper.pid)      # not taken
    finally:
        sleeper.kill()
        sleeper.wait()
    lock.write_text(f"{sleeper.pid} elsewhere.example\n")
    assert f"(PID {sleeper.pid} on elsewhere.example)" in fails(train_args(images, out))
    lock.write_text(f"{sleeper.pid} {socket.gethostname()}\n")      # dead now: stale
    assert main(train_args(images, out)) == 0
    assert not lock.exists() and epochs_in(out / "model.pt") == 2
    assert take_lock(lock) is None and take_lock(lock) == (os.getpid(), socket.gethostname())


def test_a_run_that_fails_after_the_out_check_leaves_no_folder_it_made(tmp_path, images):
    out = tmp_path / "a" / "b"
    assert "no_such_data" in fails(train_args(tmp_path / "no_such_data", out))
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    fails(train_args(tmp_path / "no_such_data", existing))
    assert existing.is_dir() and list(existing.iterdir()) == []   # not made by the run: stays


# --- 3. divergence is an error ----------------------------------------------------------

def test_a_diverging_learning_rate_is_an_error_that_writes_nothing(images, tmp_path):
    """The issue's ``--momentum 5`` (now refused up front) trained to a loss of 3.7e17 and
    exited 0; a learning rate of 30 blows up in the first epoch."""
    out = tmp_path / "new" / "run"
    message = fails(train_args(images, out, "--lr", "30", "--schedule", "none", "--warmup", "0"))
    assert re.fullmatch(r"error: training loss (reached \S+ in epoch 1 \(lr 30\), above the "
                        r"bound 1000 \(Trainer.max_train_loss\)|became (nan|inf) in epoch 1 .*)"
                        r".*; nothing was saved \(" + re.escape(str(out / "model.pt"))
                        + r" was not written\)", message), message
    assert not (tmp_path / "new").exists()


def test_the_bound_on_the_training_loss_is_the_trainers(tiny):
    trainer = Trainer(max_epochs=1, progress="none")
    trainer.max_train_loss = 0.01
    with pytest.raises(FloatingPointError, match=r"training loss reached \S+ in epoch 1 \(lr "
                                                 r"0.1\), above the bound 0.01"):
        trainer.fit(BaselineCNN(num_classes=5), tiny)


def _nan_weights_after_epoch(monkeypatch, epoch):
    """After the last step of epoch ``epoch``, every weight becomes nan: that epoch's
    training loss is finite, its validation loss is not."""
    real = Trainer.train_step

    def step(self, batch):
        result = real(self, batch)
        if self.epoch + 1 == epoch and self.train_batch_idx % self.num_train_batches == 0:
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))
        return result
    monkeypatch.setattr(Trainer, "train_step", step)


def test_a_nan_validation_loss_ends_the_run_keeping_the_last_finite_epoch(images, tmp_path,
                                                                           monkeypatch):
    _nan_weights_after_epoch(monkeypatch, 2)
    out = tmp_path / "run"
    message = fails(train_args(images, out, epochs=3))
    assert message.startswith("error: validation loss became nan in epoch 2 (lr 0.05): the "
                              "run diverged")
    assert message.endswith(f"; kept {out / 'model.pt'} (1 finished epoch(s)) and "
                            f"{out / 'curves.png'}")
    assert epochs_in(out / "model.pt") == 1 and (out / "curves.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "model.pt"]


def test_a_nan_in_the_first_epoch_writes_nothing_and_says_so(images, tmp_path, monkeypatch):
    _nan_weights_after_epoch(monkeypatch, 1)
    out = tmp_path / "new" / "run"
    message = fails(train_args(images, out))
    assert message.startswith("error: validation loss became nan in epoch 1 (lr ")
    assert message.endswith(f"; nothing was saved ({out / 'model.pt'} was not written)")
    assert not (tmp_path / "new").exists()


# --- 4. class counts --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(offline_fashion_mnist):
    data = FashionMNIST5(batch_size=25, resize=16, train_per_class=4, val_per_class=4,
                         root="/nonexistent", download=False)
    data.test = TensorImages(data.test.images[:50], data.test.labels[:50], data.MEAN, data.STD)
    return data


@pytest.mark.parametrize("classes", [10, 3])
def test_fit_refuses_a_model_with_another_number_of_outputs(tiny, classes):
    with pytest.raises(ValueError, match=rf"the model has {classes} outputs \(num_classes="
                                         rf"{classes}\) but the data has 5 classes \(t-shirt, "
                                         rf".*\): build the model with num_classes=5"):
        Trainer(max_epochs=1, progress="none").fit(BaselineCNN(num_classes=classes), tiny)


def test_restore_refuses_a_checkpoint_of_another_shape(tiny, tmp_path):
    model = build_model("resnext", num_classes=5, stages=5)
    model(torch.zeros(2, 1, 16, 16))
    trainer = Trainer(max_epochs=1, progress="none")
    trainer.save_checkpoint(tmp_path / "five.pt", model)
    with pytest.raises(ValueError, match=r"five.pt was saved from a ResNeXt with 5 outputs "
                                         r"\(num_classes=5\), this model has 10 outputs "
                                         r"\(num_classes=10\)"):
        Trainer(max_epochs=2).restore(tmp_path / "five.pt", ResNeXt18(num_classes=10))
    with pytest.raises(ValueError, match=r"five.pt was saved from a ResNeXt with 5 stages .*, "
                                         r"this model has 3 stages"):
        Trainer(max_epochs=2).restore(tmp_path / "five.pt", ResNeXt18())
    with pytest.raises(ValueError, match="five.pt holds a ResNeXt, this model is a BaselineCNN"):
        Trainer(max_epochs=2).restore(tmp_path / "five.pt", BaselineCNN(num_classes=5))
    # test() checks the data it is given too
    three = copy.copy(tiny)
    three.classes = tiny.classes[:4]
    with pytest.raises(ValueError, match="the model has 5 outputs .* the data has 4 classes"):
        trainer.test(model, three)


def test_evaluate_names_both_numbers_without_class_names(images, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(images, out, epochs=1)) == 0
    ckpt = torch.load(out / "model.pt", weights_only=True)
    ckpt["class_names"] = []
    torch.save(ckpt, out / "nameless.pt")
    three = tmp_path / "three"
    for name in ("a", "b", "c"):
        (three / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((16, 16), 40 * i, np.uint8), "L").save(three / name / f"{i}.png")
    assert fails(["evaluate", str(out / "nameless.pt"), "--data", str(three)]) == (
        f"error: {out / 'nameless.pt'} holds a model with 2 outputs (classes), --data {three} "
        f"has 3 classes (a, b, c)")


def test_predict_misuse_is_a_sentence(tiny):
    model = BaselineCNN(num_classes=5)
    X, _ = next(iter(tiny.val_dataloader()))
    names = tiny.classes
    assert len(predict(model, X[:2], class_names=names, top=5)[0]) == 5
    cases = [
        (dict(images=(X[:2] * 255).to(torch.uint8)), "takes a float tensor .* got torch.uint8"),
        (dict(images=[], data=tiny), "got no images"),
        (dict(images=X[:0]), "at least one image, got shape"),
        (dict(images=X[:2], top=6), "top=6 is more than the model's 5 classes"),
        (dict(images=X[:2], top=0), "top must be a positive integer"),
        (dict(images=X[:2], class_names=names[:3]), "5 outputs .* but 3 class names"),
        (dict(images=7, data=tiny), "file names, PIL images or a tensor, got int"),
    ]
    for kwargs, expected in cases:
        kwargs = dict(dict(class_names=names), **kwargs)
        with pytest.raises(ValueError, match=expected):
            predict(model, **kwargs)
    with pytest.raises(ValueError, match="5 outputs .* a label 7"):
        predictions(model, [(X[:2], torch.tensor([0, 7]))])
    with pytest.raises(ValueError, match="num_classes=3, but the model has 5 outputs"):
        confusion_matrix(model, [(X[:2], torch.tensor([0, 1]))], num_classes=3)


# --- 5. options before work, API misuse, litter -----------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["train", "--momentum", "5"], "--momentum must be in [0, 1)"),
    (["train", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["train", "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["train", "--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    (["train", "--resize", "8"], "--resize must be at least 16 pixels"),
    (["train", "--seed", "-1"], "--seed must be an integer in [0, 2**32), got -1"),
    (["train", "--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["train", "--epochs", "3", "--warmup", "3"], "--warmup must be in [0, epochs) = [0, 3)"),
    (["ablate", "baselines", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["ablate", "baselines", "--seeds", "0", "-2"], "--seeds must be an integer in [0, 2**32)"),
    (["ablate", "baselines", "--seeds", "1", "1"], "--seeds has a seed twice: 1 1"),
    (["ablate", "baselines", "--device", "banana"], "--device: device 'banana'"),
    (["evaluate", "x.pt", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["evaluate", "x.pt", "--resize", "4"], "--resize must be at least 16 pixels"),
])
def test_every_commands_numbers_are_checked_before_any_work(argv, expected, tmp_path):
    out = tmp_path / "out"
    extra = ["--out", str(out)] if argv[0] != "evaluate" else []
    assert expected in fails([*argv, *extra, "--root", "/nonexistent"])
    assert not out.exists()


def test_the_rules_live_in_the_library_and_build_run_keeps_them():
    """``recipes.check_recipe`` is where the numbers' rules are (the command line says its
    failures as options); ``build_run`` checks a recipe before any data is read."""
    from d2l_ext.recipes import RECIPES, RecipeError, build_run, check_recipe
    assert check_recipe(RECIPES["train"]) is RECIPES["train"]
    for field, value, message in (("momentum", 1.0, "momentum must be in [0, 1)"),
                                  ("warmup", 60, "warmup must be in [0, epochs) = [0, 60)"),
                                  ("schedule", "step", "schedule must be None or 'cosine'"),
                                  ("augment", "cutout", "augment must be one of")):
        with pytest.raises(RecipeError, match=re.escape(message)) as e:
            check_recipe(dict(RECIPES["train"], **{field: value}))
        assert e.value.field == field
    with pytest.raises(RecipeError, match="lr must be a finite number > 0, got nan"):
        build_run(dict(RECIPES["5class"], lr=float("nan")), {"model": "baseline"},
                  root="/nonexistent-and-never-read")

@pytest.mark.usefixtures("offline_fashion_mnist")
def test_short_ablations_clamp_the_warmup_as_train_does(tmp_path, monkeypatch):
    """``ablate baselines --epochs 3`` (warm-up 3 in its recipe) crashed; now it trains with
    train's rule. A killed attempt's temporary files are removed when the run is redone."""
    assert E._run_recipe("baselines", 3)[0]["warmup"] == clamp_warmup(3, 3) == 2
    assert E._run_recipe("baselines", 1)[0]["warmup"] == 0
    assert E._run_recipe("baselines")[0] == E.RECIPES["5class"]   # the recipe's own: untouched
    recipe = dict(E.RECIPES["5class"], epochs=60, resize=16, batch_size=100, warmup=3)
    monkeypatch.setitem(E.RECIPES, "tiny", recipe)
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline"))]))
    folder = tmp_path / "tiny-1ep"
    folder.mkdir()
    (folder / "cnn__seed0.json.tmp4242").write_bytes(b"")
    assert main(["ablate", "tiny", "--epochs", "1", "--seeds", "0", "--out", str(tmp_path),
                 "--root", "/nonexistent"]) == 0
    assert json.loads((folder / "cnn__seed0.json").read_text())["recipe"]["warmup"] == 0
    assert litter(folder) == []


def test_a_symlink_to_itself_in_an_image_folder_is_one_line(images, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(images, data)
    (data / "train" / "a" / "self").symlink_to("self")
    assert fails(train_args(data, tmp_path / "out")) == (
        f"error: cannot follow {data / 'train' / 'a' / 'self'}: Too many levels of symbolic "
        f"links (a symbolic link to itself or in a circle?): remove or fix it")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, expected", [
    ('{"test_acc": 0.5, "lab', "is not a readable result file"),
    ('{"test_acc": 0.5}', "is not a whole run record (label, config, seed, recipe, seconds, "
                          "history, train_loss, val_acc, config.model, an lr in config or "
                          "recipe: missing or of the wrong type)"),
    ("[1, 2]", "is not a whole run record (a JSON list, not an object)"),
])
def test_tables_over_a_broken_result_file_is_one_line(content, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)         # `tables` also refills ./docs pages: none here
    (tmp_path / "res" / "baselines").mkdir(parents=True)
    (tmp_path / "res" / "baselines" / "x__seed0.json").write_text(content)
    message = fails(["tables", "--out", str(tmp_path / "res")])
    assert expected in message and "delete it" in message


def test_tables_without_results_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "is not a folder of results" in fails(["tables", "--out", str(tmp_path / "none")])
    (tmp_path / "empty").mkdir()
    assert "no result files in" in fails(["tables", "--out", str(tmp_path / "empty")])


def test_trainer_misuse_is_a_sentence(tmp_path):
    with pytest.raises(RuntimeError, match=r"Trainer.test\(\) has no model or data yet"):
        Trainer(max_epochs=1).test()
    with pytest.raises(RuntimeError, match="save_checkpoint has no model to save"):
        Trainer(max_epochs=1).save_checkpoint(tmp_path / "m.pt")
    with pytest.raises(RuntimeError, match="still has lazy .* layers"):
        Trainer(max_epochs=1).save_checkpoint(tmp_path / "m.pt", BaselineCNN())
    assert litter(tmp_path) == [] and not (tmp_path / "m.pt").exists()


def test_what_a_checkpoint_holds_is_read_from_the_file(tiny, tmp_path):
    path = tmp_path / "c.pt"
    assert describe_saved(path) == f"nothing was saved ({path} was not written)"
    trainer = Trainer(max_epochs=2, progress="none", checkpoint=path)
    trainer.fit(BaselineCNN(num_classes=5), tiny)
    assert saved_epochs(path, trainer.history) == (2, True)
    assert saved_epochs(path, trainer.history[:1]) == (2, False)   # not this history's epochs
    assert describe_saved(path, []) == (f"{path} was not replaced: it still holds an earlier "
                                        f"run's 2 epoch(s)")
    path.write_bytes(b"garbage")
    assert describe_saved(path) == f"{path} cannot be read"
    (tmp_path / "c.pt.tmp123").write_bytes(b"")
    (tmp_path / "c.pt.tmpx").write_bytes(b"")           # not a name atomic_save uses: stays
    assert remove_litter(tmp_path, ["c.pt"]) == [tmp_path / "c.pt.tmp123"]
    assert litter(tmp_path) == ["c.pt.tmpx"]
