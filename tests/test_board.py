"""The Trainer's live board in a notebook (issue 22): losses on a log scale and accuracy on
axes of their own, each labelled, and legends that cover no curve."""
import matplotlib
import pytest
import torch

from d2l_ext import BaselineCNN, FashionMNIST5, Trainer
from d2l_ext.data import TensorImages
from d2l_ext.plotting import TrainingBoard, plot_history


@pytest.fixture(scope="module")
def trained(offline_fashion_mnist):
    """4 epochs of the baseline on 100 images at 16x16, drawn on the notebook board."""
    data = FashionMNIST5(batch_size=25, resize=16, train_per_class=20, root="/nonexistent",
                         download=False)
    data.val = TensorImages(data.val.images[:200], data.val.labels[:200], data.MEAN, data.STD)
    model = BaselineCNN(num_classes=5)
    model.board.display = False            # draw, do not show (no notebook here)
    trainer = Trainer(max_epochs=4, progress="notebook", seed=0)
    trainer.fit(model, data)
    return trainer


def boxes(fig):
    """The renderer of the figure drawn as a PNG would be (the board closes its figure in
    pyplot, which leaves it a bare canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_trainer_draws_losses_and_accuracy_on_separate_labelled_axes(trained):
    board = trained.board.board
    assert isinstance(board, TrainingBoard)
    loss_ax, acc_ax = board.fig.axes
    assert loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"
    assert "loss" in loss_ax.get_ylabel() and "accuracy" in acc_ax.get_ylabel()
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch"
    assert loss_ax.get_xlim() == acc_ax.get_xlim() == (0, 4)
    history = trained.history
    lines = {l.get_label(): l for ax in (loss_ax, acc_ax) for l in ax.get_lines()}
    assert set(lines) == {"train loss", "val loss", "val acc"}
    assert lines["val acc"] in acc_ax.get_lines() and lines["val loss"] in loss_ax.get_lines()
    assert list(lines["val acc"].get_ydata()) == [h["val_acc"] for h in history]
    assert list(lines["val loss"].get_ydata()) == [h["val_loss"] for h in history]
    assert len(lines["train loss"].get_xdata()) == trained.points_per_epoch * 4
    # every point is inside the visible range of its axis
    for line in lines.values():
        lo, hi = line.axes.get_ylim()
        assert all(lo <= y <= hi for y in line.get_ydata()), line.get_label()


@pytest.mark.parametrize("which", ["board", "plot_history"])
def test_legends_cover_no_curve(trained, which):
    if which == "board":
        fig = trained.board.board.fig
    else:
        fig = plot_history(trained.history)[0].figure
    renderer = boxes(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None and legend.get_texts()
        # the legend's box lies above the axes' box, where no curve is drawn
        assert legend.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1 - 1
        # and within the figure
        assert legend.get_window_extent(renderer).y1 <= fig.bbox.y1 + 1
    matplotlib.pyplot.close(fig)


def test_board_shows_one_output_and_updates_it(monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def display(fig, display_id=False):
        assert display_id
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    board = TrainingBoard(max_epochs=2)
    board.draw(0.5, 2.0, "train loss")
    board.draw(1, 1.5, "val loss")
    board.draw(1, 0.4, "val acc")
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert all(fig is board.fig for _, fig in shown)
    assert board.fig not in [matplotlib.pyplot.figure(n) for n in matplotlib.pyplot.get_fignums()]
