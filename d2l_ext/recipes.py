"""The one place a run is built: a recipe (+ a row's config) -> data, model, Trainer.

The command line (``train``, ``evaluate``, ``ablate``), the experiments and the benchmarks
all call ``build_data``/``build_run``, so a recipe means the same thing everywhere.
"""
import math

from .data import AUGMENTATIONS, MIN_IMAGE_SIZE, FashionMNIST, FashionMNIST5, ImageFolderData
from .models import build_model
from .training import Trainer

__all__ = ["RULES", "RecipeError", "check_recipe", "RECIPES", "DATA_SIZES", "DATA_SIZE_RECIPES",
           "LR_GRID", "LR_EXTENDED", "TRAIN_LR", "build_data", "recipe_data", "build_run"]

#: One recipe per family of runs. The 5-class recipe: SGD with Nesterov momentum 0.9 and
#: weight decay 5e-4, a 3-epoch linear warm-up (deep nets at batch 32 otherwise blow up in
#: the first steps: training loss 6-7 at epoch 1 without it), then a cosine schedule, 32x32
#: inputs, no augmentation, 60 epochs (the 30 of the first version left the 4- and 5-stage
#: nets' training loss still falling). ``lr`` is the default for ``train``; the experiments
#: give each network the rate it does best with on the validation split (``LR_GRID``, the
#: ``lr-sweep`` experiment). The full recipe upsamples to 96x96 (the stem would leave 8x8
#: maps of a 32x32 image) and adds random erasing: the GPU recipe (hours on a 2-core CPU).
#: The 10-minute CPU recipe trains in bf16 (``amp``) at 48x48, fast on CPUs with native bf16.
RECIPES = {
    "5class": dict(data="fashion5", epochs=60, batch_size=32, lr=0.05, momentum=0.9,
                   weight_decay=5e-4, schedule="cosine", warmup=3, resize=32, augment=False),
    "5class-64px": dict(data="fashion5", epochs=60, batch_size=32, lr=0.05, momentum=0.9,
                        weight_decay=5e-4, schedule="cosine", warmup=3, resize=64,
                        augment=False),
    # What the report most likely ran: stock d2l's Classifier and Trainer (plain SGD with
    # no momentum or weight decay, a constant learning rate, batch norm's running averages
    # for evaluation) at the report's own default lr=0.1; data and epochs as in "5class".
    "5class-stock-d2l": dict(data="fashion5", epochs=60, batch_size=32, lr=0.1, momentum=0.0,
                             weight_decay=0.0, schedule=None, warmup=0, resize=32,
                             augment=False, recompute_bn=False),
    "full": dict(data="fashion", epochs=50, batch_size=256, lr=0.1, momentum=0.9,
                 weight_decay=5e-4, schedule="cosine", warmup=0, resize=96,
                 augment="crop-flip-erase"),
    "full-cpu10min": dict(data="fashion", epochs=7, batch_size=128, lr=0.1, momentum=0.9,
                          weight_decay=5e-4, schedule="cosine", warmup=0, resize=48,
                          augment=False, amp="bf16"),
    # ``ablate cardinality-full``: all of Fashion-MNIST (10 classes, 55,000/5,000/10,000) at
    # its own 28x28, in fp32, 10 epochs with a 1-epoch warm-up: what one core of a laptop
    # trains in well under an hour (each record holds its time; docs/experiments.md).
    "full-28px": dict(data="fashion", epochs=10, batch_size=128, lr=0.1, momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", warmup=1, resize=28,
                      augment=False),
}

#: ``ablate data-size``: the 5-class recipe with 300, 1,000 and 3,000 training images a class
#: (the first images of the same seeded per-class order, so each set holds the smaller ones;
#: validation and test as with 100). Epochs shrink as 60 * sqrt(100 / n): more images give
#: more steps per epoch (60 epochs of 100 a class are 938 steps; 11 of 3,000 are 5,159). At
#: 3,000 a class the training loss is still falling when the run ends (notebook 5, §5.12):
#: an equal, short budget, not training to the end. The warm-up stays at about 50 steps:
#: 3 epochs of 100 a class, 1 epoch above. ``DATA_SIZE_RECIPES``: the recipe of each size.
DATA_SIZES = (100, 300, 1000, 3000)
DATA_SIZE_RECIPES = {n: "5class" if n == 100 else f"5class-{n}" for n in DATA_SIZES}
for _n in DATA_SIZES[1:]:
    RECIPES[DATA_SIZE_RECIPES[_n]] = dict(RECIPES["5class"], train_per_class=_n, warmup=1,
                                          epochs=round(60 * (100 / _n) ** 0.5))

#: Learning rates tried for each network on the validation split (``ablate lr-sweep``).
LR_GRID = (0.01, 0.03, 0.1, 0.3)
#: Where a network's best rate sits at an edge of the rates tried, the sweep goes one step
#: further along this list, until the best rate has a neighbour on each side (or the list
#: ends), so that no choice is an artefact of where the grid stopped.
LR_EXTENDED = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

#: ``train``'s default learning rate: the one ``lr-sweep`` chose for the report's 3-stage
#: ResNeXt on the validation split (``tests/test_docs.py`` checks that they agree).
TRAIN_LR = 0.3

#: ``python -m d2l_ext train``'s recipe: the 5-class recipe at ``TRAIN_LR``. Each option the
#: user gives replaces its field; the others are this recipe's (notebook 4 trains with it).
RECIPES["train"] = dict(RECIPES["5class"], lr=TRAIN_LR)


def _whole(low, high=None):
    return lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= low
                      and (high is None or v < high))


#: What each number of a run must be, by its recipe field (and the seeds): ``check_recipe``
#: and the command line's options follow these, before any data is read. Why: a momentum
#: of 5 or an lr of inf trains for minutes into nan, a resize of 8 fails only once the data
#: is read, so the rule is said in one line at once instead.
RULES = {
    "epochs": ("a positive integer", _whole(1)),
    "batch_size": ("a positive integer", _whole(1)),
    "lr": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "momentum": ("in [0, 1) (0.9 is usual; at 1 or more the steps grow without bound)",
                 lambda v: 0 <= v < 1),
    "weight_decay": ("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
    "resize": (f"at least {MIN_IMAGE_SIZE} pixels (the networks shrink images 16-fold)",
               _whole(MIN_IMAGE_SIZE)),
    "seed": ("an integer in [0, 2**32)", _whole(0, 2 ** 32)),
}


class RecipeError(ValueError):
    """A recipe field that breaks its rule; ``field`` names it (``train`` says its option)."""

    def __init__(self, field, message):
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


def check_recipe(recipe):
    """The recipe, or a ``RecipeError`` naming the first field that breaks its rule
    (``RULES``; the warm-up in [0, epochs), a schedule, an augmentation)."""
    for field, (rule, test) in RULES.items():
        if field in recipe and not test(recipe[field]):
            raise RecipeError(field, f"must be {rule}, got {recipe[field]}")
    if not _whole(0, recipe["epochs"])(recipe.get("warmup", 0)):
        raise RecipeError("warmup", f"must be in [0, epochs) = [0, {recipe['epochs']}), got "
                                    f"{recipe['warmup']}")
    if recipe.get("schedule") not in (None, "cosine"):
        raise RecipeError("schedule", f"must be None or 'cosine', got {recipe['schedule']!r}")
    if recipe.get("augment") not in AUGMENTATIONS:
        raise RecipeError("augment", f"must be one of {list(AUGMENTATIONS)}, got "
                                     f"{recipe['augment']!r}")
    return recipe


def build_data(name, batch_size, resize, root="data", augment=False, seed=0,
               train_per_class=None):
    """The data a name stands for: 'fashion5' (``train_per_class`` images a class, 100 by
    default), 'fashion', or a folder of images."""
    if train_per_class is not None and name != "fashion5":
        raise ValueError(f"train_per_class applies to 'fashion5' only, not to {name!r}")
    if name == "fashion5":
        return FashionMNIST5(batch_size=batch_size, resize=resize, root=root, augment=augment,
                             seed=seed, train_per_class=train_per_class or 100)
    if name == "fashion":
        return FashionMNIST(batch_size=batch_size, resize=resize, root=root, augment=augment,
                            seed=seed)
    return ImageFolderData(name, batch_size=batch_size, resize=resize, augment=augment,
                           seed=seed)


def recipe_data(recipe, root="data", split_seed=0):
    """The data a recipe trains on (its data set, batch size, input size, augmentation);
    ``split_seed`` draws which images are training and which validation."""
    return build_data(recipe["data"], recipe["batch_size"], recipe["resize"], root,
                      recipe["augment"], seed=split_seed,
                      train_per_class=recipe.get("train_per_class"))


def build_run(recipe, config, data=None, root="data", **trainer_args):
    """(data, model, Trainer) for one row of an experiment, or for ``train``.

    ``recipe``: a dict like ``RECIPES["5class"]``; ``config``: the row's model (``model``,
    and the settings it has in ``models.MODELS``: for ResNeXt ``stages``, ``dropout``), and
    optionally ``lr``, which wins over the recipe's. A setting the model does not have is
    a ``ValueError``. ``data``: reuse data already built for this recipe. ``trainer_args``: seed,
    device, progress, checkpoint, ...
    """
    check_recipe(recipe)
    if data is None:
        data = recipe_data(recipe, root)
    settings = {k: v for k, v in config.items() if k not in ("model", "lr")}
    model = build_model(config["model"], num_classes=data.num_classes,
                        lr=config.get("lr", recipe["lr"]), **settings)
    trainer = Trainer(max_epochs=recipe["epochs"], momentum=recipe["momentum"],
                      weight_decay=recipe["weight_decay"], schedule=recipe["schedule"],
                      warmup=recipe.get("warmup", 0), amp=recipe.get("amp", True),
                      recompute_bn=recipe.get("recompute_bn", True), **trainer_args)
    return data, model, trainer
