"""What every notebook's first cell sets up (``notebook_setup``), in both editions.

The notebooks name files as d2l does, relative to the notebook's folder: ``../data``,
``../results``, ``../runs``. The Chinese edition in ``notebooks/zh/`` runs the English code
cells character for character (one test keeps the two editions in step, and nbval compares
the same outputs), but JupyterLab starts its kernels one folder deeper. So every notebook's
first cell calls ``notebook_setup``, whose ``work_in_notebooks_dir`` moves a kernel in ``notebooks/zh/`` up to
``notebooks/`` and does nothing anywhere else (the English notebooks, a student's own copy).
"""
import os
from pathlib import Path

__all__ = ["work_in_notebooks_dir", "notebook_setup"]


def work_in_notebooks_dir():
    """From ``notebooks/zh/``, change the working directory to ``notebooks/``; return it."""
    here = Path.cwd()
    if here.name == "zh" and here.parent.name == "notebooks":
        os.chdir(here.parent)
    return Path.cwd()


def notebook_setup(seed=0):
    """A notebook's preamble in one call; returns whether to run quickly.

    Paths start in ``notebooks/`` (``work_in_notebooks_dir``); figures are PNG
    (``plotting.use_png_display``: SVG carries dates and random ids, which strict nbval
    would see as changed); torch is seeded with ``seed``. The return value is True when
    ``D2L_EXT_QUICK=1`` (``pytest --nbval`` sets it: a few epochs instead of the full run).
    """
    import torch
    from .plotting import use_png_display
    work_in_notebooks_dir()
    use_png_display()
    torch.manual_seed(seed)
    return os.environ.get("D2L_EXT_QUICK") == "1"
