"""Parameters and FLOPs of the ResNeXt block and network, as formulas in C and d.

A block maps ``c_in`` to ``c`` channels through a 1x1 conv to the bottleneck of ``C * d``
channels, a 3x3 conv in ``C`` groups of ``d`` channels (the paper's cardinality C and width d;
``cardinality`` and ``width_per_group`` in ``d2l_ext.models``), and a 1x1 conv back to ``c``,
each followed by batch normalization; a downsampling block has stride 2 in the 3x3 conv and a
1x1 projection (conv and BN) on the shortcut. Its parameters:

    C * d * (c_in + c)    the two 1x1 convs' weights
  + 9 * C * d**2          the grouped 3x3 conv's weights: C groups of d x d x 3 x 3
  + 6 * C * d + 3 * c     biases (conv1, conv2, conv3) and BN scales and shifts (bn1..bn3)
  + c_in * c + 3 * c      the projection, if any (weights, bias, BN)

and its forward FLOPs, counted as ``torch.utils.flop_counter`` counts them: 2 FLOPs per
multiply-add of a convolution's weights (biases, batch norm, ReLU and the addition not
counted), with an ``h x w`` input and an ``h' x w'`` output (``h' = ceil(h / stride)``):

    2 * (h * w * c_in * C * d  +  h' * w' * (9 * C * d**2 + C * d * c  [+ c_in * c]))

(the first 1x1 conv works at the input's resolution, the stride sits in the 3x3 conv, as in the
report's block). The paper's Table 2 uses the weights alone: C * (c_in * d + 9 * d**2 + d * c).
Only forward FLOPs: torch's counter overcounts the backward pass of grouped convolutions
(notebook 3, exercise 5). The network functions add the report's stem (7x7 conv, stride 2, BN,
3x3 max-pool, stride 2) and head (global average pooling, linear layer). Notebook 01b checks
every formula against counted values; ``tests/test_complexity.py`` too.
"""
import math

from .models import CARDINALITY_TEMPLATES, REPORT_ARCHS, stage_widths

__all__ = ["block_params", "block_flops", "network_params", "network_flops",
           "template_table", "counted_flops"]


def block_params(c_in, c, cardinality, width_per_group, projection=False):
    """Parameters of one block (weights, biases and batch norm's scales and shifts)."""
    C, d = cardinality, width_per_group
    n = C * d * (c_in + c) + 9 * C * d * d + 6 * C * d + 3 * c
    return n + (c_in * c + 3 * c if projection else 0)


def block_flops(c_in, c, cardinality, width_per_group, size, stride=1, projection=False):
    """Forward FLOPs of one block on one ``size x size`` input map (2 per multiply-add)."""
    C, d = cardinality, width_per_group
    out = math.ceil(size / stride)
    macs = size * size * c_in * C * d + out * out * (9 * C * d * d + C * d * c)
    return 2 * (macs + (out * out * c_in * c if projection else 0))


def _blocks(arch, widths):
    """(c_in, c, C, d, stride, projection) of every block, in order (every block is built)."""
    c_in = 64                                   # the stem's output channels
    for s, ((num_blocks, c), (C, d)) in enumerate(zip(arch, widths)):
        for i in range(num_blocks):
            down = i == 0 and s > 0
            yield c_in, c, C, d, 2 if down else 1, down
            c_in = c


def network_params(arch=REPORT_ARCHS[3], in_channels=1, num_classes=5, **groups):
    """Parameters of ``ResNeXt(arch, num_classes=num_classes, **groups)`` on ``in_channels``
    input channels. ``groups``: ``cardinality``, ``width_per_group``, ``groups`` or ``bot_mul``,
    as ``ResNeXt`` takes them."""
    n = in_channels * 49 * 64 + 64 + 2 * 64            # stem: 7x7 conv (with bias), BN
    for c_in, c, C, d, _, down in _blocks(arch, stage_widths(arch, **groups)):
        n += block_params(c_in, c, C, d, projection=down)
    return n + arch[-1][1] * num_classes + num_classes  # the linear layer


def network_flops(arch=REPORT_ARCHS[3], size=32, in_channels=1, num_classes=5, **groups):
    """Forward FLOPs of that network on one ``in_channels x size x size`` image."""
    stem = math.ceil(size / 2)                          # 7x7 conv, stride 2, padding 3
    flops = 2 * stem * stem * in_channels * 49 * 64
    size = math.ceil(stem / 2)                          # 3x3 max-pool, stride 2, padding 1
    for c_in, c, C, d, stride, down in _blocks(arch, stage_widths(arch, **groups)):
        flops += block_flops(c_in, c, C, d, size, stride, projection=down)
        size = math.ceil(size / stride)
    return flops + 2 * arch[-1][1] * num_classes         # the linear layer


def template_table(templates=CARDINALITY_TEMPLATES, arch=REPORT_ARCHS[3], size=32,
                   in_channels=1, num_classes=5, reference="1x64d"):
    """One row per template: name, groups and channels per group in each stage, parameters,
    forward FLOPs at ``size x size``, both as a ratio to ``reference``."""
    rows = []
    for name, kwargs in templates.items():
        widths = stage_widths(arch, **kwargs)
        rows.append(dict(name=name, cardinality=[C for C, _ in widths],
                         width_per_group=[d for _, d in widths],
                         params=network_params(arch, in_channels, num_classes, **kwargs),
                         flops=network_flops(arch, size, in_channels, num_classes, **kwargs)))
    ref = next(r for r in rows if r["name"] == reference)
    for r in rows:
        r["params_ratio"], r["flops_ratio"] = r["params"] / ref["params"], r["flops"] / ref["flops"]
    return rows


def counted_flops(model, example):
    """Forward FLOPs of ``model`` on one input like ``example`` (a batch; its first image is
    used), as ``torch.utils.flop_counter`` counts them: what a run record stores beside the
    parameters, for any registered model (the formulas above cover ResNeXt only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example[:1])
    finally:
        model.train(was_training)
    return counter.get_total_flops()
