"""The report's three figures, redrawn from code: the block, a stage, the whole network.

The report's figures are screenshots that are not in the repository; these are drawn
with matplotlib from the same facts the model code states (layer sizes, dropout places),
so ``python -m d2l_ext diagrams`` regenerates them byte for byte on the same versions.
Each is drawn in English (``assets/``) and in Chinese (``assets/zh/``, for notebooks/zh/),
in d2l-zh's terms; the Chinese labels need a font with Chinese glyphs (``CJK_FONT_PACKAGE``).
"""
from pathlib import Path

from matplotlib import font_manager
from matplotlib.patches import FancyBboxPatch

from .plotting import plt

__all__ = ["draw_block", "draw_stage", "draw_network", "draw_all", "cjk_font",
           "NoCJKFontError", "CJK_FONT_PACKAGE", "LANGUAGES"]

LANGUAGES = ("en", "zh")
CJK_FONT_PACKAGE = "fonts-wqy-microhei"      # Debian's package; README and .ci/run install it
CJK_FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")   # the committed figures' font
# Font files with Chinese glyphs where Debian/Ubuntu, macOS and Windows put them. A font
# installed after matplotlib built its font cache (~/.cache/matplotlib) is not in that cache:
# cjk_font() adds the file itself, found here or by fontconfig (fc-list :lang=zh).
CJK_FONT_FILES = (CJK_FONT_FILE,
                  Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
                  Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                  Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
                  Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
                  Path("/System/Library/Fonts/PingFang.ttc"),
                  Path("/System/Library/Fonts/STHeiti Medium.ttc"),
                  Path("C:/Windows/Fonts/msyh.ttc"), Path("C:/Windows/Fonts/simhei.ttf"))
CJK_FONT_NAMES = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP",
                  "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", "SimHei")

# Every label, in each language (the Chinese in d2l-zh's terms). tests/test_diagrams.py checks the
# English labels against a model built by d2l_ext, and that each Chinese figure states the same
# numbers in the same order.
WORDS = {
    "en": dict(
        input="input  (c_in, h, w)", conv1="1x1 conv, b channels  +  BN, ReLU",
        gconv="3x3 grouped conv, b // 32 groups,\n{s}  + BN, ReLU",
        conv3="1x1 conv, c channels  +  BN", add="add,  ReLU", stride="stride {s}",
        projection="1x1 conv, c,\n{s}  + BN", identity="identity",
        block_note="b = round(c * bot_mul) bottleneck channels; groups=32 means 32 channels per "
                   "group, so the 3x3 conv has b // 32 groups (2, 4, 8 for c = 64, 128, 256)",
        first="first stage (b2): block", block="block",
        projection_block="block, 1x1 projection,\nstride 2",
        text_block="block (1x1 projection, stride 2)",
        code_first="code, first stage", code_later="code, later stages (default)",
        text_title="text: dropout after the last two\nblocks (dropout_placement='text')",
        network=["input (3, 224, 224)",
                 "b1: 7x7 conv 64, stride 2, BN, ReLU\n3x3 max-pool, stride 2 -> (64, 56, 56)",
                 "b2: 2 blocks, 64 ch, 2 groups\nDropout 0.2 / 0.4 -> (64, 56, 56)",
                 "b3: 2 blocks, 128 ch, 4 groups\nstride 2, Dropout 0.4 -> (128, 28, 28)",
                 "b4: 2 blocks, 256 ch, 8 groups\nstride 2, Dropout 0.4 -> (256, 14, 14)",
                 "last: global avg-pool, flatten\nlinear 256 -> 5",
                 "5 class scores"],
        params="ResNeXt18: 622,213 parameters"),
    "zh": dict(
        input="输入  (c_in, h, w)", conv1="1x1 卷积, b 个通道  +  BN, ReLU",
        gconv="3x3 分组卷积, b // 32 组,\n{s}  + BN, ReLU",
        conv3="1x1 卷积, c 个通道  +  BN", add="相加,  ReLU", stride="步幅 {s}",
        projection="1x1 卷积, c,\n{s}  + BN", identity="恒等映射",
        block_note="b = round(c * bot_mul) 个瓶颈通道；groups=32 指每组 32 个通道，"
                   "所以 3x3 卷积有 b // 32 组（2, 4, 8 组，对应 c = 64, 128, 256）",
        first="第一个阶段 (b2): 块", block="块",
        projection_block="块, 1x1 卷积投影,\n步幅 2",
        text_block="块 (1x1 卷积投影, 步幅 2)",
        code_first="代码: 第一个阶段", code_later="代码: 后面的阶段（默认）",
        text_title="正文: 暂退法在最后两个块之后\n(dropout_placement='text')",
        network=["输入 (3, 224, 224)",
                 "b1: 7x7 卷积 64, 步幅 2, BN, ReLU\n3x3 最大汇聚层, 步幅 2 -> (64, 56, 56)",
                 "b2: 2 个块, 64 通道, 2 组\n暂退法 0.2 / 0.4 -> (64, 56, 56)",
                 "b3: 2 个块, 128 通道, 4 组\n步幅 2, 暂退法 0.4 -> (128, 28, 28)",
                 "b4: 2 个块, 256 通道, 8 组\n步幅 2, 暂退法 0.4 -> (256, 14, 14)",
                 "last: 全局平均汇聚层, 展平\n全连接层 256 -> 5",
                 "5 个类别的得分"],
        params="ResNeXt18: 622,213 个参数"),
}


class NoCJKFontError(RuntimeError):
    """No installed font has Chinese glyphs: the message names the Debian package to install."""


def fc_list_cjk():
    """The font files fontconfig lists as covering Chinese (None: no fc-list on this machine)."""
    import subprocess
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted({Path(line.strip().rstrip(":")) for line in out.splitlines() if line.strip()})


def cjk_font():
    """The name of a font with Chinese glyphs, or a one-line error naming the package to install.

    A font file found (the known places first, then fontconfig's list) is added to matplotlib's
    font manager directly, so a font installed after matplotlib's font cache was built is used
    without rebuilding the cache. Then the names matplotlib knows are tried.
    """
    listed = fc_list_cjk()
    for path in [p for p in CJK_FONT_FILES if p.exists()] + (listed or []):
        try:
            font_manager.fontManager.addfont(str(path))
            return font_manager.FontProperties(fname=str(path)).get_name()
        except (OSError, RuntimeError, ValueError):      # not a font matplotlib can read
            continue
    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONT_NAMES:
        if name in have:
            return name
    fc = "no fc-list to ask fontconfig" if listed is None else "fc-list :lang=zh lists none"
    raise NoCJKFontError(f"the Chinese diagrams need a font with Chinese glyphs, and none was found "
                         f"(looked for the files {', '.join(map(str, CJK_FONT_FILES))}; {fc}; and "
                         f"for the fonts {', '.join(CJK_FONT_NAMES)} in matplotlib's font list): "
                         f"on Debian or Ubuntu, sudo apt-get install {CJK_FONT_PACKAGE}")


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


def _block_column(ax, x, projection, title, w):
    ax.text(x, 1.0, title, ha="center", fontsize=9, weight="bold")
    s = w["stride"].format(s="s" if projection else "1")
    items = [(w["input"], "io"), (w["conv1"], "conv"), (w["gconv"].format(s=s), "gconv"),
             (w["conv3"], "conv"), (w["add"], "io")]
    ys = _column(ax, x, items, w=3.1)
    right = x + 1.95
    if projection:
        _box(ax, right + 0.7, (ys[1] + ys[3]) / 2, w["projection"].format(s=s), "conv", w=1.3, h=0.7)
        ax.plot([x + 1.55, right + 0.7, right + 0.7], [ys[0], ys[0], (ys[1] + ys[3]) / 2 + 0.35],
                color="#333333", lw=0.9)
        _arrow(ax, right + 0.7, (ys[1] + ys[3]) / 2 - 0.35, x + 1.55, ys[4])
    else:
        ax.plot([x + 1.55, right, right], [ys[0], ys[0], ys[4]], color="#333333", lw=0.9)
        _arrow(ax, right, ys[4], x + 1.55, ys[4])
        ax.text(right + 0.08, (ys[3] + ys[4]) / 2, w["identity"], fontsize=7, va="center")


def draw_block(lang="en"):
    """The ResNeXt block without (left) and with (right) the 1x1 projection shortcut."""
    w = WORDS[lang]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    _block_column(ax, 0.0, False, "ResNeXtBlock(c, 32, 1)", w)
    _block_column(ax, 5.0, True, "ResNeXtBlock(c, 32, 1, use_1x1conv=True, strides=2)", w)
    ax.text(2.5, -4.4, w["block_note"], ha="center", fontsize=7.5)
    ax.set_xlim(-1.8, 8.8); ax.set_ylim(-4.7, 1.3); ax.axis("off")
    return fig


def draw_stage(lang="en"):
    """A stage as the report's code builds it, beside what the report's text describes."""
    w = WORDS[lang]
    fig, ax = plt.subplots(figsize=(9, 4.4))
    code = [(w["first"], "conv"), ("Dropout(0.2)", "drop"), (w["block"], "conv"), ("Dropout(0.4)", "drop")]
    later = [(w["projection_block"], "gconv"), (w["block"], "conv"), ("Dropout(0.4)", "drop")]
    text = [(w["text_block"], "gconv"), ("Dropout(0.2)", "drop"),
            (w["block"], "conv"), ("Dropout(0.4)", "drop")]
    ax.text(0, 1.0, w["code_first"], ha="center", fontsize=9, weight="bold")
    _column(ax, 0, code)
    ax.text(3.3, 1.0, w["code_later"], ha="center", fontsize=9, weight="bold")
    _column(ax, 3.3, later)
    ax.text(6.6, 1.0, w["text_title"], ha="center", fontsize=9, weight="bold")
    _column(ax, 6.6, text)
    ax.set_xlim(-1.6, 8.2); ax.set_ylim(-3.2, 1.5); ax.axis("off")
    return fig


def draw_network(lang="en"):
    """The whole ResNeXt18, with the output shape after each part for a 224x224 input."""
    w = WORDS[lang]
    fig, ax = plt.subplots(figsize=(5.2, 6.4))
    kinds = ["io", "pool", "stage", "stage", "stage", "conv", "io"]
    ys = [-i * 1.05 for i in range(len(kinds))]
    for y, t, kind in zip(ys, w["network"], kinds):
        _box(ax, 0, y, t, kind, w=3.8, h=0.78)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, 0, y0 - 0.4, 0, y1 + 0.4)
    ax.text(0, 0.75, w["params"], ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-2.1, 2.1); ax.set_ylim(ys[-1] - 0.6, 1.0); ax.axis("off")
    return fig


# The split-transform-merge figure (notebook 01b): its own labels, in both languages.
STM_WORDS = {
    "en": dict(
        title_paths="(a) split - transform - merge: C paths, summed",
        title_grouped="(c) the same block: one grouped convolution",
        input="input: c channels", path="path {i}", path_last="path C",
        p1="1x1 conv, c -> d\nBN, ReLU", p2="3x3 conv, d -> d\nBN, ReLU", p3="1x1 conv, d -> c",
        merge="sum of the C paths (+ bias), BN", add="add the input, ReLU",
        g1="1x1 conv, c -> C*d\nBN, ReLU", g2="3x3 grouped conv, C groups\nof d -> d, BN, ReLU",
        g3="1x1 conv, C*d -> c, BN", identity="identity",
        split="split", transform="transform", merge_side="merge",
        note="the report's first stage: c = {c} channels, C = {C} paths of d = {d} channels"),
    "zh": dict(
        title_paths="(a) 拆分-变换-合并: C 条路径, 求和",
        title_grouped="(c) 同一个块: 一个分组卷积",
        input="输入: c 个通道", path="路径 {i}", path_last="路径 C",
        p1="1x1 卷积, c -> d\nBN, ReLU", p2="3x3 卷积, d -> d\nBN, ReLU", p3="1x1 卷积, d -> c",
        merge="C 条路径求和 (+ 偏置), BN", add="加上输入, ReLU",
        g1="1x1 卷积, c -> C*d\nBN, ReLU", g2="3x3 分组卷积, C 组\n每组 d -> d, BN, ReLU",
        g3="1x1 卷积, C*d -> c, BN", identity="恒等映射",
        split="拆分", transform="变换", merge_side="合并",
        note="报告的第一个阶段: c = {c} 个通道, C = {C} 条路径, 每条 d = {d} 个通道"),
}


def draw_split_transform_merge(lang="en"):
    """The ResNeXt block as C parallel bottleneck paths whose outputs are summed (left, the
    paper's Fig. 3 (a)) and as the one block with a grouped 3x3 convolution that computes the
    same (right, Fig. 3 (c)); numbers from the report's first-stage block."""
    from .models import ResNeXtBlock
    w = STM_WORDS[lang]
    first = ResNeXtBlock(64, 32, 1)                    # the report's first-stage block
    fig, ax = plt.subplots(figsize=(10.5, 5.4))
    ax.text(2.75, 0.85, w["title_paths"], ha="center", fontsize=9, weight="bold")
    _box(ax, 2.75, 0.2, w["input"], "io", w=2.4, h=0.45)
    rows = [-1.0, -1.9, -2.8]
    xs = [0.45, 2.3, 5.0]                              # path 1, path 2, (dots), path C
    for k, x in enumerate(xs):
        label = w["path_last"] if k == len(xs) - 1 else w["path"].format(i=k + 1)
        ax.text(x - 0.83, -0.58, label, ha="left", fontsize=7.5, style="italic")
        _arrow(ax, 2.75, -0.03, x, rows[0] + 0.3)
        for y, key, kind in zip(rows, ("p1", "p2", "p3"), ("conv", "gconv", "conv")):
            _box(ax, x, y, w[key], kind, w=1.7, h=0.6)
        for y0, y1 in zip(rows, rows[1:]):
            _arrow(ax, x, y0 - 0.3, x, y1 + 0.3)
        _arrow(ax, x, rows[-1] - 0.3, 2.75, -3.62)
    ax.plot([3.4, 3.65, 3.9], [rows[1]] * 3, "o", color="#444444", ms=3)
    _box(ax, 2.75, -3.85, w["merge"], "bn", w=3.0, h=0.45)
    _arrow(ax, 2.75, -4.08, 2.75, -4.42)
    _box(ax, 2.75, -4.65, w["add"], "io", w=2.4, h=0.45)
    ax.plot([3.95, 6.2, 6.2], [0.2, 0.2, -4.65], color="#333333", lw=0.9)
    _arrow(ax, 6.2, -4.65, 3.95, -4.65)
    for y, key in ((-0.45, "split"), (-1.9, "transform"), (-3.85, "merge_side")):
        ax.text(-0.55, y, w[key], ha="right", va="center", fontsize=8, color="#555555")
    x = 8.8
    ax.text(x, 0.85, w["title_grouped"], ha="center", fontsize=9, weight="bold")
    items = [(w["input"], "io"), (w["g1"], "conv"), (w["g2"], "gconv"), (w["g3"], "conv"),
             (w["add"], "io")]
    ys = [0.2, -1.0, -1.9, -2.8, -4.65]
    for y, (t, kind) in zip(ys, items):
        _box(ax, x, y, t, kind, w=2.5, h=0.6 if kind != "io" else 0.45)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, x, y0 - (0.3 if y0 != ys[0] else 0.23), x, y1 + (0.3 if y1 != ys[-1] else 0.23))
    ax.plot([x + 1.3, x + 1.75, x + 1.75], [ys[0], ys[0], ys[-1]], color="#333333", lw=0.9)
    _arrow(ax, x + 1.75, ys[-1], x + 1.3, ys[-1])
    ax.text(x + 1.8, -3.7, w["identity"], fontsize=7, va="center")
    ax.text(5.2, -5.3, w["note"].format(c=first.conv3.out_channels, C=first.cardinality,
                                        d=first.width_per_group), ha="center", fontsize=8)
    ax.text(5.2, -5.65, "ResNeXtBlock(64, 32, 1) = ResNeXtBlock(64, cardinality="
            f"{first.cardinality}, width_per_group={first.width_per_group})", ha="center",
            fontsize=8, family="monospace")
    ax.set_xlim(-1.8, 10.8); ax.set_ylim(-5.9, 1.1); ax.axis("off")
    return fig


FIGURES = (("resnext_block", draw_block), ("resnext_stage", draw_stage),
           ("resnext18_network", draw_network),
           ("split_transform_merge", draw_split_transform_merge))


def draw_all(out="assets", langs=LANGUAGES):
    """Draw the figures: English into ``out``, Chinese into ``out/zh``; return the paths.

    The font for Chinese is looked up first, so a missing one stops before anything is drawn.
    """
    # Latin letters in matplotlib's own font in both languages; Chinese glyphs fall back to the CJK font
    fonts = {lang: ["DejaVu Sans"] + ([cjk_font()] if lang == "zh" else []) for lang in langs}
    paths = []
    for lang in langs:
        folder = Path(out) / ("zh" if lang == "zh" else "")
        folder.mkdir(parents=True, exist_ok=True)
        with plt.rc_context({"font.family": fonts[lang]}):
            for name, draw in FIGURES:
                fig = draw(lang)
                path = folder / f"{name}.png"
                tmp = path.with_suffix(".png.tmp0")
                fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight",
                            metadata={"Software": None})
                plt.close(fig)
                tmp.replace(path)
                paths.append(path)
    return paths
