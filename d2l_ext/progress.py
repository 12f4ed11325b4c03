"""Progress that fits where the code runs: a live board in a notebook, tqdm in a terminal.

d2l's ``ProgressBoard`` redraws on every point, draws accuracy on the losses' axis and,
outside a notebook, prints ``<Figure size 350x250 with 1 Axes>`` instead of progress.
``NotebookProgress`` draws a two-panel board (``plotting.TrainingBoard``: losses on a log
scale, accuracy on its own axis) fed a bounded number of points per epoch;
``TerminalProgress`` shows a tqdm bar per epoch and prints one line per finished epoch.
"""
import sys


def in_notebook():
    """True inside a Jupyter kernel (where a figure can be displayed and redrawn)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def format_epoch(row):
    return (f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  val acc {row['val_acc']:.4f}  "
            f"{row['seconds']:.1f}s")


class NotebookProgress:
    """The live board of ``plotting.TrainingBoard``: training loss twice per epoch and
    validation loss on a log scale in one panel, validation accuracy in the other.

    ``board`` is the model's d2l ``ProgressBoard``, which the Trainer passes on: the new
    board honours its ``display`` (False: record, show nothing) and draws itself.
    """

    def __init__(self, max_epochs, board=None):
        from .plotting import TrainingBoard
        self.board = TrainingBoard(max_epochs, display=getattr(board, "display", True))

    def start_epoch(self, epoch, num_batches):
        pass

    def batch_done(self):
        pass

    def train_point(self, x, loss):
        self.board.draw(x, loss, "train loss")

    def epoch_done(self, row):
        self.board.draw(row["epoch"], row["val_loss"], "val loss")
        self.board.draw(row["epoch"], row["val_acc"], "val acc")

    def close(self):
        pass


class TerminalProgress:
    """A tqdm bar over each epoch's batches and one printed line per epoch."""

    def __init__(self, max_epochs, file=None):
        self.max_epochs, self.file, self.bar = max_epochs, file or sys.stderr, None

    def start_epoch(self, epoch, num_batches):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=num_batches, desc=f"epoch {epoch}/{self.max_epochs}",
                        leave=False, file=self.file, dynamic_ncols=True)

    def batch_done(self):
        self.bar.update()

    def train_point(self, x, loss):
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def epoch_done(self, row):
        self.close()
        print(format_epoch(row), flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SilentProgress:
    def __init__(self, *args):
        pass

    start_epoch = batch_done = train_point = epoch_done = close = lambda self, *a: None
