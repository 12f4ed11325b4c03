"""The report's numbers, its defects, and clear errors (issue 2)."""
import pytest
import torch
from torch import nn
from d2l import torch as d2l

import report_code
from d2l_ext import (ResNeXtBlock, ResNeXt, ResNeXt18, ResNet18, BaselineCNN,
                     REPORT_ARCHS, count_parameters)

X224 = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def built(model, X=X224):
    model(X)
    return model


def layout(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    return built(ResNeXt18(lr=0.1, num_classes=5))


@pytest.fixture(scope="module")
def report():
    torch.manual_seed(0)
    return built(report_code.ResNeXt18(0.1, 5))


def test_parameter_count_and_state_dict_match_the_report(ours, report):
    assert count_parameters(ours) == 622_213
    assert sum(p.numel() for p in report.parameters()) == 622_213
    assert len(ours.state_dict()) == 149
    assert layout(ours) == layout(report)
    keys = list(ours.state_dict())
    assert keys[0] == "net.0.0.weight" and keys[-2:] == ["net.last.2.weight", "net.last.2.bias"]
    assert keys.index("net.b2.0.conv1.weight") < keys.index("net.b2.2.conv1.weight") \
        < keys.index("net.b3.0.conv4.weight")


def test_report_checkpoint_loads_strictly_and_gives_same_outputs(report):
    fresh = ResNeXt18(lr=0.1, num_classes=5)
    fresh.load_state_dict(report.state_dict(), strict=True)
    fresh.eval(); report.eval()
    X = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(fresh(X), report(X), rtol=0, atol=0)
    # Loaded weights are not overwritten by the first-forward initialization.
    torch.testing.assert_close(fresh.state_dict()["net.0.0.weight"],
                               report.state_dict()["net.0.0.weight"], rtol=0, atol=0)


def test_stage_layout_and_dropout_positions(ours):
    b2, b3, b4 = ours.net.b2, ours.net.b3, ours.net.b4
    assert [type(m).__name__ for m in b2] == ["ResNeXtBlock", "Dropout", "ResNeXtBlock", "Dropout"]
    assert [m.p for m in b2 if isinstance(m, nn.Dropout)] == [0.2, 0.4]
    for stage in (b3, b4):
        assert [type(m).__name__ for m in stage] == ["ResNeXtBlock", "ResNeXtBlock", "Dropout"]
        assert stage[0].conv4 is not None and stage[0].conv4.stride == (2, 2)
        assert stage[1].conv4 is None and stage[2].p == 0.4
    groups = [m.groups for m in ours.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert groups == [2, 2, 4, 4, 8, 8]


def test_text_placement_puts_dropout_after_the_last_two_blocks_of_every_stage():
    m = built(ResNeXt18(dropout_placement="text"), torch.randn(2, 3, 32, 32))
    assert [type(x).__name__ for x in m.net.b3] == ["ResNeXtBlock", "Dropout", "ResNeXtBlock", "Dropout"]
    assert count_parameters(m) == 622_213
    m = ResNeXt18(dropout=(0.3, 0.5))
    assert [x.p for x in m.modules() if isinstance(x, nn.Dropout)] == [0.3, 0.5, 0.5, 0.5]


def test_shapes_on_224(ours):
    ours.eval()
    shapes = []
    X = X224
    with torch.no_grad():
        for layer in ours.net:
            X = layer(X)
            shapes.append(tuple(X.shape[1:]))
    assert shapes == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (5,)]


@pytest.mark.parametrize("stages, params", [(4, 1_977_733), (5, 3_594_117)])
def test_report_stage_table_parameter_counts(stages, params):
    assert count_parameters(built(ResNeXt(REPORT_ARCHS[stages], num_classes=5))) == params


def test_three_blocks_per_stage_builds_every_block():
    arch = ((3, 64), (3, 128))
    ref = report_code.ResNeXt(arch, 0.1, 5)
    ours = ResNeXt(arch, num_classes=5)
    blocks = lambda stage: sum(isinstance(m, (ResNeXtBlock, report_code.ResNeXtBlock)) for m in stage)
    assert blocks(ref.net.b2) == 2 and blocks(ref.net.b3) == 3   # the report loses block 0
    assert blocks(ours.net.b2) == 3 and blocks(ours.net.b3) == 3
    assert [type(m).__name__ for m in ours.net.b2] == \
        ["ResNeXtBlock", "ResNeXtBlock", "Dropout", "ResNeXtBlock", "Dropout"]


def test_xavier_init_really_applied():
    torch.manual_seed(0)
    m = built(ResNeXt18(), torch.randn(4, 3, 32, 32))
    w = m.net.b4[1].conv1.weight            # 1x1 conv, 256 -> 256
    fan_in = fan_out = 256
    bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier uniform bound = 0.108
    assert w.abs().max() <= bound
    assert abs(w.std().item() - bound / 3 ** 0.5) < 0.003   # std of U(-b, b)
    # PyTorch's default (Kaiming uniform, a=sqrt(5)) would give bound 1/sqrt(256) = 0.0625.
    assert w.abs().max() > 0.1
    lin = m.net.last[2].weight
    assert lin.abs().max() > 1 / 256 ** 0.5
    # The report's own code leaves PyTorch's default init in place.
    torch.manual_seed(0)
    r = built(report_code.ResNeXt18(0.1, 5), torch.randn(4, 3, 32, 32))
    assert r.net.b4[1].conv1.weight.abs().max() <= 1 / 256 ** 0.5 + 1e-6


def test_first_forward_does_not_touch_batchnorm_statistics_twice():
    torch.manual_seed(0)
    m = ResNeXt18()
    m(torch.randn(4, 3, 32, 32))
    assert m.net[0][1].num_batches_tracked.item() == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch=()), "arch is empty"),
    (dict(arch=((0, 64),)), "stage 0 num_blocks"),
    (dict(arch=((2, 64.5),)), "stage 0 num_channels"),
    (dict(arch=((2, "64"),)), "stage 0 num_channels"),
    (dict(arch=((2, 64),), num_classes=1), "num_classes must be at least 2"),
    (dict(arch=((2, 64),), dropout=(0.2, 1.0)), "dropout"),
    (dict(arch=((2, 64),), dropout_placement="after"), "dropout_placement"),
    (dict(arch=((2, 48),)), "groups=32 channels per group does not fit 48"),
    (dict(arch=((2, 16),)), "16 // 32 = 0 groups"),
])
def test_bad_arguments_get_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNeXt(**kwargs)


def test_report_code_gives_torch_error_for_zero_groups():
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        report_code.ResNeXtBlock(16, 32, 1)


def test_wrong_input_after_build_is_named():
    m = built(ResNeXt18(), torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="built for 3-channel images, got a batch with 1"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expects a batch of images .* got \(3, 32, 32\)"):
        m(torch.randn(3, 32, 32))


def test_baselines_are_classifiers_with_known_sizes():
    r = built(ResNet18(num_classes=5), torch.randn(2, 3, 64, 64))
    c = built(BaselineCNN(num_classes=5), torch.randn(2, 1, 28, 28))
    assert isinstance(r, d2l.Classifier) and isinstance(c, d2l.Classifier)
    assert count_parameters(r) == 11_182_085
    assert count_parameters(c) == 61_281
    assert sum(isinstance(m, d2l.Residual) for m in r.modules()) == 8


@pytest.mark.parametrize("make", [lambda: ResNeXt18(lr=0.05), lambda: BaselineCNN(lr=0.05, num_classes=5),
                                  lambda: ResNet18(lr=0.05, num_classes=5)])
def test_a_few_cpu_steps_lower_the_loss(make):
    torch.manual_seed(0)
    X = torch.randn(32, 1, 28, 28)
    y = torch.arange(32) % 5
    X += y.view(-1, 1, 1, 1).float() * 0.5      # learnable signal
    model = make()
    model(X)
    optim = model.configure_optimizers()
    losses = []
    for _ in range(8):
        loss = model.loss(model(X), y)
        optim.zero_grad(); loss.backward(); optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]



# --- one registry, one place lazy layers are materialized (issue 13) -----------------------

def test_one_registry_builds_names_and_rebuilds_every_model(tmp_path):
    from d2l_ext.models import MODELS, build_model
    from d2l_ext.recipes import RECIPES, build_run
    from d2l_ext import Trainer, model_from_checkpoint
    assert list(MODELS) == ["resnext", "resnet18", "baseline"]
    assert set(MODELS["resnext"].settings) == {"stages", "dropout", "dropout_placement",
                                               "cardinality", "width_per_group"}
    assert MODELS["baseline"].settings == {} and MODELS["resnet18"].settings == {}
    four = built(build_model("resnext", num_classes=5, stages=4, dropout=(0, 0)),
                 torch.randn(2, 3, 32, 32))
    assert count_parameters(four) == 1_977_733 and four.hparams["dropout"] == (0, 0)
    # A template of the cardinality experiment: 1 group of 64 channels in the first stage.
    dense = built(build_model("resnext", num_classes=5, dropout=(0, 0), cardinality=1,
                              width_per_group=64), torch.randn(2, 1, 32, 32))
    assert count_parameters(dense) == 1_906_181 and dense.hparams["cardinality"] == 1
    with pytest.raises(ValueError, match="model 'baseline' has no setting 'dropout'"):
        build_model("baseline", dropout=(0.2, 0.4))
    with pytest.raises(ValueError, match="model 'resnet18' has no setting 'stages'"):
        build_run(RECIPES["5class"], {"model": "resnet18", "stages": 4}, data=_FakeData())
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of resnext, "
                                         "resnet18, baseline"):
        build_model("vgg")
    for name, entry in MODELS.items():     # each class a checkpoint names comes back
        model = built(build_model(name, num_classes=5), torch.randn(2, 1, 32, 32))
        path = Trainer(max_epochs=1, progress="none").save_checkpoint(tmp_path / f"{name}.pt",
                                                                      model)
        assert type(model_from_checkpoint(path)) is entry.cls


class _FakeData:
    num_classes = 5


def test_lazy_layers_are_materialized_in_one_place(monkeypatch):
    import d2l_ext.models as M
    torch.manual_seed(0)
    m = ResNeXt18()
    M.materialize(m, torch.randn(4, 3, 32, 32))
    assert not any(nn.parameter.is_lazy(p) for p in m.parameters())
    assert m.net[0][1].num_batches_tracked.item() == 0            # a dry run in eval mode
    w = m.net.b4[1].conv1.weight.detach().clone()
    assert w.abs().max() <= (6 / 512) ** 0.5                      # Xavier, as init_cnn gives
    M.materialize(m, torch.randn(4, 3, 32, 32))                   # nothing lazy: left alone
    m(torch.randn(2, 3, 32, 32))
    assert torch.equal(w, m.net.b4[1].conv1.weight)
    # The Trainer materializes through the same function, once.
    from d2l_ext.training import Trainer
    original, calls = M.materialize, []

    def counting(model, X):
        calls.append(tuple(X.shape))
        return original(model, X)
    monkeypatch.setattr(M, "materialize", counting)
    trainer = Trainer(max_epochs=1, progress="none")
    trainer.train_dataloader = [(torch.randn(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))]
    trainer.data = _FakeData()               # prepare_model checks outputs against its classes
    fresh = BaselineCNN(num_classes=5)
    trainer.prepare_model(fresh)
    fresh(torch.randn(2, 1, 16, 16))
    assert calls == [(4, 1, 16, 16)]
    assert not any(nn.parameter.is_lazy(p) for p in fresh.parameters())


# --- cardinality and width_per_group: clear names, same network (issue 20) ------------------

from d2l_ext.models import CARDINALITY_TEMPLATES, block_widths, stage_widths


def same_network(make_a, make_b, X, load=False):
    """Built from the same seed, two models have the same state_dict layout and outputs
    (``load``: b gets a's weights first, for the report's code, which initializes otherwise)."""
    torch.manual_seed(0)
    a = make_a(); a(X)
    torch.manual_seed(0)
    b = make_b(); b(X)
    assert layout(a) == layout(b)
    if load:
        b.load_state_dict(a.state_dict(), strict=True)
    a.eval(); b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(X), b(X), rtol=0, atol=0)
    return a, b


@pytest.mark.parametrize("kwargs", [dict(groups=32), dict(width_per_group=32),
                                    dict(groups=32, bot_mul=1), dict(width_per_group=32, bot_mul=1),
                                    dict(groups=32, width_per_group=32)])
def test_report_groups_alias_and_width_per_group_build_the_report_network(kwargs):
    X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    _, m = same_network(lambda: ResNeXt18(), lambda: ResNeXt18(**kwargs), X)
    ref, _ = same_network(lambda: report_code.ResNeXt18(0.1, 5), lambda: ResNeXt18(**kwargs), X,
                          load=True)
    assert count_parameters(m) == sum(p.numel() for p in ref.parameters()) == 622_213
    assert len(m.state_dict()) == 149
    blocks = [b for b in m.modules() if isinstance(b, ResNeXtBlock)]
    assert [(b.cardinality, b.width_per_group) for b in blocks] == \
        [(2, 32), (2, 32), (4, 32), (4, 32), (8, 32), (8, 32)]


@pytest.mark.parametrize("channels, extra, report_args", [
    (64, {}, (64, 32, 1)),
    (128, dict(use_1x1conv=True, strides=2), (128, 32, 1, True, 2)),
])
def test_block_alias_and_new_names_build_the_same_block(channels, extra, report_args):
    X = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(3))
    C = channels // 32
    for kwargs in (dict(cardinality=C, width_per_group=32), dict(cardinality=C),
                   dict(cardinality=C, bot_mul=1), dict(width_per_group=32, bot_mul=1),
                   dict(width_per_group=32), dict(cardinality=C, groups=32, bot_mul=1)):
        _, blk = same_network(lambda: report_code.ResNeXtBlock(*report_args),
                           lambda: ResNeXtBlock(channels, **kwargs, **extra), X)
        same_network(lambda: ResNeXtBlock(*report_args),
                     lambda: ResNeXtBlock(channels, **kwargs, **extra), X)
        assert (blk.cardinality, blk.width_per_group, blk.bot_channels) == (C, 32, channels)
        assert blk.conv2.groups == C


def test_cardinality_keeps_the_groups_and_width_per_group_the_first_stages_width():
    assert stage_widths(REPORT_ARCHS[3]) == [(2, 32), (4, 32), (8, 32)]         # the report's
    assert stage_widths(REPORT_ARCHS[3], cardinality=32, width_per_group=4) == \
        [(32, 4), (32, 8), (32, 16)]                                           # the paper's 32x4d
    assert stage_widths(REPORT_ARCHS[3], cardinality=4) == [(4, 16), (4, 32), (4, 64)]
    assert stage_widths(REPORT_ARCHS[3], cardinality=4, bot_mul=0.5) == [(4, 8), (4, 16), (4, 32)]
    assert stage_widths(REPORT_ARCHS[5], cardinality=2, width_per_group=32)[-2:] == \
        [(2, 256), (2, 256)]
    assert block_widths(64, 4, 0.25) == (16, 4, 4)
    # the report's bottleneck widths with the 3x3 convs in one group each: 1x64d
    assert stage_widths(REPORT_ARCHS[3], **CARDINALITY_TEMPLATES["1x64d"]) == \
        [(1, 64), (1, 128), (1, 256)]


@pytest.mark.parametrize("make, message", [
    (lambda: ResNeXtBlock(64, 32, 1, width_per_group=16),
     r"^groups=32 and width_per_group=16 disagree: groups is the report's name for width_per_group"),
    (lambda: ResNeXtBlock(64, bot_mul=1, cardinality=4, width_per_group=32),
     r"^cardinality=4 x width_per_group=32 = 128 bottleneck channels, but bot_mul=1 gives "
     r"round\(64 \* 1\) = 64"),
    (lambda: ResNeXtBlock(64, 32, 0.5, cardinality=4),
     r"^cardinality=4 x groups=32 = 128 bottleneck channels, but bot_mul=0.5 gives"),
    (lambda: ResNeXtBlock(64, cardinality=3),
     r"^cardinality=3 groups do not divide 64 bottleneck channels"),
    (lambda: ResNeXtBlock(64, width_per_group=48),
     r"^width_per_group=48 channels per group does not fit 64 bottleneck channels"),
    (lambda: ResNeXtBlock(64), r"^give cardinality \(number of groups\) and/or width_per_group"),
    (lambda: ResNeXtBlock(64, cardinality=0, width_per_group=4), r"^cardinality .* positive integer"),
    (lambda: ResNeXt18(groups=32, width_per_group=4),
     r"^groups=32 and width_per_group=4 disagree"),
    (lambda: ResNeXt18(cardinality=2, width_per_group=32, bot_mul=0.5),
     r"^cardinality=2 x width_per_group=32 = 64 bottleneck channels in the first stage, but "
     r"bot_mul=0.5 gives round\(64 \* 0.5\) = 32"),
    (lambda: ResNeXt(((2, 64), (2, 96)), cardinality=2, width_per_group=3),
     r"^width_per_group=3 in the first stage \(64 channels\) widens to 3 \* 96 / 64 = 4.5"),
    (lambda: ResNeXt18(cardinality=5), r"^cardinality=5 groups do not divide 64"),
])
def test_numbers_that_do_not_fit_together_are_one_line_errors_naming_both(make, message):
    with pytest.raises(ValueError, match=message) as e:
        make()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", list(CARDINALITY_TEMPLATES))
def test_templates_build_c_groups_in_every_stage_and_come_back_from_a_checkpoint(name, tmp_path):
    from d2l_ext import Trainer, model_from_checkpoint
    C, d = CARDINALITY_TEMPLATES[name]["cardinality"], CARDINALITY_TEMPLATES[name]["width_per_group"]
    assert name == f"{C}x{d}d"
    m = built(ResNeXt18(**CARDINALITY_TEMPLATES[name]), torch.randn(2, 1, 32, 32))
    convs = [b.conv2 for b in m.modules() if isinstance(b, ResNeXtBlock)]
    assert [c.groups for c in convs] == [C] * 6
    assert [c.out_channels // c.groups for c in convs] == [d, d, 2 * d, 2 * d, 4 * d, 4 * d]
    path = Trainer(max_epochs=1, progress="none").save_checkpoint(tmp_path / "m.pt", m)
    back = model_from_checkpoint(path)
    assert layout(back) == layout(m)
    assert [b.conv2.groups for b in back.modules() if isinstance(b, ResNeXtBlock)] == [C] * 6
