"""d2l_ext: the report's ResNeXt-18 as finished d2l classes (see README)."""
from .models import (ResNeXtBlock, ResNeXt, ResNeXt18, ResNet18, BaselineCNN,
                     REPORT_ARCHS, count_parameters)
from .data import FashionMNIST, FashionMNIST5, ImageFolderData
from .training import Trainer, resolve_device, load_checkpoint, model_from_checkpoint
