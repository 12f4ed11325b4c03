"""d2l_ext: the report's ResNeXt-18 as finished d2l classes (see README)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:     # `python -m d2l_ext ...`, while Python still locates it
    # Loading torch and d2l takes seconds; a Ctrl-C meanwhile ends with one line, not a
    # traceback through the imports. The command line (__main__.main) then sets its own.
    import signal as _signal

    def _interrupted_while_loading(signum, frame):
        _sys.stderr.write("\ninterrupted while loading torch: nothing was done\n")
        raise SystemExit(130)

    _signal.signal(_signal.SIGINT, _interrupted_while_loading)

import d2l as _d2l

if not _d2l.__version__.startswith("1."):   # d2l-zh's 0.17.x: train_ch6, no Classifier/Trainer
    raise ImportError(f"d2l_ext needs d2l 1.0.3 (d2l.Classifier, d2l.Trainer), but this environment "
                      f"has d2l {_d2l.__version__}, the Chinese book's older API: use a separate "
                      f"environment for these notebooks (README, 'Setup, test, run')")

from .models import (ResNeXtBlock, ResNeXt, ResNeXt18, ResNet18, BaselineCNN,
                     REPORT_ARCHS, count_parameters)
from .data import FashionMNIST, FashionMNIST5, ImageFolderData
from .training import Trainer, resolve_device
from .checkpoints import load_checkpoint, model_from_checkpoint
from .paths import notebook_setup
