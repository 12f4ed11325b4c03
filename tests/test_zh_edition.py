"""The Chinese edition, notebooks/zh/, is the English code with the English outputs (issue 14).

`pytest --nbval` runs the English notebooks; these tests show that each Chinese twin has the same
cells in the same order, its code cells (source, outputs, execution counts) character for
character, and Markdown that translates the English text as it is now. They also keep the
glossary (docs/glossary.md) and README.zh-CN.md true. To run the Chinese notebooks themselves:
``python -m pytest --nbval notebooks/zh``.
"""
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from d2l_ext.paths import work_in_notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
EN, ZH = ROOT / "notebooks", ROOT / "notebooks" / "zh"
STEMS = sorted(p.stem for p in EN.glob("*.ipynb"))
CJK = re.compile(r"[\u4e00-\u9fff]")
SYNC = "python tools/sync_zh_notebooks.py"


def load_sync_tool():
    spec = importlib.util.spec_from_file_location("sync_zh", ROOT / "tools" / "sync_zh_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path):
    return nbformat.read(path, as_version=4)


def changed_in_git(paths):
    """Those of these notebooks that differ from the last commit ([] without git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT,
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:].strip() for line in out.splitlines() if line[:2].strip() in ("M", "MM", "AM", "D")]


def how_to_fix(stem):
    """What to do when the editions differ: a student who only ran a notebook restores it;
    a maintainer who changed the English one on purpose runs the sync tool."""
    paths = [f"notebooks/{stem}.ipynb", f"notebooks/zh/{stem}.ipynb"]
    changed = changed_in_git(paths)
    student = (f"If you only opened or ran {' or '.join(changed or paths)} in Jupyter (which saves "
               f"its new outputs), restore it: git checkout -- {' '.join(changed or paths)}")
    return (f"\n{student}\nIf you changed notebooks/{stem}.ipynb on purpose (maintainers, see "
            f"CONTRIBUTING.md): {SYNC} {stem}, then translate what it lists.")


def test_every_english_notebook_has_a_chinese_twin_and_no_more():
    assert len(STEMS) == 7
    assert sorted(p.stem for p in ZH.glob("*.ipynb")) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_chinese_twin_is_the_english_code_with_the_english_outputs(stem):
    """Same cells; code cells equal but for what Jupyter rewrites on every run (execution
    counts and timestamps, kernel name and version: the sync tool's ``normalized``)."""
    sync = load_sync_tool()
    en, zh = read(EN / f"{stem}.ipynb"), read(ZH / f"{stem}.ipynb")
    assert [(c.id, c.cell_type) for c in zh.cells] == [(c.id, c.cell_type) for c in en.cells], \
        f"notebooks/zh/{stem}.ipynb has other cells than the English one." + how_to_fix(stem)
    for mine, theirs in zip(zh.cells, en.cells):
        if theirs.cell_type == "code":
            assert sync.same_code_cell(mine, theirs), \
                f"{stem}, cell {theirs.id}: code or outputs differ between the editions." + how_to_fix(stem)
    assert sync.normalized(zh).metadata == sync.normalized(en).metadata, how_to_fix(stem)


def test_running_a_notebook_is_not_a_difference_but_new_outputs_are():
    """What a Jupyter save changes without new results (counts, timestamps, kernel version)
    leaves the editions in step; a changed output does not."""
    sync = load_sync_tool()
    en, zh = read(EN / "01_resnext_block.ipynb"), read(ZH / "01_resnext_block.ipynb")
    code = [c for c in en.cells if c.cell_type == "code" and c.outputs]
    for k, cell in enumerate(code):
        cell.execution_count = 100 + k
        cell.metadata["execution"] = {"iopub.execute_input": "2030-01-01T00:00:00Z"}
    en.metadata["language_info"]["version"] = "3.99.0"
    en.metadata["kernelspec"]["display_name"] = "my kernel"
    new, _ = sync.synced(en, zh)
    assert sync.in_step(new, zh)
    assert all(sync.same_code_cell(a, b) for a, b in zip(new.cells, zh.cells) if a.cell_type == "code")
    code[0].outputs[0]["text"] = "another run\n"
    new, _ = sync.synced(en, zh)
    assert not sync.in_step(new, zh)
    assert not sync.same_code_cell(code[0], next(c for c in zh.cells if c.id == code[0].id))


def test_the_failure_message_names_the_command_that_restores_a_run_notebook(monkeypatch):
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "changed_in_git", lambda paths: ["notebooks/04_training.ipynb"])
    message = how_to_fix("04_training")
    assert "git checkout -- notebooks/04_training.ipynb\n" in message
    assert f"{SYNC} 04_training" in message
    monkeypatch.setattr(module, "changed_in_git", lambda paths: [])
    assert "git checkout -- notebooks/04_training.ipynb notebooks/zh/04_training.ipynb" in how_to_fix("04_training")


@pytest.mark.parametrize("stem", STEMS)
def test_every_chinese_markdown_cell_translates_the_current_english_text(stem):
    english = {c.id: c.source for c in read(EN / f"{stem}.ipynb").cells}
    for cell in read(ZH / f"{stem}.ipynb").cells:
        if cell.cell_type != "markdown":
            continue
        assert CJK.search(cell.source), f"{stem}, cell {cell.id} is not in Chinese"
        recorded = cell.metadata.get("en_source_sha1")
        assert recorded == hashlib.sha1(english[cell.id].encode()).hexdigest(), (
            f"{stem}, cell {cell.id}: the English text changed since it was translated "
            f"(or it was never marked): translate it, then {SYNC} --mark-translated {stem} {cell.id}")


def test_sync_script_has_nothing_to_do(capsys):
    if load_sync_tool().main(["--check"]) != 0:
        out = capsys.readouterr().out
        stems = re.findall(r"notebooks/zh/(\w+)\.ipynb: differs", out)
        pytest.fail(out + "".join(how_to_fix(stem) for stem in stems))


def test_sync_brings_code_and_outputs_over_and_keeps_every_translation():
    sync = load_sync_tool()
    en, zh = read(EN / "01_resnext_block.ipynb"), read(ZH / "01_resnext_block.ipynb")
    code = next(c for c in en.cells if c.cell_type == "code" and c.outputs)
    markdown = [c for c in en.cells if c.cell_type == "markdown"]
    code.outputs[0]["text"] = "a new output\n"                  # English re-executed
    markdown[1].source += "\n\nOne more sentence."              # English prose edited
    new_cell = nbformat.v4.new_markdown_cell("A new English cell.", id="new-cell")
    en.cells.insert(en.cells.index(markdown[2]) + 1, new_cell)
    gone = markdown[3]
    en.cells.remove(gone)                                       # English cell deleted
    out, notes = sync.synced(en, zh)
    by_id = {c.id: c for c in out.cells}
    assert by_id[code.id].outputs[0]["text"] == "a new output\n"
    assert by_id[markdown[1].id].source == next(c.source for c in zh.cells if c.id == markdown[1].id)
    assert by_id["new-cell"].source == "A new English cell."
    assert by_id[gone.id].source == next(c.source for c in zh.cells if c.id == gone.id)
    assert f"{markdown[1].id}: stale (the English text changed since it was translated)" in notes
    assert "new-cell: untranslated (new in English)" in notes
    assert any(n.startswith(f"{gone.id}: its English cell is gone") for n in notes)
    ids, before = [c.id for c in out.cells], [c.id for c in zh.cells]
    follows = before[before.index(gone.id) - 1]
    assert ids.index(gone.id) == ids.index(follows) + 1        # kept after the cell it followed


@pytest.mark.parametrize("stem", STEMS)
def test_chinese_links_and_images_resolve_and_figures_are_chinese(stem):
    images = []
    for cell in read(ZH / f"{stem}.ipynb").cells:
        if cell.cell_type != "markdown":
            continue
        for bang, target in re.findall(r"(!?)\[[^\]]*\]\(([^)\s]+)\)", cell.source):
            if re.match(r"[a-z]+:|#", target):
                continue
            path = (ZH / target.split("#")[0]).resolve()
            assert path.exists(), f"{stem}, cell {cell.id}: {target} does not exist"
            assert "shared" not in path.parts
            if bang:
                images.append(path)
    assert all(p.parent == ROOT / "assets" / "zh" for p in images), images


# ---- the glossary: every "中文 (English)" term pair of the notebooks, with its first notebook ----

def glossary():
    """{english alternative (lowercase): (chinese, notebook stem)} from docs/glossary.md's table."""
    rows = {}
    text = (ROOT / "docs" / "glossary.md").read_text()
    for zh, en, where in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| \[[^\]]+\]\(\.\./notebooks/zh/"
                                    r"([\w]+)\.ipynb\) \|$", text, re.M):
        for alternative in en.split(" / "):
            rows[alternative.lower()] = (zh, where)
    return rows


def term_pairs():
    """(notebook stem, cell id, chinese text before it, english) for every term pair, in order."""
    found = []
    for stem in STEMS:
        for cell in read(ZH / f"{stem}.ipynb").cells:
            if cell.cell_type == "markdown":
                prose = re.sub(r"`[^`]*`", "", cell.source).replace("*", "")
                for m in re.finditer(r"(?<=[\u4e00-\u9fff]) \(([A-Za-z][A-Za-z0-9'’ \-]*)\)", prose):
                    found.append((stem, cell.id, prose[:m.start()], m.group(1)))
    return found


def test_every_term_pair_is_in_the_glossary_with_its_chinese_term():
    rows, pairs = glossary(), term_pairs()
    assert len(rows) >= 100 and len(pairs) >= 150
    for stem, cell, before, english in pairs:
        assert english.lower() in rows, f"{stem}, cell {cell}: '{english}' is not in docs/glossary.md"
        chinese = rows[english.lower()][0]
        assert before.endswith(chinese), \
            f"{stem}, cell {cell}: '{english}' is {chinese} in docs/glossary.md: ...{before[-12:]}"


def test_each_glossary_term_first_appears_in_the_notebook_it_names():
    table, first = glossary(), {}
    for stem, _, _, english in term_pairs():
        first.setdefault(table[english.lower()], stem)
    rows = set(table.values())
    assert {row: first.get(row) for row in rows} == {row: row[1] for row in rows}
    for term in ("分组卷积", "基数", "暂退法", "批量规范化", "汇聚层", "残差块", "瓶颈", "混淆矩阵"):
        assert term in {zh for zh, _ in rows}, term          # the terms issue 14 names


# ---- the working directory: notebooks/zh/ runs the English cells from notebooks/ ----

def test_work_in_notebooks_dir_moves_up_from_zh_only(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "zh").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks" / "zh")
    assert work_in_notebooks_dir() == tmp_path / "notebooks"
    assert Path(os.getcwd()) == tmp_path / "notebooks"
    assert work_in_notebooks_dir() == tmp_path / "notebooks"           # the English notebooks
    (tmp_path / "coursework" / "zh").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "coursework" / "zh")                  # a student's own folder
    assert work_in_notebooks_dir() == tmp_path / "coursework" / "zh"


def test_notebook_setup_is_the_whole_preamble(tmp_path, monkeypatch):
    """From notebooks/zh/ to notebooks/, torch seeded, QUICK from ``D2L_EXT_QUICK``."""
    import torch
    from d2l_ext import notebook_setup
    (tmp_path / "notebooks" / "zh").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks" / "zh")
    monkeypatch.setenv("D2L_EXT_QUICK", "1")
    assert notebook_setup(seed=3) is True and Path.cwd() == tmp_path / "notebooks"
    drawn = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(3))
    monkeypatch.setenv("D2L_EXT_QUICK", "0")
    assert notebook_setup() is False


@pytest.mark.parametrize("stem", STEMS)
def test_first_code_cell_sets_up_before_any_relative_path(stem):
    cells = [c for c in read(EN / f"{stem}.ipynb").cells if c.cell_type == "code"]
    first = cells[0].source
    assert "notebook_setup()" in first and "work_in_notebooks_dir" not in first
    assert "../" not in first.split("notebook_setup()")[0]


# ---- README.zh-CN.md ----

def test_chinese_readme_gives_the_english_readmes_commands_and_links_it():
    readme, zh = (ROOT / "README.md").read_text(), (ROOT / "README.zh-CN.md").read_text()
    assert "README.zh-CN.md" in readme and "(README.md)" in zh
    commands = [line.split("  #")[0].strip()         # README's commands, without their comments
                for line in re.findall(r"^(?:python|sudo|git|\.|cd) .*$", readme, re.M)]
    for command in ("python -m pip install -r requirements.txt && python -m pip install --no-deps d2l==1.0.3",
                    "python -m pytest --nbval", "python -m d2l_ext train", "python -m jupyter lab",
                    "python tools/sync_zh_notebooks.py", "fonts-wqy-microhei"):
        assert command in readme and command in zh, command
    assert commands and all(c in zh for c in commands if "d2l_ext" in c or "pytest" in c), commands


def test_chinese_readme_numbers_come_from_the_result_files():
    # The findings table is rendered from results/ (tests/test_docs.py checks it is current).
    from test_docs import main_command_numbers
    zh, run = (ROOT / "README.zh-CN.md").read_text(), main_command_numbers()
    assert f"**{run['acc']:.2f}% 的测试精度**，训练 {run['secs']} s，" \
           f"总共 {run['minutes']} min {run['seconds']} s" in zh
