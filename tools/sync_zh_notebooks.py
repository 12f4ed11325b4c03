"""Bring the English notebooks' code cells and outputs into the Chinese edition (notebooks/zh/).

The Chinese notebooks are the English ones with their Markdown translated: same cells, same
ids, same order; every code cell (source, outputs, execution count) is the English cell,
character for character. Run this after changing or re-executing an English notebook:

    python tools/sync_zh_notebooks.py            # copy code cells and outputs, report what needs translating
    python tools/sync_zh_notebooks.py --check    # change nothing; exit 1 if the editions differ
    python tools/sync_zh_notebooks.py 04_training   # only these notebooks

What Jupyter rewrites without a change to the notebook (execution counts, each cell's
execution timestamps, the kernel's name and version in the notebook's metadata) is not a
difference: a Chinese notebook that differs from its English one only there is in step.

A Markdown cell's translation records the SHA-1 of the English text it translates
(metadata "en_source_sha1"). A new English Markdown cell comes over in English, marked
untranslated; an English cell whose text changed leaves its translation marked stale. After
translating, record it:

    python tools/sync_zh_notebooks.py --mark-translated 04_training c12 c13
    python tools/sync_zh_notebooks.py --mark-translated 04_training   # every cell that has Chinese text

tests/test_zh_edition.py fails while any cell is untranslated or stale, or the code differs.
"""
import argparse
import copy
import hashlib
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EN, ZH = ROOT / "notebooks", ROOT / "notebooks" / "zh"
CJK = re.compile(r"[\u4e00-\u9fff]")


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def read(path):
    return nbformat.read(path, as_version=4)


def text(nb):
    return nbformat.writes(nb) + "\n"


def write(path, nb):
    """Write atomically: a Ctrl-C never leaves half a notebook."""
    tmp = path.with_suffix(".ipynb.tmp0")
    tmp.write_text(text(nb))
    tmp.replace(path)


NOISE_CELL_METADATA = ("execution", "scrolled")
NOISE_METADATA = ("kernelspec", "language_info", "widgets")


def normalized(nb):
    """The notebook without what Jupyter rewrites when a notebook is only run or saved:
    execution counts, execution timestamps, the kernel's name and version."""
    nb = copy.deepcopy(nb)
    for key in NOISE_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in NOISE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.execution_count = None
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = None
    return nb


def same_code_cell(a, b):
    """True when two code cells have the same source, outputs and metadata, noise aside."""
    wrap = lambda c: nbformat.v4.new_notebook(cells=[copy.deepcopy(c)])
    return normalized(wrap(a)).cells[0] == normalized(wrap(b)).cells[0]


def in_step(new, zh):
    return zh is not None and normalized(new) == normalized(zh)


def synced(en, zh):
    """The Chinese notebook rebuilt on the English one's cells; and the notes on what needs work.

    Code cells are the English cells. Markdown cells keep their translation (matched by id);
    an English cell with no translation comes over in English, marked untranslated. A
    translated cell whose id the English notebook no longer has is kept where it was and
    reported, so that no translation is lost.
    """
    translated = {c.id: c for c in (zh.cells if zh else []) if c.cell_type == "markdown"}
    cells, notes, en_ids = [], [], {c.id for c in en.cells}
    for cell in en.cells:
        if cell.cell_type == "markdown" and cell.id in translated:
            mine = translated[cell.id]
            recorded = mine.metadata.get("en_source_sha1")
            if recorded is None:
                notes.append(f"{cell.id}: untranslated")
            elif recorded != sha1(cell.source):
                notes.append(f"{cell.id}: stale (the English text changed since it was translated)")
            cells.append(mine)
        elif cell.cell_type == "markdown":
            new = copy.deepcopy(cell)
            new.metadata.pop("en_source_sha1", None)
            cells.append(new)
            notes.append(f"{cell.id}: untranslated (new in English)")
        else:
            cells.append(copy.deepcopy(cell))
    if zh:   # translations whose English cell is gone: keep them after the cell they followed
        previous = None
        for cell in zh.cells:
            if cell.id not in en_ids and cell.cell_type == "markdown":
                at = next((i for i, c in enumerate(cells) if c.id == previous), -1) + 1
                cells.insert(at, cell)
                notes.append(f"{cell.id}: its English cell is gone; delete it or give it an English cell's id")
            previous = cell.id
    out = copy.deepcopy(en)
    out.cells = cells
    return out, notes


def mark_translated(stem, ids):
    path = ZH / f"{stem}.ipynb"
    en, zh = read(EN / path.name), read(path)
    english = {c.id: c.source for c in en.cells if c.cell_type == "markdown"}
    for cell in zh.cells:
        if cell.cell_type != "markdown" or cell.id not in english:
            continue
        if (ids and cell.id in ids) or (not ids and CJK.search(cell.source)):
            cell.metadata["en_source_sha1"] = sha1(english[cell.id])
    unknown = set(ids) - {c.id for c in zh.cells if c.cell_type == "markdown"}
    if unknown:
        sys.exit(f"{path.relative_to(ROOT)} has no Markdown cell {', '.join(sorted(unknown))}")
    write(path, zh)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="only these English notebooks (04_training, notebooks/04_training.ipynb); "
                             "default: all")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of step")
    parser.add_argument("--mark-translated", nargs="+", metavar=("NOTEBOOK", "CELL_ID"),
                        help="record that these Markdown cells (all with Chinese text, if no ids) "
                             "translate the current English text")
    args = parser.parse_args(argv)
    if args.mark_translated:
        stem = Path(args.mark_translated[0]).stem
        if not (ZH / f"{stem}.ipynb").exists():
            sys.exit(f"no Chinese notebook notebooks/zh/{stem}.ipynb")
        mark_translated(stem, args.mark_translated[1:])
    out_of_step = []
    stems = [Path(n).stem for n in args.notebooks]
    if args.mark_translated and not stems:       # bring over only the notebook just marked
        stems = [Path(args.mark_translated[0]).stem]
    missing = [s for s in stems if not (EN / f"{s}.ipynb").exists()]
    if missing:
        sys.exit(f"no English notebook {', '.join(f'notebooks/{s}.ipynb' for s in missing)}")
    for en_path in sorted(EN.glob("*.ipynb")):
        if stems and en_path.stem not in stems:
            continue
        zh_path = ZH / en_path.name
        zh = read(zh_path) if zh_path.exists() else None
        new, notes = synced(read(en_path), zh)
        changed = not in_step(new, zh)
        if changed:
            out_of_step.append(zh_path.name)
            if not args.check:
                ZH.mkdir(exist_ok=True)
                write(zh_path, new)
        verb = ("differs from English" if args.check else "updated") if changed else "in step"
        print(f"notebooks/zh/{zh_path.name}: {verb}" + "".join(f"\n  {n}" for n in notes))
    extra = [] if stems else sorted({p.name for p in ZH.glob("*.ipynb")} - {p.name for p in EN.glob("*.ipynb")})
    for name in extra:
        print(f"notebooks/zh/{name}: has no English notebook of that name")
    return 1 if args.check and (out_of_step or extra) else 0


if __name__ == "__main__":
    sys.exit(main())
