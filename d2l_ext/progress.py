"""Progress that fits where the code runs: a d2l board in a notebook, tqdm in a terminal.

d2l's ``ProgressBoard`` redraws on every point and, outside a notebook, prints
``<Figure size 350x250 with 1 Axes>`` instead of progress. ``NotebookProgress`` keeps
d2l's board but is fed a bounded number of points per epoch; ``TerminalProgress``
shows a tqdm bar per epoch and prints one line per finished epoch.
"""
import sys

from d2l import torch as d2l


def in_notebook():
    """True inside a Jupyter kernel (where a figure can be displayed and redrawn)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def format_epoch(row):
    return (f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  val acc {row['val_acc']:.4f}  "
            f"{row['seconds']:.1f}s")


class NotebookProgress:
    """d2l's live board (train loss, val loss, val acc against epochs)."""

    def __init__(self, max_epochs, board=None):
        self.board = board if board is not None else d2l.ProgressBoard()
        self.board.xlabel = "epoch"
        self.board.xlim = [0, max_epochs]
        # Losses run from about 2 (or more, in the first steps) down to 0.01, accuracies
        # between 0.2 and 1: on a log axis all of them stay readable, and one large early
        # value does not flatten the rest.
        self.board.yscale = "log"

    def start_epoch(self, epoch, num_batches):
        pass

    def batch_done(self):
        pass

    def train_point(self, x, loss):
        self.board.draw(x, loss, "train_loss", every_n=1)

    def epoch_done(self, row):
        self.board.draw(row["epoch"], row["val_loss"], "val_loss", every_n=1)
        self.board.draw(row["epoch"], row["val_acc"], "val_acc", every_n=1)

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
