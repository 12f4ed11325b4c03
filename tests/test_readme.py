"""README's first screen answers a newcomer's questions (issue 22), in both languages, with
numbers from the files that hold them: how big and how long the install is, what to open first,
that running a notebook rewrites it and how to restore it, where results go, and which model
the main command keeps."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ZH = (ROOT / "README.zh-CN.md").read_text()


def first_screen(text, heading):
    """From the top to the first section after 'Start here' (the notebook table included)."""
    start = text.index(heading)
    return text[:text.index("\n## ", start + 1)]


def last_epoch_numbers():
    log = (ROOT / "results" / "main_command.log").read_text()
    rows = [(int(e), float(vl), float(va)) for e, vl, va in
            re.findall(r"epoch +(\d+) +train loss [\d.]+ +val loss ([\d.]+) +val acc ([\d.]+)", log)]
    assert len(rows) == 60
    low = min(rows, key=lambda r: r[1])
    best = max(rows, key=lambda r: r[2])
    return dict(low_epoch=low[0], low=low[1], end=rows[-1][1], acc=rows[-1][2],
                best=best[2], best_epoch=best[0])


@pytest.mark.parametrize("text, heading", [(README, "## Start here"), (ZH, "## 从这里开始")])
def test_the_first_screen_answers_the_first_questions(text, heading):
    top = first_screen(text, heading)
    size = re.search(r"The setup puts ([\d.]+) GB in `\.venv`", (ROOT / "docs" / "setup.md").read_text())
    assert f"{size.group(1)} GB" in top                                     # how big
    assert "python -m pip install -r requirements.txt && python -m pip install --no-deps d2l==1.0.3" in top
    assert re.search(r"4 (minutes|分钟)", top)                               # how long (CI's default leg)
    assert "python -m jupyter lab" in top and "01_resnext_block.ipynb" in top   # what to open first
    assert "git checkout -- notebooks/" in top                              # how to restore
    assert "runs/train/model.pt" in top and "runs/train/curves.png" in top  # where results go
    assert "python -m d2l_ext train" in top


def test_the_restore_command_is_the_one_the_zh_edition_test_names(monkeypatch):
    import test_zh_edition
    monkeypatch.setattr(test_zh_edition, "changed_in_git", lambda paths: [paths[0]])
    command = re.search(r"git checkout -- \S+", test_zh_edition.how_to_fix("04_training")).group(0)
    assert command == "git checkout -- notebooks/04_training.ipynb"
    assert command in README


@pytest.mark.parametrize("text", [README, ZH], ids=["en", "zh"])
def test_readme_says_the_main_command_keeps_the_last_epoch(text):
    n = last_epoch_numbers()
    assert n["low_epoch"] < 60 and n["end"] > n["low"]         # what makes it worth saying
    for number in (f"{n['low_epoch']}", f"{n['low']:.4f}", f"{n['end']:.4f}", f"{n['acc']:.3f}",
                   f"{n['best']:.3f}"):
        assert number in text, number
    assert "last epoch" in text if text is README else "最后一个迭代周期" in text
    if n["best_epoch"] == n["low_epoch"]:
        assert "also at" in text if text is README else "也在第" in text


def test_maintainer_steps_have_their_own_place():
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for text in (README, ZH):
        assert "CONTRIBUTING.md" in text
    assert "NBVAL_IGNORE_OUTPUT" in contributing and "python tools/sync_zh_notebooks.py" in contributing
    assert "D2L_EXT_QUICK" in contributing
    start = first_screen(README, "## Start here")
    assert "sync_zh_notebooks" not in start and "NBVAL" not in start     # not in the student's part


@pytest.mark.parametrize("path", sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("notebooks/zh/*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_ends_with_where_to_go_next(path):
    import nbformat
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith(("## Next", "## 下一步")), path
    for target in re.findall(r"\]\(([^)#\s]+)", last.source):
        assert (path.parent / target).exists(), (path, target)
