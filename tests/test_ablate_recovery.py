"""``ablate`` is never stuck on a broken result file: it says so and redoes the run (issue 13)."""
import json
import os
import time

import pytest

from d2l_ext import experiments as E
from d2l_ext.training import Trainer


@pytest.fixture
def tiny(monkeypatch):
    recipe = dict(E.RECIPES["5class"], epochs=1, resize=16, batch_size=100, warmup=0)
    monkeypatch.setitem(E.RECIPES, "tiny", recipe)
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline"))]))


@pytest.mark.parametrize("content", ["", '{"experiment": "tiny", "conf', "null"])
@pytest.mark.usefixtures("offline_fashion_mnist")
def test_an_empty_or_cut_short_result_file_is_named_and_the_run_redone(tiny, tmp_path,
                                                                       content):
    path = tmp_path / "tiny" / "cnn__seed0.json"
    path.parent.mkdir()
    path.write_text(content)
    log = []
    done = E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append)
    assert log[0] == (f"[tiny] cnn seed 0: warning: {path} is empty or not a readable result "
                      f"file; training this run again")
    assert done == [path]
    record = json.loads(path.read_text())
    assert record["config"] == {"model": "baseline"} and 0 < record["test_acc"] < 1
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, log=log.append) == []
    assert "done already" in log[-1]


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_an_unreadable_checkpoint_is_kept_aside_and_the_run_redone(tiny, tmp_path, capsys):
    path = tmp_path / "tiny" / "cnn__seed0.json"
    recipe, _ = E._run_recipe("tiny")
    checkpoint = E.checkpoint_path(path, {"model": "baseline"}, recipe)
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=lambda _: None) == [path]
    bad = checkpoint.with_name(checkpoint.name + ".bad")
    assert bad.read_bytes() == b"not a checkpoint" and not checkpoint.exists()
    assert f"moved it to {bad}" in capsys.readouterr().out


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_an_error_that_is_not_the_files_leaves_the_checkpoint_alone(tiny, tmp_path,
                                                                    monkeypatch):
    path = tmp_path / "tiny" / "cnn__seed0.json"
    recipe, _ = E._run_recipe("tiny")
    checkpoint = E.checkpoint_path(path, {"model": "baseline"}, recipe)
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"hours of training")

    def out_of_memory(*args, **kwargs):
        raise MemoryError("out of memory while loading")
    monkeypatch.setattr(Trainer, "restore", out_of_memory)
    with pytest.raises(MemoryError):
        E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                         progress="none", log=lambda _: None)
    assert checkpoint.read_bytes() == b"hours of training"


@pytest.mark.usefixtures("offline_fashion_mnist")
def test_workers_on_two_hosts_share_an_experiment_and_a_dead_ones_run_is_taken_over(
        tiny, tmp_path, monkeypatch):
    """A lock of another host (a shared filesystem) holds its run while it is fresh; once
    its holder has stopped touching it for LOCK_STALE_S (a SIGKILL there), it is taken over."""
    from d2l_ext import locks
    path = tmp_path / "tiny" / "cnn__seed0.json"
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir()
    lock.write_text("4242 other-host\n")                # a worker on another machine
    log = []
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append) == []
    assert log[-1] == "[tiny] cnn seed 0: being trained by another process"
    old = time.time() - locks.LOCK_STALE_S - 5       # it stopped touching its lock
    os.utime(lock, (old, old))
    assert E.run_experiment("tiny", seeds=(0,), out=tmp_path, root="/nonexistent",
                            progress="none", log=log.append) == [path]
    assert not lock.exists() and json.loads(path.read_text())["seed"] == 0


def test_a_held_lock_is_kept_fresh_until_released(tmp_path, monkeypatch):
    from d2l_ext import locks
    monkeypatch.setattr(locks, "LOCK_STALE_S", 0.4)   # beats every 0.1 s
    monkeypatch.setattr(locks, "_heartbeat", None)    # a heartbeat that reads it
    lock = tmp_path / "run.lock"
    assert locks.take_lock(lock) is None
    os.utime(lock, (0, 0))                               # as if untouched since 1970
    deadline = time.time() + 5
    while lock.stat().st_mtime == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert lock.stat().st_mtime > time.time() - 5        # touched again by the heartbeat
    locks.release_lock(lock)
    assert not lock.exists() and lock not in locks._held_locks
