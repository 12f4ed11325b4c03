"""The three figures state what the model code builds (issue 4; issue 12 for why not bytes),
in English and, for notebooks/zh/, in Chinese with the same numbers (issue 14).

PNG bytes follow matplotlib's version (text layout moves a few pixels between releases), so
these tests read what each figure says, its texts, and check every number against a model
built by `d2l_ext`. The committed files in assets/ must be what `python -m d2l_ext diagrams`
draws up to the renderer: PNGs of the same size within 2%.
"""
from pathlib import Path

import matplotlib.image
import pytest
import torch
from torch import nn

from d2l_ext import ResNeXt18, ResNeXtBlock, count_parameters
import re
import warnings

from d2l_ext import diagrams
from d2l_ext.diagrams import draw_all, draw_block, draw_network, draw_stage
from d2l_ext.diagrams import draw_split_transform_merge
from d2l_ext.plotting import plt

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def texts(fig):
    """Every text the figure shows, in the order it was drawn."""
    shown = [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)
    return [t for t in shown if t]


def column(fig, x):
    """The labels of the boxes in the column at x, top to bottom (titles left out)."""
    boxes = [t for ax in fig.axes for t in ax.texts
             if t.get_position()[0] == x and t.get_va() == "center" and t.get_text()]
    labels = [t.get_text() for t in sorted(boxes, key=lambda t: -t.get_position()[1])]
    return labels


def stage_in_words(stage):
    """A stage's modules in the stage figure's words."""
    words = []
    for m in stage:
        if isinstance(m, nn.Dropout):
            words.append(f"Dropout({m.p})")
        elif isinstance(m, ResNeXtBlock) and m.conv4 is not None:
            words.append(f"block, 1x1 projection, stride {m.conv2.stride[0]}")
        elif isinstance(m, ResNeXtBlock):
            words.append("block")
        else:
            raise AssertionError(f"unexpected module in a stage: {m}")
    return words


def figure_words(label):
    """A stage figure's box label in the same words as stage_in_words."""
    label = " ".join(label.split())
    if label.startswith("Dropout("):
        return label
    if "projection" in label:
        stride = label.split("stride ")[1].rstrip(")")
        return f"block, 1x1 projection, stride {stride}"
    assert label.endswith("block"), label
    return "block"


@pytest.fixture(scope="module")
def network():
    """ResNeXt18 as the report builds it, with the output shape of each part at 224x224."""
    model = ResNeXt18(num_classes=5).eval()
    shapes = {}
    for name, part in model.net.named_children():
        part.register_forward_hook(
            lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return model, shapes


def test_draw_all_writes_the_committed_figures(tmp_path):
    drawn = draw_all(tmp_path, langs=("en",))
    assert [p.name for p in drawn] == ["resnext_block.png", "resnext_stage.png",
                                       "resnext18_network.png", "split_transform_merge.png"]
    for path in drawn:
        new, old = matplotlib.image.imread(path).shape, matplotlib.image.imread(ASSETS / path.name).shape
        assert new[2] == old[2] and all(abs(a - b) <= 0.02 * b for a, b in zip(new[:2], old[:2])), \
            f"assets/{path.name} is {old[1]}x{old[0]}, drawn {new[1]}x{new[0]}: " \
            f"run python -m d2l_ext diagrams"


def test_network_figure_states_the_models_layers_and_shapes(network):
    model, shapes = network
    said = texts(draw_network())
    assert f"ResNeXt18: {count_parameters(model):,} parameters" in said
    conv, pool = model.net[0][0], model.net[0][3]   # the stem, b1, is net's part 0
    stem = [t for t in said if t.startswith("b1: ")]
    assert stem == [f"b1: {conv.kernel_size[0]}x{conv.kernel_size[1]} conv {conv.out_channels}, "
                    f"stride {conv.stride[0]}, BN, ReLU\n{pool.kernel_size}x{pool.kernel_size} "
                    f"max-pool, stride {pool.stride} -> {shapes['0']}"]
    for name in ("b2", "b3", "b4"):
        stage = getattr(model.net, name)
        blocks = [m for m in stage if isinstance(m, ResNeXtBlock)]
        rates = " / ".join(str(m.p) for m in stage if isinstance(m, nn.Dropout))
        stride = blocks[0].conv2.stride[0]
        assert {b.conv3.out_channels for b in blocks} == {blocks[0].conv3.out_channels}
        expected = (f"{name}: {len(blocks)} blocks, {blocks[0].conv3.out_channels} ch, "
                    f"{blocks[0].conv2.groups} groups\n"
                    + (f"stride {stride}, " if stride != 1 else "")
                    + f"Dropout {rates} -> {shapes[name]}")
        assert expected in said, (expected, said)
    linear = model.net.last[2]
    assert f"last: global avg-pool, flatten\nlinear {linear.in_features} -> " \
           f"{linear.out_features}" in said
    assert f"{linear.out_features} class scores" in said
    assert "input (3, 224, 224)" in said


def test_stage_figure_states_the_code_and_the_text_placement():
    code, text = ResNeXt18(), ResNeXt18(dropout_placement="text")
    fig = draw_stage()
    columns = {x: [figure_words(label) for label in column(fig, x)] for x in (0, 3.3, 6.6)}
    plt.close(fig)
    assert columns[0] == stage_in_words(code.net.b2)                # code, first stage
    assert columns[3.3] == stage_in_words(code.net.b3) == stage_in_words(code.net.b4)
    assert columns[6.6] == stage_in_words(text.net.b3) == stage_in_words(text.net.b4)


def test_block_figure_states_the_group_counts():
    said = " ".join(texts(draw_block()))
    groups = [ResNeXtBlock(c, 32, 1).conv2.groups for c in (64, 128, 256)]
    assert f"({', '.join(map(str, groups))} for c = 64, 128, 256)" in said
    assert "groups=32 means 32 channels per group, so the 3x3 conv has b // 32 groups" in said
    projection = ResNeXtBlock(64, 32, 1, use_1x1conv=True, strides=2)
    assert projection.conv4 is not None and projection.conv2.stride == (2, 2)
    assert "ResNeXtBlock(c, 32, 1, use_1x1conv=True, strides=2)" in said


def test_split_transform_merge_figure_states_the_report_blocks_paths():
    said = texts(draw_split_transform_merge())
    blk = ResNeXtBlock(64, 32, 1)
    C, d = blk.conv2.groups, blk.conv2.out_channels // blk.conv2.groups
    assert (C, d) == (blk.cardinality, blk.width_per_group) == (2, 32)
    assert f"the report's first stage: c = 64 channels, C = {C} paths of d = {d} channels" in said
    assert f"ResNeXtBlock(64, 32, 1) = ResNeXtBlock(64, cardinality={C}, width_per_group={d})" in said
    assert said.count("1x1 conv, c -> d\nBN, ReLU") == 3 and "path C" in said


def placed_texts(fig):
    """(position, text) of every text the figure shows, in drawing order."""
    shown = [(t.get_position(), t.get_text()) for ax in fig.axes for t in ax.texts if t.get_text()]
    plt.close(fig)
    return shown


def numbers(shown):
    """Every number in the texts, in order, and where each text stands."""
    return ([n for _, text in shown for n in re.findall(r"\d[\d,.]*", text)],
            [position for position, _ in shown])


@pytest.mark.parametrize("draw", [draw_block, draw_stage, draw_network, draw_split_transform_merge])
def test_chinese_figures_state_the_english_numbers_in_chinese(draw):
    chinese = placed_texts(draw("zh"))
    assert numbers(chinese) == numbers(placed_texts(draw("en")))  # same numbers, order, places
    prose = [t for _, t in chinese if not t.startswith(("ResNeXtBlock(", "Dropout("))]
    assert prose and all(re.search(r"[\u4e00-\u9fff]", t) for t in prose), prose
    english = re.findall(r"\b(?:channels|groups|stride|block|input|add)\b(?!=)", " ".join(prose))
    assert not english, english          # (groups=32 is code, and stays)


def test_chinese_figures_are_the_committed_ones_with_every_glyph(tmp_path):
    try:
        diagrams.cjk_font()
    except diagrams.NoCJKFontError as e:
        pytest.skip(f"{e} (CI installs it; the Chinese figures' words are checked above)")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing")   # a box of tofu is a failure
        drawn = draw_all(tmp_path, langs=("zh",))
    assert [p.relative_to(tmp_path).as_posix() for p in drawn] == \
        ["zh/resnext_block.png", "zh/resnext_stage.png", "zh/resnext18_network.png",
         "zh/split_transform_merge.png"]
    for path in drawn:
        committed = ASSETS / "zh" / path.name
        new, old = matplotlib.image.imread(path).shape, matplotlib.image.imread(committed).shape
        assert new[2] == old[2] and all(abs(a - b) <= 0.02 * b for a, b in zip(new[:2], old[:2])), \
            f"assets/zh/{path.name} is {old[1]}x{old[0]}, drawn {new[1]}x{new[0]}: " \
            f"run python -m d2l_ext diagrams"


def test_a_chinese_font_installed_after_the_font_cache_is_found(monkeypatch, tmp_path):
    """matplotlib's cache (fontManager) predates the font: fontconfig's list finds the file,
    and cjk_font adds it to the font manager."""
    import copy
    from matplotlib import font_manager
    listed = diagrams.fc_list_cjk()
    if not listed:
        pytest.skip(f"fc-list finds no font with Chinese glyphs here ({diagrams.CJK_FONT_PACKAGE} "
                    f"is one; CI installs it)")
    stale = copy.copy(font_manager.fontManager)
    stale.ttflist = [f for f in stale.ttflist if Path(f.fname) not in listed]   # as before the install
    monkeypatch.setattr(font_manager, "fontManager", stale)
    monkeypatch.setattr(diagrams, "CJK_FONT_FILES", (tmp_path / "none.ttc",))   # only fc-list knows it
    name = diagrams.cjk_font()
    assert name in {f.name for f in stale.ttflist if Path(f.fname) in listed}


def test_no_chinese_font_is_a_one_line_error_naming_the_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(diagrams, "CJK_FONT_FILES", (tmp_path / "none.ttc",))
    monkeypatch.setattr(diagrams, "fc_list_cjk", lambda: [])
    monkeypatch.setattr(diagrams, "CJK_FONT_NAMES", ("No Such Font CJK",))
    with pytest.raises(diagrams.NoCJKFontError, match="sudo apt-get install fonts-wqy-microhei") as e:
        draw_all(tmp_path / "out")
    # it says where it looked: the files, fontconfig, the names
    assert str(tmp_path / "none.ttc") in str(e.value) and "fc-list :lang=zh lists none" in str(e.value)
    assert "No Such Font CJK" in str(e.value)
    assert not (tmp_path / "out").exists()          # nothing drawn before the font was found
    from d2l_ext.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["diagrams", "--out", str(tmp_path / "out"), "--lang", "zh"])
    message = str(exit_.value.code)
    assert message.startswith("error: the Chinese diagrams need a font") and "\n" not in message
