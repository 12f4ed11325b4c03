"""Trainer: history, determinism, checkpoints, resume, Ctrl-C, devices, progress (issue 3)."""
import math
import subprocess
import sys
import warnings

import pytest
import torch
from d2l import torch as d2l

import d2l_ext.training as T
from d2l_ext.checkpoints import state_digest
from d2l_ext import FashionMNIST5, ResNeXt18, BaselineCNN, Trainer, load_checkpoint, \
    model_from_checkpoint
from d2l_ext.data import TensorImages
from d2l_ext.evaluation import accuracy, confusion_matrix, per_class_accuracy, predict, predictions


@pytest.fixture(scope="module")
def tiny(offline_fashion_mnist):
    """100 training images (20 per class) at 16x16; 500 validation images (100 per class)."""
    data = FashionMNIST5(batch_size=25, resize=16, train_per_class=20, root="/nonexistent",
                         download=False)
    keep = torch.cat([(data.val.labels == c).nonzero().flatten()[:100] for c in range(5)])
    keep = keep.sort().values
    data.val = TensorImages(data.val.images[keep], data.val.labels[keep], data.MEAN, data.STD)
    return data


def fit(data, epochs=2, **kwargs):
    model = ResNeXt18(lr=0.05)
    trainer = Trainer(max_epochs=epochs, progress="none", **kwargs)
    trainer.fit(model, data)
    return model, trainer


def test_history_is_per_epoch_and_weighted_over_the_whole_val_set(tiny):
    model, trainer = fit(tiny, seed=0)
    assert [h["epoch"] for h in trainer.history] == [1, 2]
    assert set(trainer.history[0]) == {"epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds"}
    # The last val accuracy is over all 500 images, the same as a separate count.
    assert trainer.history[-1]["val_acc"] == pytest.approx(accuracy(model, tiny.val_dataloader()),
                                                           abs=1e-6)
    C = confusion_matrix(model, tiny.val_dataloader())
    assert C.sum().item() == 500 and C.sum(1).tolist() == [100] * 5
    assert per_class_accuracy(C).mean().item() == pytest.approx(trainer.history[-1]["val_acc"],
                                                                abs=1e-6)


def test_fit_twice_trains_twice_from_a_fresh_optimizer(tiny):
    model, trainer = fit(tiny, epochs=1, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, tiny)            # as d2l's: another max_epochs, not "already done"
    assert [h["epoch"] for h in trainer.history] == [1]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    other = ResNeXt18(lr=0.05)
    trainer.fit(other, tiny)            # the same Trainer on a new model trains that model
    assert len(trainer.history) == 1 and trainer.optim.param_groups[0]["params"][0] is \
        next(other.parameters())


def test_history_records_the_lr_each_epoch_trained_with(tiny):
    _, trainer = fit(tiny, epochs=4, seed=0, momentum=0.9, schedule="cosine", warmup=2)
    lrs = [h["lr"] for h in trainer.history]
    assert lrs == pytest.approx([0.025, 0.05, 0.05, 0.025])     # warm-up 1/2, 2/2; cosine
    _, plain = fit(tiny, epochs=2, seed=0)
    assert [h["lr"] for h in plain.history] == [0.05, 0.05]     # the model's own SGD, as d2l


def test_a_resumed_cosine_schedule_follows_the_new_max_epochs(tiny, tmp_path):
    path = tmp_path / "two.pt"
    fit(tiny, epochs=2, seed=0, momentum=0.9, schedule="cosine", checkpoint=path)
    model = ResNeXt18(lr=0.05)
    more = Trainer(max_epochs=4, progress="none", seed=0, momentum=0.9, schedule="cosine")
    more.restore(path, model)
    more.fit(model, tiny)
    lrs = [h["lr"] for h in more.history]
    assert lrs[:2] == pytest.approx([0.05, 0.025])              # the checkpoint's epochs
    assert lrs[2:] == pytest.approx([0.025, 0.05 * (1 + math.cos(math.pi * 3 / 4)) / 2])
    assert all(lr > 0 for lr in lrs) and lrs[2:] == sorted(lrs[2:], reverse=True)


def test_the_schedule_applies_to_the_models_own_optimizer(tiny):
    """Momentum and weight decay 0: the model's ``configure_optimizers`` (here Adam) is kept,
    and warm-up and cosine set its learning rate each epoch, as they would SGD's."""
    class AdamCNN(BaselineCNN):
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.lr)
    trainer = Trainer(max_epochs=3, warmup=1, schedule="cosine", progress="none", seed=0)
    trainer.fit(AdamCNN(lr=0.01, num_classes=5), tiny)
    assert isinstance(trainer.optim, torch.optim.Adam)
    assert [h["lr"] for h in trainer.history] == pytest.approx([0.01, 0.01, 0.005])
    sgd = Trainer(max_epochs=1, momentum=0.9, progress="none")
    sgd.fit(AdamCNN(lr=0.01, num_classes=5), tiny)               # momentum asks for SGD
    assert isinstance(sgd.optim, torch.optim.SGD) and sgd.optim.defaults["nesterov"]


def test_a_model_with_its_own_training_step_is_refused(tiny):
    """The loop computes ``model.loss(model(X), y)`` itself: a ``training_step`` of the
    model's own would be skipped without a word, so such a model is refused, by name."""
    class Custom(BaselineCNN):
        def training_step(self, batch):
            return super().training_step(batch) * 2
    with pytest.raises(TypeError, match=r"^Custom defines its own training_step, which "
                                        r"d2l_ext.Trainer does not call"):
        Trainer(max_epochs=1, progress="none").fit(Custom(lr=0.1, num_classes=5), tiny)
    T.Trainer.check_model(BaselineCNN(lr=0.1))     # d2l's own steps: accepted

def test_batch_norm_statistics_are_recomputed_before_evaluation(tiny):
    """The epoch-1 spike: running averages lag the weights when an epoch is a few steps."""
    _, stale = fit(tiny, epochs=1, seed=0, momentum=0.9, recompute_bn=False)
    _, fresh = fit(tiny, epochs=1, seed=0, momentum=0.9)
    assert stale.history[0]["train_loss"] == fresh.history[0]["train_loss"]   # same training
    assert stale.history[0]["val_loss"] > 10 * fresh.history[0]["val_loss"]
    assert fresh.history[0]["val_loss"] < 10


def test_a_non_finite_loss_stops_the_run_with_its_reason(tiny):
    with pytest.raises(FloatingPointError, match=r"training loss became nan in epoch 1 \(lr nan\)"):
        Trainer(max_epochs=1, progress="none").fit(ResNeXt18(lr=float("nan")), tiny)


def test_same_seed_same_loss_curve(tiny):
    _, a = fit(tiny, seed=3)
    _, b = fit(tiny, seed=3)
    _, c = fit(tiny, seed=4)
    curve = lambda t: [(h["train_loss"], h["val_loss"]) for h in t.history]
    assert curve(a) == curve(b)
    assert curve(a) != curve(c)


def test_checkpoint_round_trip_and_resume(tiny, tmp_path):
    path = tmp_path / "model.pt"
    model, trainer = fit(tiny, epochs=1, seed=0, checkpoint=path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["class_names"] == tiny.classes and len(ckpt["history"]) == 1
    assert ckpt["hparams"]["arch"] == [[2, 64], [2, 128], [2, 256]]
    assert ckpt["input_size"] == [16, 16]          # what `evaluate` resizes test images to
    loaded = model_from_checkpoint(path)
    X, _ = next(iter(tiny.val_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), model(X), rtol=1e-4, atol=1e-4)  # memory layouts
    assert predict(loaded, X[:2], class_names=loaded.class_names)[0][0][0] in tiny.classes

    resumed_model = ResNeXt18(lr=0.05)
    resumed = Trainer(max_epochs=3, progress="none", seed=0, checkpoint=path)
    resumed.restore(path, resumed_model)
    resumed.fit(resumed_model, tiny)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == trainer.history[0]
    assert len(load_checkpoint(path)["history"]) == 3


class InterruptingLoader:
    """Yields the real batches but raises KeyboardInterrupt in the second epoch."""

    def __init__(self, loader, at_call):
        self.loader, self.calls, self.at_call = loader, 0, at_call

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.calls += 1
        for i, batch in enumerate(self.loader):
            if self.calls == self.at_call and i == 2:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_stops_cleanly_and_keeps_model_history_and_checkpoint(tiny, tmp_path, capsys):
    real = tiny.train_dataloader
    # call 1 is prepare_model's look at one batch, call 2 is epoch 1, call 3 is epoch 2
    # (call 3 recomputes batch norm's statistics after epoch 1)
    loader = InterruptingLoader(real(), at_call=4)
    tiny.train_dataloader = lambda **_: loader
    try:
        model, trainer = fit(tiny, epochs=5, seed=0, checkpoint=tmp_path / "c.pt")
    finally:
        del tiny.train_dataloader
    assert trainer.interrupted and len(trainer.history) == 1
    assert ("interrupted: stopped in epoch 2; " + str(tmp_path / "c.pt") + " holds the 1 "
            "finished epoch(s)") in capsys.readouterr().out
    assert not model.training
    assert model(next(iter(tiny.val_dataloader()))[0]).shape == (25, 5)
    assert len(load_checkpoint(tmp_path / "c.pt")["history"]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_gpu_is_said_once(monkeypatch):
    monkeypatch.setattr(T, "_warned_no_gpu", False)
    with pytest.warns(UserWarning, match="a GPU was asked for but none is available"):
        assert T.resolve_device("cuda") == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Trainer(max_epochs=1, num_gpus=1).device == torch.device("cpu")


def test_terminal_progress_prints_epochs_not_figures(tiny, capsys):
    Trainer(max_epochs=2, progress="terminal", seed=0).fit(BaselineCNN(num_classes=5), tiny)
    out = capsys.readouterr()
    lines = [l for l in out.out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2 and "val acc" in lines[0]
    assert "<Figure" not in out.out + out.err


def test_d2l_progress_board_really_draws():
    board = d2l.ProgressBoard(xlabel="epoch", display=True)
    for x in range(4):
        board.draw(x, x * x, "loss", every_n=1)
    ys = board.fig.axes[0].lines[-1].get_ydata()
    assert list(ys) == [0, 1, 4, 9]


def test_bad_trainer_arguments():
    with pytest.raises(ValueError, match="max_epochs"):
        Trainer(max_epochs=0)
    with pytest.raises(ValueError, match="schedule"):
        Trainer(max_epochs=1, schedule="step")
    with pytest.raises(ValueError, match=r"warmup must be an integer number of epochs in "
                                         r"\[0, max_epochs\), got 3"):
        Trainer(max_epochs=3, warmup=3)


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_main_command_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "d2l_ext", "train", "--epochs", "1", "--resize", "16",
         "--root", "/nonexistent", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "500 training, 1000 validation and 5000 test images" in result.stdout
    assert "test accuracy:" in result.stdout and "(5000 images, read once)" in result.stdout
    assert (out / "model.pt").is_file() and (out / "curves.png").stat().st_size > 5000
    bad = subprocess.run([sys.executable, "-m", "d2l_ext", "train", "--data", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and str(tmp_path / "nope") in bad.stderr

    # `evaluate` finds the input size in the checkpoint and gives train's test accuracy back.
    from d2l_ext.__main__ import main
    trained = float(result.stdout.split("test accuracy: ")[1].split()[0])
    evaluate = [sys.executable, "-m", "d2l_ext", "evaluate", str(out / "model.pt"),
                "--root", "/nonexistent", "--tta", "flip"]
    again = subprocess.run(evaluate, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "(5000 test images of fashion5, 16x16)" in again.stdout and "with flip TTA:" in again.stdout
    assert abs(float(again.stdout.split("test accuracy: ")[1].split()[0]) - trained) <= 2 / 5000
    with pytest.raises(SystemExit, match="trained on 5 classes .* --data fashion has 10"):
        main(["evaluate", str(out / "model.pt"), "--data", "fashion", "--root", "/nonexistent"])


def test_flip_tta_averages_each_image_with_its_mirror(tiny):
    model, _ = fit(tiny, epochs=1, seed=0)
    X, y = next(iter(tiny.val_dataloader()))
    *_, probs = predictions(model, [(X, y)], tta="flip")
    with torch.no_grad():
        expected = (model(X).softmax(1) + model(X.flip(-1)).softmax(1)) / 2
    torch.testing.assert_close(probs, expected)
    symmetric = (X + X.flip(-1)) / 2                  # its own mirror image: nothing to average
    torch.testing.assert_close(predictions(model, [(symmetric, y)], tta="flip")[3],
                               predictions(model, [(symmetric, y)])[3])
    with pytest.raises(ValueError, match="'rotate'"):
        accuracy(model, tiny.val_dataloader(), tta="rotate")


def test_bf16_autocast_on_the_cpu_is_opt_in(tiny, monkeypatch):
    with pytest.raises(ValueError, match="amp must be True, False or 'bf16', got 'fp16'"):
        Trainer(max_epochs=1, amp="fp16")
    with Trainer(max_epochs=1, device="cpu").autocast():
        assert not torch.is_autocast_enabled("cpu")             # the default stays fp32 here
    with Trainer(max_epochs=1, device="cpu", amp="bf16").autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    _, fp32 = fit(tiny, epochs=1, seed=0)
    _, bf16 = fit(tiny, epochs=1, seed=0, amp="bf16")
    loss = lambda t: t.history[0]["train_loss"]
    assert loss(bf16) != loss(fp32)                               # really another precision,
    assert loss(bf16) == pytest.approx(loss(fp32), rel=0.15)      # and the same training
    # (one chaotic epoch: 7% apart on an AVX2 CPU, where bf16 is emulated)
    monkeypatch.setattr(T, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bf16"):
        Trainer(max_epochs=1, device="cpu", amp="bf16")


def test_cli_augment_option():
    from d2l_ext.__main__ import build_parser, train_recipe
    parse = build_parser().parse_args
    assert parse(["train"]).augment is None and train_recipe(parse(["train"]))["augment"] is False
    assert parse(["train", "--augment"]).augment == "crop-flip"
    assert parse(["train", "--augment", "crop-flip-erase"]).augment == "crop-flip-erase"
    with pytest.raises(SystemExit):
        parse(["train", "--augment", "cutout"])
    assert parse(["train"]).bf16 is False and parse(["train", "--bf16"]).bf16 is True


# --- issue 13: a last batch of one, corrupted checkpoints, evaluation as the Trainer does ----

def test_a_last_training_batch_of_one_image_trains_at_1x1_maps(tiny):
    """21 images at batch 10 leave a batch of one; the 5-stage net at 16x16 has 1x1 maps,
    where batch norm cannot train on one value per channel: the batch is merged instead."""
    import copy
    from d2l_ext.models import build_model
    data = copy.copy(tiny)
    data.train = TensorImages(tiny.train.images[:21], tiny.train.labels[:21], data.MEAN, data.STD)
    data.batch_size = 10
    assert [len(y) for _, y in data.train_dataloader(shuffle_seed=0)] == [10, 11]
    trainer = Trainer(max_epochs=1, progress="none", seed=0)
    trainer.fit(build_model("resnext", num_classes=5, stages=5), data)
    assert len(trainer.history) == 1 and trainer.num_train_batches == 2
    data.batch_size = 1         # every batch one image: a clear error, not torch's
    with pytest.raises(T.BatchTooSmallError, match="a training batch of 1 image\\(s\\) reaches "
                                                   "a 1x1 feature map.*batch size of 2 or more"):
        Trainer(max_epochs=1, progress="none").fit(build_model("resnext", num_classes=5,
                                                               stages=5), data)


def _corrupt_a_weight(path, name="net.b4.1.conv2.weight", nbytes=4096):
    """Overwrite ``nbytes`` of one tensor's data inside a torch.save zip, in place."""
    import zipfile
    ckpt = torch.load(path, weights_only=True)
    target = ckpt["state_dict"][name]
    with zipfile.ZipFile(path) as z:
        # the stored tensor whose bytes are the target's
        info = next(i for i in z.infolist() if "/data/" in i.filename
                    and z.read(i) == target.numpy().tobytes())
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        f.seek(info.header_offset + 30 + name_len + extra_len + 64)
        f.write(b"\xff" * nbytes)


def test_a_corrupted_checkpoint_is_refused_naming_the_file(tmp_path, capsys):
    from d2l_ext.__main__ import main
    model = ResNeXt18(lr=0.05)
    model(torch.zeros(2, 1, 16, 16))
    path = Trainer(max_epochs=1, progress="none").save_checkpoint(tmp_path / "m.pt", model)
    good = load_checkpoint(path)
    assert good["state_digest"] == state_digest(good["state_dict"])
    _corrupt_a_weight(path)
    raw = torch.load(path, weights_only=True)["state_dict"]["net.b4.1.conv2.weight"]
    assert raw.isnan().any()                   # what used to load silently
    message = f"{path} is corrupted: its weights do not match the digest"
    for load in (load_checkpoint, model_from_checkpoint,
                 lambda p: Trainer(max_epochs=2).restore(p, ResNeXt18())):
        with pytest.raises(ValueError, match=message):
            load(path)
    with pytest.raises(SystemExit, match=message):
        main(["evaluate", str(path)])
    # A checkpoint from before digests loads; one with non-finite weights does not.
    old = dict(good)
    del old["state_digest"]
    torch.save(old, tmp_path / "old.pt")
    assert torch.equal(load_checkpoint(tmp_path / "old.pt")["state_dict"]["net.0.0.weight"],
                       good["state_dict"]["net.0.0.weight"])
    old["state_dict"] = dict(old["state_dict"], **{"net.0.0.bias": torch.full((64,), math.inf)})
    torch.save(old, tmp_path / "inf.pt")
    with pytest.raises(ValueError, match=f"{tmp_path / 'inf.pt'} has non-finite .* "
                                         f"net.0.0.bias"):
        load_checkpoint(tmp_path / "inf.pt")


def test_predictions_use_the_trainers_autocast_and_keep_inputs_only_when_asked(tiny):
    model = ResNeXt18(lr=0.05)
    trainer = Trainer(max_epochs=1, progress="none", amp="bf16", device="cpu")
    trainer.setup(model, tiny)      # the model is the trainer's now, weights untrained
    X, y = next(iter(tiny.val_dataloader()))
    inputs, labels, _, probs = predictions(model, [(X, y)])
    assert inputs is None and torch.equal(labels, y)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(X.contiguous(memory_format=torch.channels_last)).float().softmax(1)
    with torch.no_grad():
        fp32 = model(X).softmax(1)
    torch.testing.assert_close(probs, bf16)
    assert not torch.allclose(probs, fp32, atol=1e-4)
    kept, *_ = predictions(model, [(X, y)], keep_inputs=True)
    assert torch.equal(kept, X)
    with pytest.raises(ValueError, match="yielded no images"):
        trainer.evaluate(model, [])
