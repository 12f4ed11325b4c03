"""The block's and network's parameter and FLOP formulas against counted values, and the
templates at matched complexity (issue 20)."""
import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from d2l_ext import ResNeXt, ResNeXt18, ResNeXtBlock, REPORT_ARCHS, count_parameters
from d2l_ext.complexity import (block_flops, block_params, network_flops, network_params,
                                template_table)
from d2l_ext.models import CARDINALITY_TEMPLATES


def counted(model, X):
    """(sum of p.numel(), forward FLOPs by torch's counter) on X."""
    model.eval()
    with torch.no_grad():
        model(X)
        with FlopCounterMode(display=False) as counter:
            model(X)
    return count_parameters(model), counter.get_total_flops()


@pytest.mark.parametrize("C, d, c_in, c, size, down", [
    (2, 32, 64, 64, 8, False), (1, 64, 64, 64, 8, False), (32, 4, 64, 64, 8, False),
    (4, 29, 64, 128, 8, True), (8, 38, 128, 256, 4, True), (3, 5, 16, 24, 7, True),
    (32, 4, 256, 256, 56, False),
])
def test_block_formulas_are_the_counted_values(C, d, c_in, c, size, down):
    blk = ResNeXtBlock(c, cardinality=C, width_per_group=d, use_1x1conv=down,
                       strides=2 if down else 1)
    assert counted(blk, torch.zeros(1, c_in, size, size)) == (
        block_params(c_in, c, C, d, projection=down),
        block_flops(c_in, c, C, d, size, stride=2 if down else 1, projection=down))


@pytest.mark.parametrize("kwargs, arch, in_channels, size", [
    ({}, REPORT_ARCHS[3], 3, 32), ({}, REPORT_ARCHS[3], 1, 32), ({}, REPORT_ARCHS[4], 3, 224),
    (dict(cardinality=32, width_per_group=4), REPORT_ARCHS[3], 1, 28),
    (dict(cardinality=4, bot_mul=0.5), ((3, 64), (2, 128)), 1, 32),
    *[(t, REPORT_ARCHS[3], 1, 32) for t in CARDINALITY_TEMPLATES.values()],
])
def test_network_formulas_are_the_counted_values(kwargs, arch, in_channels, size):
    model = ResNeXt(arch, num_classes=5, **kwargs)
    assert counted(model, torch.zeros(1, in_channels, size, size)) == (
        network_params(arch, in_channels, 5, **kwargs),
        network_flops(arch, size, in_channels, 5, **kwargs))


def test_report_numbers():
    assert network_params(in_channels=3) == 622_213 and network_params() == 615_941
    assert network_flops(in_channels=3) == 20_941_312 and network_flops() == 17_730_048


def test_templates_are_within_five_percent_of_one_another():
    rows = template_table()
    assert [r["name"] for r in rows] == ["1x64d", "2x44d", "4x29d", "8x19d"]
    for key in ("params", "flops"):
        values = [r[key] for r in rows]
        assert max(values) / min(values) <= 1.05, (key, values)
    assert [(r["params"], r["flops"]) for r in rows] == [
        (1_906_181, 37_784_064), (1_937_189, 38_988_288), (1_880_125, 38_688_256),
        (1_873_717, 39_526_912)]
    # The widths are the set with the smallest spread (largest ratio of two templates' counts).
    def spread(widths):
        counts = [(network_params(cardinality=C, width_per_group=d),
                   network_flops(cardinality=C, width_per_group=d)) for C, d in widths]
        return max(max(c[i] for c in counts) / min(c[i] for c in counts) for i in (0, 1))
    near = [range(d - 3, d + 4) for d in (44, 29, 19)]
    best = min(itertools.product(*near), key=lambda ds: spread(zip((1, 2, 4, 8), (64, *ds))))
    assert best == (44, 29, 19)


def test_sixteen_or_thirty_two_groups_cannot_be_matched_at_this_scale():
    ref = template_table()[0]
    for C in (16, 32):
        for d in range(1, 64):
            p = network_params(cardinality=C, width_per_group=d) / ref["params"]
            f = network_flops(cardinality=C, width_per_group=d) / ref["flops"]
            assert not (abs(p - 1) <= 0.05 and abs(f - 1) <= 0.05), (C, d, p, f)


# --- the numbers the docs and notebook 01b state come from the code ---------------------------

from pathlib import Path
import re

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def spreads():
    rows = template_table()
    return [100 * (max(r[k] for r in rows) / min(r[k] for r in rows) - 1) for k in ("params", "flops")]


def test_docs_state_the_templates_as_the_code_computes_them():
    package = (ROOT / "docs" / "package.md").read_text()
    report = (ROOT / "docs" / "report.md").read_text()
    p, f = spreads()
    for text in (package, report):
        assert f"within {p:.1f}% of one another in parameters and {f:.1f}% in" in text
    for r in template_table():
        C, d = r["cardinality"][0], r["width_per_group"]
        row = (f"| {r['name'].replace('x', '×')} | {C} | {' / '.join(map(str, d))} | "
               f"{r['params']:,} | {r['flops'] / 1e6:.2f} |")
        assert row in package, row
    names = [n.replace("x", "×") for n in CARDINALITY_TEMPLATES]
    assert ", ".join(names[:-1]) + f" and {names[-1]}" in report
    assert "templates " + ", ".join(names) in (ROOT / "README.md").read_text()
    assert "模板 " + "、".join(names) in (ROOT / "README.zh-CN.md").read_text()
    row = next(l for l in report.splitlines() if "通过增加Cardinality" in l and l.startswith("|"))
    assert row.endswith("| notebook 1b, §1b.5; notebook 5, §5.11; README |")
    from d2l_ext.results import compare_rows      # the accuracy side: the trained templates
    pm = lambda x: f"{100 * x:+.1f}".replace("-", "−")  # noqa: E731
    for experiment in ("cardinality", "cardinality-full"):     # 500 images; all 55,000
        c = compare_rows(experiment, "8x19d", "1x64d", ROOT / "results")
        assert f"8×19d − 1×64d is {pm(c.diff)} points, [{pm(c.low)}, {pm(c.high)}] over {c.n} " \
               f"paired seeds" in row, experiment
    for t in ("4x29d", "2x44d"):                                # all 55,000, 3 seeds each
        c = compare_rows("cardinality-full", t, "1x64d", ROOT / "results")
        assert f"{t.replace('x', '×')} − 1×64d is {pm(c.diff)} points, [{pm(c.low)}, " \
               f"{pm(c.high)}]" in row and c.n == 3, t


@pytest.mark.parametrize("edition", ["", "zh/"])
def test_notebook_1b_prose_numbers_are_its_outputs(edition):
    nb = nbformat.read(ROOT / "notebooks" / edition / "01b_cardinality.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    computed = {network_params(in_channels=3),                 # the report's RGB count (notebook 3)
                2 * 64 * 128,                                  # exercise 3: the two 1x1 convs
                network_params(in_channels=3) - network_params()}   # exercise 4: RGB stem weights
    for number in re.findall(r"\d{1,3}(?:,\d{3})+", prose):
        assert number in outputs or int(number.replace(",", "")) in computed, number
    p, f = spreads()
    assert f"{p:.1f}%" in prose and f"{f:.1f}%" in prose
    ref = template_table()[0]
    for C, d in ((32, 7), (32, 8)):
        ratio = network_params(cardinality=C, width_per_group=d) / ref["params"]
        assert f"{ratio:.3f}" in prose
    miss = (100 * (1 - network_params(cardinality=32, width_per_group=7) / ref["params"]),
            100 * (network_flops(cardinality=32, width_per_group=7) / ref["flops"] - 1))
    assert all(f"{m:.1f}%" in prose for m in miss)
    assert f"{ref['params'] / network_params():.1f}" in prose      # 1x64d against the report's net
