"""The report's three figures, redrawn from code: the block, a stage, the whole network.

The report's figures are screenshots that are not in the repository; these are drawn
with matplotlib from the same facts the model code states (layer sizes, dropout places),
so ``python -m d2l_ext diagrams`` regenerates them byte for byte on the same versions.
"""
from pathlib import Path

from matplotlib.patches import FancyBboxPatch

from .plotting import plt

__all__ = ["draw_block", "draw_stage", "draw_network", "draw_all"]

COLORS = {"conv": "#cfe2f3", "gconv": "#f9cb9c", "bn": "#d9ead3", "drop": "#f4cccc",
          "io": "#eeeeee", "pool": "#fff2cc", "stage": "#d9d2e9"}


def _box(ax, x, y, text, kind, w=2.6, h=0.55):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04",
                                fc=COLORS[kind], ec="#444444", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, x0, y0, x1, y1, text=None):
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=0.9, color="#333333"))
    if text:
        ax.text((x0 + x1) / 2 + 0.1, (y0 + y1) / 2, text, fontsize=7, va="center")


def _column(ax, x, items, top=0.0, step=0.9, w=2.6):
    """Boxes from top to bottom joined by arrows; returns the y of each box."""
    ys = [top - i * step for i in range(len(items))]
    for y, (text, kind) in zip(ys, items):
        _box(ax, x, y, text, kind, w=w)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, x, y0 - 0.3, x, y1 + 0.3)
    return ys


def _block_column(ax, x, projection, title):
    ax.text(x, 1.0, title, ha="center", fontsize=9, weight="bold")
    s = "stride s" if projection else "stride 1"
    items = [("input  (c_in, h, w)", "io"),
             ("1x1 conv, b channels  +  BN, ReLU", "conv"),
             (f"3x3 grouped conv, b // 32 groups,\n{s}  + BN, ReLU", "gconv"),
             ("1x1 conv, c channels  +  BN", "conv"),
             ("add,  ReLU", "io")]
    ys = _column(ax, x, items, w=3.1)
    right = x + 1.95
    if projection:
        _box(ax, right + 0.7, (ys[1] + ys[3]) / 2, f"1x1 conv, c,\n{s}  + BN", "conv", w=1.3, h=0.7)
        ax.plot([x + 1.55, right + 0.7, right + 0.7], [ys[0], ys[0], (ys[1] + ys[3]) / 2 + 0.35],
                color="#333333", lw=0.9)
        _arrow(ax, right + 0.7, (ys[1] + ys[3]) / 2 - 0.35, x + 1.55, ys[4])
    else:
        ax.plot([x + 1.55, right, right], [ys[0], ys[0], ys[4]], color="#333333", lw=0.9)
        _arrow(ax, right, ys[4], x + 1.55, ys[4], "identity")


def draw_block():
    """The ResNeXt block without (left) and with (right) the 1x1 projection shortcut."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    _block_column(ax, 0.0, False, "ResNeXtBlock(c, 32, 1)")
    _block_column(ax, 5.0, True, "ResNeXtBlock(c, 32, 1, use_1x1conv=True, strides=2)")
    ax.text(2.5, -4.4, "b = round(c * bot_mul) bottleneck channels; groups=32 means 32 channels "
            "per group, so the 3x3 conv has b // 32 groups (2, 4, 8 for c = 64, 128, 256)",
            ha="center", fontsize=7.5)
    ax.set_xlim(-1.8, 8.8); ax.set_ylim(-4.7, 1.3); ax.axis("off")
    return fig


def draw_stage():
    """A stage as the report's code builds it, beside what the report's text describes."""
    fig, ax = plt.subplots(figsize=(9, 4.4))
    code = [("first stage (b2): block", "conv"), ("Dropout(0.2)", "drop"),
            ("block", "conv"), ("Dropout(0.4)", "drop")]
    later = [("block, 1x1 projection,\nstride 2", "gconv"),
             ("block", "conv"), ("Dropout(0.4)", "drop")]
    text = [("block (1x1 projection, stride 2)", "gconv"), ("Dropout(0.2)", "drop"),
            ("block", "conv"), ("Dropout(0.4)", "drop")]
    ax.text(0, 1.0, "code, first stage", ha="center", fontsize=9, weight="bold")
    _column(ax, 0, code)
    ax.text(3.3, 1.0, "code, later stages (default)", ha="center", fontsize=9, weight="bold")
    _column(ax, 3.3, later)
    ax.text(6.6, 1.0, "text: dropout after the last two\nblocks (dropout_placement='text')",
            ha="center", fontsize=9, weight="bold")
    _column(ax, 6.6, text)
    ax.set_xlim(-1.6, 8.2); ax.set_ylim(-3.2, 1.5); ax.axis("off")
    return fig


def draw_network():
    """The whole ResNeXt18, with the output shape after each part for a 224x224 input."""
    fig, ax = plt.subplots(figsize=(5.2, 6.4))
    items = [("input (3, 224, 224)", "io"),
             ("b1: 7x7 conv 64, stride 2, BN, ReLU\n3x3 max-pool, stride 2 -> (64, 56, 56)", "pool"),
             ("b2: 2 blocks, 64 ch, 2 groups\nDropout 0.2 / 0.4 -> (64, 56, 56)", "stage"),
             ("b3: 2 blocks, 128 ch, 4 groups\nstride 2, Dropout 0.4 -> (128, 28, 28)", "stage"),
             ("b4: 2 blocks, 256 ch, 8 groups\nstride 2, Dropout 0.4 -> (256, 14, 14)", "stage"),
             ("last: global avg-pool, flatten\nlinear 256 -> 5", "conv"),
             ("5 class scores", "io")]
    ys = [-i * 1.05 for i in range(len(items))]
    for y, (t, kind) in zip(ys, items):
        _box(ax, 0, y, t, kind, w=3.8, h=0.78)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, 0, y0 - 0.4, 0, y1 + 0.4)
    ax.text(0, 0.75, "ResNeXt18: 622,213 parameters", ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-2.1, 2.1); ax.set_ylim(ys[-1] - 0.6, 1.0); ax.axis("off")
    return fig


def draw_all(out="assets"):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("resnext_block", draw_block), ("resnext_stage", draw_stage),
                       ("resnext18_network", draw_network)):
        fig = draw()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths
