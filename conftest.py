"""Loaded by every pytest run from the repo root, before notebooks are collected."""
import os
import sys

# Notebooks run by `pytest --nbval` switch to their small quick mode (see README);
# the kernels nbval starts inherit this environment.
os.environ.setdefault("D2L_EXT_QUICK", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tests"))
