"""Copyable notebook cells run with stock d2l alone (issue 11).

A code cell whose first line is ``# copyable: needs A, B, C (...)`` is meant to be copied into
a student's own notebook that has d2l but not ``d2l_ext``. This test extracts every such cell
and runs it in a fresh Python where ``import d2l_ext`` fails, in a namespace that holds only
what the cell says it needs: the modules ``d2l``, ``torch``, ``nn`` (the cell imports them
itself) and names defined by other copyable cells (``ResNeXt18``, ``data10``, ...), which run
first, each in its own namespace. Stock ``d2l.FashionMNIST`` reads Debian's copy of the data
(unpacked where torchvision looks) and is cut to a few hundred images, so that the run takes
seconds.
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"#\s*copyable:\s*needs\s+(.*)")
MODULES = {"d2l", "torch", "nn", "F"}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def copyable_cells():
    cells = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            first = source.splitlines()[0] if source else ""
            if cell["cell_type"] == "code" and first.startswith("# copyable"):
                match = MARK.match(first)
                assert match, f"{path.name}: '{first}' does not say what the cell needs"
                needs = [re.match(r"[A-Za-z_]\w*", part.strip()).group(0)
                         for part in re.sub(r"\([^)]*\)", "", match.group(1)).split(",")
                         if part.strip()]
                cells.append({"notebook": path.name, "source": source, "needs": needs})
    return cells


def defined_names(source):
    """Top-level names a cell defines: classes, functions and assignments at column 0."""
    return {a or b for a, b in re.findall(r"^(?:class|def)\s+(\w+)|^(\w+)\s*=(?!=)", source, re.M)}


def test_the_copyable_cells_are_where_the_issue_wants_them():
    cells = copyable_cells()
    sources = "\n".join(c["source"] for c in cells)
    for name in ("resnext_stage", "ResNeXt", "ResNeXt18"):
        assert name in set().union(*(defined_names(c["source"]) for c in cells)), name
    assert "d2l.FashionMNIST(" in sources and "d2l.Trainer(max_epochs=" in sources
    assert "num_gpus=" in sources and ".apply_init([" in sources and "d2l.init_cnn" in sources
    for cell in cells:
        assert "d2l_ext" not in cell["source"], f"{cell['notebook']}: a copyable cell uses d2l_ext"
        assert "NBVAL" not in cell["source"].splitlines()[0]


def stock_data_root(tmp_path):
    """``tmp/data/FashionMNIST/raw`` with the four idx files, as stock d2l's torchvision wants."""
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (ROOT / "data" / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST):
        names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        if all((source / n).is_file() or (source / f"{n}.gz").is_file() for n in names):
            for n in names:
                if (source / n).is_file():
                    shutil.copy(source / n, raw / n)
                else:
                    with gzip.open(source / f"{n}.gz") as src, open(raw / n, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            return raw
    return None


RUNNER = r'''
import json, sys, time
sys.modules["d2l_ext"] = None                 # import d2l_ext fails, as for a student
try:
    import d2l_ext
except ImportError:
    pass
else:
    raise SystemExit("d2l_ext is importable")

import torch
from torch.utils.data import Subset
from d2l import torch as d2l

_init = d2l.FashionMNIST.__init__
def small(self, *args, **kwargs):             # quick sizes: the test's only change
    _init(self, *args, **kwargs)
    self.train, self.val = Subset(self.train, range(256)), Subset(self.val, range(128))
    self.num_workers = 0
d2l.FashionMNIST.__init__ = small

cells = json.load(open(sys.argv[1]))
done = {}
for k, cell in enumerate(cells):
    namespace = {"__name__": "__main__"}
    for need in cell["needs"]:
        if need not in ("d2l", "torch", "nn", "F"):
            namespace[need] = done[need]
    start = time.perf_counter()
    exec(compile(cell["source"], f"<{cell['notebook']} copyable cell {k}>", "exec"), namespace)
    for name in cell["defines"]:
        done[name] = namespace[name]
    print(f"ok: {cell['notebook']} copyable cell {k} ({time.perf_counter() - start:.1f} s), "
          f"defines {sorted(cell['defines'])}", flush=True)
'''


def test_copyable_cells_run_with_stock_d2l_and_no_d2l_ext(tmp_path):
    cells = copyable_cells()
    if any("d2l.FashionMNIST(" in c["source"] for c in cells) and stock_data_root(tmp_path) is None:
        pytest.skip("no offline Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    defined = {}
    for cell in cells:
        cell["defines"] = sorted(defined_names(cell["source"]))
        for need in cell["needs"]:
            assert need in MODULES or need in defined, (
                f"{cell['notebook']}: a copyable cell needs {need!r}, which no earlier "
                f"copyable cell defines")
        for name in cell["defines"]:
            defined[name] = cell
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    (tmp_path / "runner.py").write_text(RUNNER)
    work = tmp_path / "work"                 # stock d2l's root is "../data"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "cells.json")],
                            cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("ok: ") == len(cells), result.stdout
