"""Where the notebooks' relative paths start, in both editions.

The notebooks name files as d2l does, relative to the notebook's folder: ``../data``,
``../results``, ``../runs``. The Chinese edition in ``notebooks/zh/`` runs the English code
cells character for character (one test keeps the two editions in step, and nbval compares
the same outputs), but JupyterLab starts its kernels one folder deeper. So every notebook's
first cell calls ``work_in_notebooks_dir``, which moves a kernel in ``notebooks/zh/`` up to
``notebooks/`` and does nothing anywhere else (the English notebooks, a student's own copy).
"""
import os
from pathlib import Path

__all__ = ["work_in_notebooks_dir"]


def work_in_notebooks_dir():
    """From ``notebooks/zh/``, change the working directory to ``notebooks/``; return it."""
    here = Path.cwd()
    if here.name == "zh" and here.parent.name == "notebooks":
        os.chdir(here.parent)
    return Path.cwd()
