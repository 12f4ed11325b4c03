"""Small matplotlib helpers shared by evaluation, the CLI and the experiment tables."""

from d2l import torch as d2l

plt = d2l.plt

__all__ = ["plt", "use_png_display", "show_image_grid", "plot_history", "TrainingBoard"]


def use_png_display():
    """Make notebook figures PNG, also when d2l code asks for SVG.

    d2l switches to SVG before every plot. SVG carries a date and random ids, so strict
    ``pytest --nbval`` would see a "different" output on every run; nbval skips PNG.
    """
    from matplotlib_inline import backend_inline
    backend_inline.set_matplotlib_formats("png")
    d2l.use_svg_display = lambda: None


def show_image_grid(images, titles, ncols=8, scale=1.4):
    """Show a (N, C, H, W) batch in [0, 1] as a grid with one title per image."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * 1.25),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        img = img.squeeze(0) if img.shape[0] == 1 else img.permute(1, 2, 0)
        ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def log_scale(ax):
    """A log-scaled y axis labelled with plain numbers (0.1, 1, 10), not powers of ten.

    Between the powers of ten, 2 and 5 (0.2, 0.5, 2, ...) are labelled; on an axis that
    spans less than about a decade, as a loss late in training does, 3, 4 and 6 to 9 too,
    so that it never shows a single number.
    """
    import math
    from matplotlib.ticker import FuncFormatter
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")

    def minor(y, _):
        lo, hi = ax.get_ylim()
        span = math.log10(hi / lo) if lo > 0 and hi > lo else 10
        digits = "23456789" if span < 0.6 else "2345" if span < 1.2 else "25"
        return f"{y:g}" if f"{y:.0e}"[0] in digits else ""

    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def legend_above(ax):
    """The legend in one row above the axes, where it can cover no curve."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=3, frameon=False,
              borderaxespad=0, handlelength=2.5)


def _loss_and_accuracy_axes(loss_ax, acc_ax):
    log_scale(loss_ax)
    loss_ax.set_ylabel("loss (log scale)")
    acc_ax.set_ylabel("validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)


def plot_history(history, title=None, axes=None):
    """Loss (log scale) and validation accuracy against epochs, from ``Trainer.history``.

    Two panels: on one axis, a first-epoch validation loss of several hundred would
    flatten every other curve onto zero; a log scale keeps 0.1 and 100 both readable.
    Returns the two axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3))
    loss_ax, acc_ax = axes
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "-", label="train loss")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "--", label="val loss")
    acc_ax.plot(epochs, [h["val_acc"] for h in history], "-", color="C2", label="val acc")
    _loss_and_accuracy_axes(loss_ax, acc_ax)
    legend_above(loss_ax); legend_above(acc_ax)
    if title:
        loss_ax.figure.suptitle(title)
    loss_ax.figure.tight_layout()
    return axes


class TrainingBoard:
    """The live board of ``d2l_ext.Trainer`` in a notebook: the losses on a log scale in one
    panel, the validation accuracy in the other, each labelled, legends above the panels.

    d2l's ``ProgressBoard`` draws all three curves on one 3.5x2.5-inch axis: on its log
    scale an accuracy between 0.6 and 0.8 looks flat, and its legend sits on the curves.
    The board is one output that is updated in place (a display id), so what a cell prints
    before or after training stays. ``display=False`` records and draws without showing.
    """

    def __init__(self, max_epochs, display=True, figsize=(8, 3)):
        self.display = display
        self.fig, (self.loss_ax, self.acc_ax) = plt.subplots(1, 2, figsize=figsize)
        styles = {"train loss": (self.loss_ax, "-", "C0", "."),
                  "val loss": (self.loss_ax, "--", "C1", "o"),
                  "val acc": (self.acc_ax, "-", "C2", "o")}
        self.lines = {name: ax.plot([], [], linestyle=ls, color=color, marker=marker,
                                    markersize=3 if marker == "o" else 0, label=name)[0]
                      for name, (ax, ls, color, marker) in styles.items()}
        _loss_and_accuracy_axes(self.loss_ax, self.acc_ax)
        for ax in (self.loss_ax, self.acc_ax):
            ax.set_xlim(0, max_epochs)
            legend_above(ax)
        self.fig.tight_layout()
        self._handle = None
        plt.close(self.fig)      # shown through the display handle only, not again at cell end

    def draw(self, x, y, name):
        """Add the point (x, y) to the curve ``name`` ('train loss', 'val loss', 'val acc')."""
        line = self.lines[name]
        line.set_data(list(line.get_xdata()) + [x], list(line.get_ydata()) + [y])
        ax = line.axes
        ax.relim()
        ax.autoscale_view(scalex=False)
        if self.display:
            self.show()

    def show(self):
        from IPython.display import display
        self.fig.tight_layout()
        if self._handle is None:
            self._handle = display(self.fig, display_id=True)
        else:
            self._handle.update(self.fig)


def save_figure(fig, path):
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
