"""``ablate`` is never stuck on a broken result file: it says so and redoes the run (issue 13)."""
import json

import pytest

from d2l_ext import experiments as E


@pytest.fixture
def tiny(monkeypatch):
    recipe = dict(E.RECIPES["5class"], epochs=1, resize=16, batch_size=100, warmup=0)
    monkeypatch.setitem(E.RECIPES, "tiny", recipe)
    monkeypatch.setitem(E.EXPERIMENTS, "tiny", ("tiny", [("cnn", dict(model="baseline"))]))


@pytest.mark.parametrize("content", ["", '{"experiment": "tiny", "conf', "null"])
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
