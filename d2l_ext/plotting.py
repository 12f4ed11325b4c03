"""Small matplotlib helpers shared by evaluation, the CLI and the experiment tables."""

from d2l import torch as d2l

plt = d2l.plt

__all__ = ["plt", "use_png_display", "show_image_grid", "plot_history"]


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
    """A log-scaled y axis labelled with plain numbers (0.1, 1, 10), not powers of ten."""
    from matplotlib.ticker import FuncFormatter
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}" if f"{y:.0e}"[0] in "25" else ""))


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
    log_scale(loss_ax); loss_ax.set_ylabel("loss (log scale)"); loss_ax.legend()
    acc_ax.plot(epochs, [h["val_acc"] for h in history], "-", color="C2", label="val acc")
    acc_ax.set_ylabel("validation accuracy"); acc_ax.legend()
    for ax in axes:
        ax.set_xlabel("epoch"); ax.grid(alpha=0.3)
    if title:
        loss_ax.figure.suptitle(title)
    loss_ax.figure.tight_layout()
    return axes


def save_figure(fig, path):
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
