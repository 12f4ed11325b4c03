"""Worked solutions stay hidden until the student asks for them (issue 22), in both editions.

JupyterLab 4 and Notebook 7 show the first line of a collapsed cell, and running a code cell
shows its output again (CodeCell.execute sets outputHidden to false), so metadata alone does not
hide an answer after Run All. Each solution therefore sits under its own collapsed heading:

* a Markdown cell ``#### Solution N`` (``#### 参考答案 N``) with ``jp-MarkdownHeadingCollapsed``,
  whose explanation is inside ``<details><summary>Solution N</summary> ... </details>``;
* its code cells, whose first line is ``# Solution N: click to show`` and whose input and output
  are collapsed (``jupyter.source_hidden``, ``jupyter.outputs_hidden``, ``collapsed``);
* more prose of the solution, inside ``<details>`` too;

and the section ends at the next heading of level 4 or above (``#### Exercise N+1``, the next
solution, or the final ``## Next``). Run All makes the last cell active, and JupyterLab opens
every collapsed heading above the active cell, so the last cell is never part of a solution.
"""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))
HEADING = re.compile(r"^(#{1,6}) ")
WORDS = {"en": ("Solution", "Exercise"), "zh": ("参考答案", "练习")}


def name(path):
    return str(path.relative_to(ROOT))


def restore(path):
    return (f" (if you only opened or ran the notebook in Jupyter, which saves what you expand, "
            f"restore it: git checkout -- {name(path)})")


def heading_level(cell):
    m = cell.cell_type == "markdown" and HEADING.match(cell.source)
    return len(m.group(1)) if m else None


def solutions(path):
    """{N: [cells]} of every solution, each from its heading to the next heading of level <= 4."""
    nb = nbformat.read(path, as_version=4)
    word = WORDS["zh" if path.parent.name == "zh" else "en"][0]
    found, current = {}, None
    for cell in nb.cells:
        level = heading_level(cell)
        if level is not None and level <= 4:
            m = re.match(rf"#### {word} (\d+)\n", cell.source)
            current = int(m.group(1)) if m else None
            if current is not None:
                assert current not in found, f"{name(path)}: two solutions {current}"
                found[current] = []
        if current is not None:
            found[current].append(cell)
    return nb, found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=name)
def test_every_solution_is_hidden_until_asked_for(path):
    nb, found = solutions(path)
    word, exercise = WORDS["zh" if path.parent.name == "zh" else "en"]
    assert sorted(found) == list(range(1, len(found) + 1)) and len(found) >= 4, (name(path), sorted(found))
    for n, cells in found.items():
        where = f"{name(path)}, solution {n}"
        head, rest = cells[0], cells[1:]
        assert head.source.startswith(f"#### {word} {n}\n\n<details><summary>{word} {n}</summary>\n\n"), where
        assert head.source.rstrip().endswith("</details>"), where
        assert head.metadata.get("jp-MarkdownHeadingCollapsed") is True, where + restore(path)
        assert any(c.cell_type == "code" for c in rest), f"{where}: no code"
        for cell in cells:
            assert "solution" in cell.metadata.get("tags", []), f"{where}, cell {cell.id}: not tagged"
            if cell.cell_type == "markdown":
                # a hidden Markdown cell would show its first line: the <details> hides the text
                assert "jupyter" not in cell.metadata, f"{where}, cell {cell.id}" + restore(path)
                assert cell.source.startswith("<details><summary>") or cell is head, f"{where}, {cell.id}"
                assert cell.source.rstrip().endswith("</details>"), f"{where}, cell {cell.id}"
            else:
                assert cell.source.split("\n")[0] == f"# Solution {n}: click to show", \
                    f"{where}, cell {cell.id}: the first line shows: {cell.source.splitlines()[0]!r}"
                hidden = cell.metadata.get("jupyter", {})
                assert hidden.get("source_hidden") is True and hidden.get("outputs_hidden") is True \
                    and cell.metadata.get("collapsed") is True, f"{where}, cell {cell.id}" + restore(path)
    # each exercise comes before its solution and is not swallowed by the one before
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    listed = re.findall(rf"^#### {exercise} (\d+)$", text, re.M) or re.findall(
        r"^(\d+)\. ", text.split("## 练习" if word == "参考答案" else "## Exercises")[-1], re.M)
    assert [int(n) for n in listed] == sorted(found), (name(path), listed)
    hidden_ids = {c.id for cells in found.values() for c in cells}
    assert nb.cells[-1].id not in hidden_ids and heading_level(nb.cells[-1]) <= 3, \
        f"{name(path)}: Run All ends on the last cell and would open the solution it belongs to"
    for cell in nb.cells:          # no solution outside a solution section
        if cell.id not in hidden_ids:
            assert "solution" not in cell.metadata.get("tags", []), f"{name(path)}, cell {cell.id}"
            assert not cell.source.startswith("# Solution"), f"{name(path)}, cell {cell.id}"


def test_the_two_editions_hide_the_same_cells():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        (_, en), (_, zh) = solutions(path), solutions(path.parent / "zh" / path.name)
        assert {n: [c.id for c in cells] for n, cells in en.items()} == \
               {n: [c.id for c in cells] for n, cells in zh.items()}, path.name
