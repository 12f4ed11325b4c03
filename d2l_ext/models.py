"""The report's ResNeXt, layer for layer, and the two baselines it is compared with.

The report (summarized in ``docs/report.md``) is the specification: the classes
below build the same layers in the same order, so their ``state_dict`` has the report's
keys and shapes and a checkpoint from the report's code loads with ``strict=True``.
Where the report's code has a defect, the defect is named in the docstring and fixed in a
way that does not change the network the report actually trained.
"""
import numbers

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parameter import is_lazy
from d2l import torch as d2l

__all__ = ["ResNeXtBlock", "ResNeXt", "ResNeXt18", "ResNet18", "BaselineCNN",
           "REPORT_ARCHS", "CARDINALITY_TEMPLATES", "MODELS", "build_model", "materialize",
           "count_parameters", "block_widths", "stage_widths"]

#: The three architectures of the report's stage-count table (3, 4 and 5 stages).
REPORT_ARCHS = {
    3: ((2, 64), (2, 128), (2, 256)),
    4: ((2, 64), (2, 128), (2, 256), (2, 512)),
    5: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
}

#: Templates of the ResNeXt paper's kind (Xie et al. 2017, Table 2 and 3), "C x d": C groups
#: (``cardinality``) of d channels (``width_per_group``) in the first stage's 3x3 conv; every
#: later stage keeps C and widens the groups with its channels (the paper's and torchvision's
#: rule). At the report's scale (stages of 64, 128, 256 channels, 32x32 input) the widths are
#: chosen so that the networks' parameters and forward FLOPs lie within 5% of one another
#: (``d2l_ext.complexity``; notebook 01b prints the table and tests/test_complexity.py checks
#: it). "1x64d" is the report's network with dense 3x3 convs: the report's bottleneck widths
#: (64, 128, 256) in one group. 16 or 32 groups cannot be matched within 5% at this scale
#: (notebook 01b, section 4). Each entry is a dict of ``ResNeXt``/``ResNeXt18`` keyword arguments.
CARDINALITY_TEMPLATES = {
    "1x64d": dict(cardinality=1, width_per_group=64),
    "2x44d": dict(cardinality=2, width_per_group=44),
    "4x29d": dict(cardinality=4, width_per_group=29),
    "8x19d": dict(cardinality=8, width_per_group=19),
}


def count_parameters(model):
    """Number of scalar parameters; the model must have seen one forward pass."""
    if any(is_lazy(p) for p in model.parameters()):
        raise RuntimeError("the model still has lazy parameters: run one forward pass first")
    return sum(p.numel() for p in model.parameters())


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _width_per_group(groups, width_per_group):
    """The channels per group, from the report's ``groups`` or its new name (None if neither)."""
    if groups is not None and width_per_group is not None and groups != width_per_group:
        raise ValueError(f"groups={groups!r} and width_per_group={width_per_group!r} disagree: "
                         f"groups is the report's name for width_per_group (channels per "
                         f"group); give one of them")
    name = "width_per_group" if width_per_group is not None else "groups"
    d = width_per_group if width_per_group is not None else groups
    return (None, name) if d is None else (_check_positive_int(f"{name} (channels per group)", d), name)


def block_widths(num_channels, groups=None, bot_mul=None, cardinality=None, width_per_group=None):
    """``(bot_channels, cardinality, width_per_group)`` of one block's 3x3 convolution.

    The block's bottleneck has ``cardinality * width_per_group`` channels. Give the two new
    names, or one of them with ``bot_mul`` (default 1: ``round(num_channels * bot_mul)``
    bottleneck channels, as the report computes them). ``groups`` is the report's name for
    ``width_per_group`` (channels per group, not the number of groups). Numbers that do not fit
    together are a one-line ``ValueError`` naming them.
    """
    num_channels = _check_positive_int("num_channels", num_channels)
    d, d_name = _width_per_group(groups, width_per_group)
    if cardinality is not None:
        cardinality = _check_positive_int("cardinality (number of groups)", cardinality)
    if cardinality is None and d is None:
        raise ValueError("give cardinality (number of groups) and/or width_per_group (channels "
                         "per group; the report's groups)")
    if bot_mul is not None:
        bot = int(round(num_channels * bot_mul))
        if bot < 1:
            raise ValueError(f"num_channels * bot_mul = {num_channels} * {bot_mul} rounds to "
                             f"{bot} bottleneck channels; need at least 1")
    if cardinality is not None and d is not None:
        if bot_mul is not None and bot != cardinality * d:
            raise ValueError(f"cardinality={cardinality} x {d_name}={d} = {cardinality * d} "
                             f"bottleneck channels, but bot_mul={bot_mul} gives round("
                             f"{num_channels} * {bot_mul}) = {bot}; give bot_mul or both widths")
        return cardinality * d, cardinality, d
    bot = bot if bot_mul is not None else num_channels
    if d is not None:
        if bot // d == 0 or bot % d:
            raise ValueError(
                f"{d_name}={d} channels per group does not fit {bot} bottleneck channels: "
                f"{bot} // {d} = {bot // d} groups with remainder {bot % d}; choose a width "
                f"that divides {bot}")
        return bot, bot // d, d
    if bot % cardinality:
        raise ValueError(f"cardinality={cardinality} groups do not divide {bot} bottleneck "
                         f"channels ({bot} % {cardinality} = {bot % cardinality}); choose a "
                         f"cardinality that divides {bot}")
    return bot, cardinality, bot // cardinality


def stage_widths(arch, groups=None, bot_mul=None, cardinality=None, width_per_group=None):
    """``[(cardinality, width_per_group), ...]``, one per stage of ``arch``, as ``ResNeXt`` builds.

    * ``cardinality`` given: every stage has that many groups (the paper's rule). With
      ``width_per_group`` as well, that is the *first* stage's width ("C x d", as in the
      paper's template names and torchvision's ``width_per_group``), and each later stage
      widens its groups with its channels: d * num_channels / first stage's num_channels
      (32x4d: 4, 8, 16 channels per group at 64, 128, 256 channels). Without it the
      bottleneck is ``round(num_channels * bot_mul)`` (``bot_mul`` default 1), split in C groups.
    * otherwise ``width_per_group`` (the report's ``groups``; 32 if neither is given) is the
      width of the groups in every stage, and the number of groups grows with the channels
      (the report's rule: 2, 4, 8 groups at 64, 128, 256 channels with ``bot_mul=1``).
    """
    first = arch[0][1]
    d, d_name = _width_per_group(groups, width_per_group)
    if cardinality is None and d is None:
        d, d_name = 32, "groups"
    if cardinality is not None and d is not None:
        cardinality = _check_positive_int("cardinality (number of groups)", cardinality)
        if bot_mul is not None and int(round(first * bot_mul)) != cardinality * d:
            raise ValueError(f"cardinality={cardinality} x {d_name}={d} = {cardinality * d} "
                             f"bottleneck channels in the first stage, but bot_mul={bot_mul} "
                             f"gives round({first} * {bot_mul}) = {int(round(first * bot_mul))}; "
                             f"give bot_mul or both widths")
        widths = []
        for _, channels in arch:
            if (d * channels) % first:
                raise ValueError(f"{d_name}={d} in the first stage ({first} channels) widens to "
                                 f"{d} * {channels} / {first} = {d * channels / first:g} "
                                 f"channels per group at {channels} channels, not a whole "
                                 f"number; choose a width that gives one")
            widths.append((cardinality, d * channels // first))
        return widths
    kwargs = dict(bot_mul=bot_mul, cardinality=cardinality)
    if d is not None:
        kwargs[d_name] = d
    return [block_widths(channels, **kwargs)[1:] for _, channels in arch]


class ResNeXtBlock(nn.Module):
    """The report's ResNeXt block: 1x1 reduce, 3x3 grouped conv, 1x1 expand, plus shortcut.

    The 3x3 conv has ``cardinality`` groups (the number of parallel paths, the paper's C) of
    ``width_per_group`` channels each (the paper's d); the bottleneck has C * d channels. Give
    both, or one of them with ``bot_mul`` (the bottleneck is then ``round(num_channels *
    bot_mul)`` channels, ``bot_mul`` default 1), as torchvision's ``groups`` and
    ``width_per_group``. ``groups``, the report's second positional argument, is the number of
    *channels in each group* (as in the report and in d2l), i.e. an alias of
    ``width_per_group``, not the number of groups: the report's ``ResNeXtBlock(64, 32, 1)`` is
    ``ResNeXtBlock(64, cardinality=2, width_per_group=32)``, the same layers and state_dict.
    With the report's ``groups=32`` and ``bot_mul=1`` that is 2, 4 and 8 groups for 64, 128
    and 256 channels. The report's code would pass 0 groups (or a count that does not divide
    the channels) straight to PyTorch; here numbers that do not fit together are a one-line
    ``ValueError`` naming them. ``use_1x1conv`` adds the projection shortcut that changes
    channels and resolution. Attribute order matches the report, so state_dict keys do too;
    ``cardinality``, ``width_per_group`` and ``bot_channels`` are kept as plain attributes.
    """

    def __init__(self, num_channels, groups=None, bot_mul=None, use_1x1conv=False, strides=1, *,
                 cardinality=None, width_per_group=None):
        super().__init__()
        num_channels = _check_positive_int("num_channels", num_channels)
        strides = _check_positive_int("strides", strides)
        bot_channels, self.cardinality, self.width_per_group = block_widths(
            num_channels, groups, bot_mul, cardinality, width_per_group)
        self.bot_channels = bot_channels
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=self.cardinality)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


class LazyClassifier(d2l.Classifier):
    """A d2l Classifier whose lazy layers are really Xavier-initialized.

    d2l's models (and the report's) call ``self.net.apply(d2l.init_cnn)`` in ``__init__``,
    which does nothing: the layers are still ``LazyConv2d``/``LazyLinear`` there and
    ``d2l.init_cnn`` matches ``type(m) == nn.Conv2d`` exactly. Here the first forward pass
    materializes the layers (a no-grad dry run in eval mode, so BatchNorm statistics are
    untouched), applies ``init`` to ``self.net``, and only then computes. A model whose
    weights came from ``load_state_dict`` has nothing lazy left and is not re-initialized.
    The forward pass also checks that the input is a batch of images with the channel
    count the model was built for, and says so in plain words if not.
    """

    def __init__(self, init=d2l.init_cnn):
        super().__init__()
        self.init = init

    @property
    def in_channels(self):
        """Input channels the model was built for, or None while it is still lazy."""
        first = next(m for m in self.net.modules() if isinstance(m, nn.Conv2d))
        return None if is_lazy(first.weight) else first.weight.shape[1] * first.groups

    def _check_input(self, X):
        if not isinstance(X, torch.Tensor) or X.dim() != 4:
            shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise ValueError(f"{type(self).__name__} expects a batch of images shaped "
                             f"(batch, channels, height, width), got {shape}")
        expected = self.in_channels
        if expected is not None and X.shape[1] != expected:
            raise ValueError(f"{type(self).__name__} was built for {expected}-channel images, "
                             f"got a batch with {X.shape[1]} channels (shape {tuple(X.shape)})")

    def forward(self, X):
        self._check_input(X)
        if not getattr(self, "_materialized", False):
            materialize(self, X)
        return self.net(X)


def materialize(model, X):
    """Give every lazy layer of ``model`` its size from the batch ``X``: the one place this
    happens (the first forward pass of a ``LazyClassifier`` and ``Trainer.prepare_model``
    both call it).

    A no-grad dry run on one image in eval mode (batch norm statistics untouched), then,
    for a ``LazyClassifier``, its ``init`` applied to ``model.net``. A model with nothing
    lazy (say, weights from ``load_state_dict``) is left as it is, never re-initialized.
    """
    if any(is_lazy(p) for p in model.parameters()):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            # A LazyClassifier's own forward would come back here: run its layers directly.
            (model.net if isinstance(model, LazyClassifier) else model)(X[:1])
        model.train(was_training)
        if isinstance(model, LazyClassifier) and model.init is not None:
            model.net.apply(model.init)
    if isinstance(model, LazyClassifier):
        model._materialized = True
    return model


class ResNeXt(LazyClassifier):
    """The report's ResNeXt: the ResNet stem ``b1``, one stage per ``arch`` entry, a head.

    ``arch`` is a sequence of ``(num_blocks, num_channels)``, one per stage.
    ``dropout=(p_second_to_last, p_last)`` are the rates of the two dropout layers in each
    stage, the report's (0.2, 0.4) by default. ``dropout_placement`` chooses where:

    * ``"code"`` (default), what the report's code builds and trained: in the first stage
      dropout follows each of the last two blocks; in every later stage the downsampling
      block is not followed by dropout, so with 2 blocks only ``Dropout(p_last)`` remains.
    * ``"text"``, what the report's text says: dropout after each of a stage's last two
      blocks, in every stage (changes state_dict indices of later stages).

    Defects of the report's code, and what this class does:

    (a) its stage builder appends nothing for blocks that are neither the downsampling
        block nor one of the last two, so a stage of 3 or more blocks silently loses
        blocks (in the first stage, block 0). Here every block is built.
    (b) ``self.net.apply(init_cnn)`` in ``__init__`` is a no-op on lazy layers; here the
        first forward pass applies it (see ``LazyClassifier``).
    (c) a group width that does not divide the bottleneck channels: ``ValueError``.

    The 3x3 convolutions' groups (see ``stage_widths``): by default the report's, 32 channels
    per group in every stage (``groups=32``, the report's name, is ``width_per_group=32``), so
    2, 4 and 8 groups at 64, 128 and 256 channels; ``bot_mul`` (default 1) sets the bottleneck.
    ``cardinality=C`` keeps C groups in every stage, the paper's rule; with
    ``width_per_group=d`` too, d is the first stage's width ("C x d", as the paper and
    torchvision name a network: ``CARDINALITY_TEMPLATES``). Numbers that do not fit together
    (``groups`` and ``width_per_group`` that differ, ``bot_mul`` against C * d, a width that
    does not divide the channels) are a one-line ``ValueError`` naming them.
    """

    def __init__(self, arch, lr=0.1, num_classes=10, dropout=(0.2, 0.4),
                 dropout_placement="code", groups=None, bot_mul=None, init=d2l.init_cnn,
                 cardinality=None, width_per_group=None):
        super().__init__(init=init)
        arch = self._check_arch(arch)
        self._group_args = dict(groups=groups, bot_mul=bot_mul, cardinality=cardinality,
                                width_per_group=width_per_group)
        stage_widths(arch, **self._group_args)      # numbers that do not fit: fail before building
        num_classes = _check_positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        dropout = tuple(float(p) for p in dropout)
        if len(dropout) != 2 or not all(0 <= p < 1 for p in dropout):
            raise ValueError(f"dropout must be two rates in [0, 1), got {dropout!r}")
        if dropout_placement not in ("code", "text"):
            raise ValueError(f"dropout_placement must be 'code' or 'text', "
                             f"got {dropout_placement!r}")
        self.save_hyperparameters()
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f'b{i + 2}', self.block(*b, first_block=(i == 0)))
        self.net.add_module('last', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))

    @staticmethod
    def _check_arch(arch):
        try:
            arch = tuple(tuple(stage) for stage in arch)
        except TypeError:
            raise ValueError(f"arch must be a sequence of (num_blocks, num_channels) pairs, "
                             f"got {arch!r}") from None
        if not arch:
            raise ValueError("arch is empty: give at least one (num_blocks, num_channels) stage")
        for i, stage in enumerate(arch):
            if len(stage) != 2:
                raise ValueError(f"arch stage {i} must be (num_blocks, num_channels), got {stage!r}")
            _check_positive_int(f"arch stage {i} num_blocks", stage[0])
            _check_positive_int(f"arch stage {i} num_channels", stage[1])
        return arch

    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_ResNeXt, num_channels, first_block=False):
        """One stage: ``num_ResNeXt`` blocks with dropout placed as ``dropout_placement`` says."""
        p_second_last, p_last = self.hparams['dropout']
        first = self.hparams['arch'][0]
        C, d = stage_widths((first, (num_ResNeXt, num_channels)), **self._group_args)[1]
        blk = []
        for i in range(num_ResNeXt):
            downsample = i == 0 and not first_block
            if downsample:
                blk.append(ResNeXtBlock(num_channels, use_1x1conv=True, strides=2,
                                        cardinality=C, width_per_group=d))
            else:
                blk.append(ResNeXtBlock(num_channels, cardinality=C, width_per_group=d))
            code_skips_dropout = downsample and self.hparams['dropout_placement'] == "code"
            if i == num_ResNeXt - 2 and not code_skips_dropout:
                blk.append(nn.Dropout(p_second_last))
            elif i == num_ResNeXt - 1:
                blk.append(nn.Dropout(p_last))
        return nn.Sequential(*blk)


class ResNeXt18(ResNeXt):
    """The report's final model: 3 stages ``((2, 64), (2, 128), (2, 256))``, 5 classes."""

    def __init__(self, lr=0.1, num_classes=5, **kwargs):
        super().__init__(REPORT_ARCHS[3], lr, num_classes, **kwargs)


class ResNet18(LazyClassifier):
    """d2l's ResNet-18 (the ResNet chapter): 4 stages of ``d2l.Residual`` blocks.

    The report's "ResNet-18" reference. Same stem as ResNeXt (``ResNeXt.b1``); the stage
    builder is d2l's: a downsampling residual block with 1x1 projection opens every stage
    but the first. d2l 1.0.3 ships ``Residual`` but not the ``ResNet`` class, so the stage
    loop is written out here. Its ``apply(init_cnn)`` no-op is fixed as for ResNeXt.
    """

    def __init__(self, lr=0.1, num_classes=10, init=d2l.init_cnn):
        super().__init__(init=init)
        self.save_hyperparameters()
        self.net = nn.Sequential(ResNeXt.b1(self))
        for i, (num_residuals, num_channels) in enumerate(REPORT_ARCHS[4]):
            blk = [d2l.Residual(num_channels, use_1x1conv=(j == 0 and i > 0),
                                strides=2 if (j == 0 and i > 0) else 1)
                   for j in range(num_residuals)]
            self.net.add_module(f'b{i + 2}', nn.Sequential(*blk))
        self.net.add_module('last', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes)))


class BaselineCNN(LazyClassifier):
    """The stand-in for the course baseline: LeNet-5's layout with ReLU and max-pooling.

    Conv(6, 5x5, pad 2) - ReLU - MaxPool 2, Conv(16, 5x5) - ReLU - MaxPool 2, then
    Linear 120 - ReLU - Linear 84 - ReLU - Linear ``num_classes``. d2l's ``LeNet`` uses
    sigmoid and average pooling, which barely trains at the learning rates used here; this
    is the "modern" LeNet of d2l's exercises. About 60k parameters on 28x28 inputs.
    """

    def __init__(self, lr=0.1, num_classes=10, init=d2l.init_cnn):
        super().__init__(init=init)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.ReLU(),
            nn.LazyLinear(84), nn.ReLU(),
            nn.LazyLinear(num_classes))


class ModelEntry:
    """One model of the registry: its class, how to build it, the settings that apply."""

    def __init__(self, cls, settings, make, help):
        self.cls, self.settings, self.make, self.help = cls, dict(settings), make, help

    def build(self, num_classes, lr, **settings):
        """The model, with ``settings`` (a subset of ``self.settings``) over the defaults."""
        return self.make(num_classes=num_classes, lr=lr, **dict(self.settings, **settings))


def _resnext(num_classes, lr, stages, dropout, dropout_placement, cardinality=None,
             width_per_group=None):
    if stages not in REPORT_ARCHS:
        raise ValueError(f"stages must be one of {sorted(REPORT_ARCHS)}, got {stages!r}")
    return ResNeXt(REPORT_ARCHS[stages], lr=lr, num_classes=num_classes, dropout=dropout,
                   dropout_placement=dropout_placement, cardinality=cardinality,
                   width_per_group=width_per_group)


#: The one model registry: name (as the command line, the experiment configs and
#: ``build_model`` spell it) -> class (what a checkpoint names), the settings beyond
#: ``num_classes`` and ``lr`` that apply to it with their defaults, and how it is built.
MODELS = {
    # cardinality/width_per_group None: the report's groups (32 channels each); a template of
    # CARDINALITY_TEMPLATES sets both.
    "resnext": ModelEntry(ResNeXt, dict(stages=3, dropout=(0.2, 0.4), dropout_placement="code",
                                        cardinality=None, width_per_group=None),
                          _resnext, "the report's ResNeXt"),
    "resnet18": ModelEntry(ResNet18, {}, ResNet18, "d2l's ResNet-18"),
    "baseline": ModelEntry(BaselineCNN, {}, BaselineCNN, "the LeNet-style baseline"),
}


def model_class(class_name):
    """The registered class a checkpoint's ``model_class`` names, or None."""
    return next((e.cls for e in MODELS.values() if e.cls.__name__ == class_name), None)


def registered_class_name(model):
    """The name of the registered class ``model`` is (or derives from), as checkpoints
    record it (a ``ResNeXt18`` is saved as ``ResNeXt``, rebuilt from its hparams)."""
    names = {e.cls.__name__ for e in MODELS.values()}
    return next((c.__name__ for c in type(model).__mro__ if c.__name__ in names),
                type(model).__name__)


def build_model(name="resnext", num_classes=5, lr=0.1, **settings):
    """A registered model by name (``MODELS``); ``settings`` are the ones it has (for
    ResNeXt ``stages``, ``dropout``, ``dropout_placement``). A setting the model does not
    have is an error, not silently ignored."""
    entry = MODELS.get(name)
    if entry is None:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    extra = sorted(set(settings) - set(entry.settings))
    if extra:
        has = (f"its settings are {', '.join(entry.settings)}" if entry.settings
               else "it has none beyond num_classes and lr")
        raise ValueError(f"model {name!r} has no setting {', '.join(map(repr, extra))} "
                         f"({has})")
    return entry.build(num_classes, lr, **settings)
