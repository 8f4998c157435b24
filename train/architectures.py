"""The model architectures on offer, each with the training recipe it works best with.

Saved models contain only built-in Keras layers, so the inference service loads them with
`keras.saving.load_model(path, safe_mode=True)` and no custom objects. Input: (28, 28, 1) float32
in [0, 1], white ink on black. Output: 10 softmax probabilities. Data augmentation is not part of
the model: it lives in the tf.data input pipeline (train/augment.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# Batch-norm moving statistics settle within ~20 steps at 0.9 (Keras' 0.99 needs ~200): with it a
# short run on a small data set is evaluated with statistics that match its weights.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[[], object]
    # The recipe's defaults: the values used for fields a request leaves out.
    defaults: dict = field(default_factory=dict)
    # "constant": the learning rate as given; "cosine": a short linear warm-up to it, then a
    # cosine decay to zero by the last step (converges further in a fixed number of epochs).
    schedule: str = "constant"

    def recipe(self) -> dict:
        """How long and how fast a run trains by default: its epochs, batch size and rate."""
        return {key: self.defaults[key] for key in ("epochs", "batch_size", "learning_rate")}


def build_simple():
    """The classic keras.io MNIST convnet: two convolutions, max pooling, dropout, softmax."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=INPUT_SHAPE, name="image"),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        # float32 even when trained in bfloat16 (train/precision.py): the loss needs
        # probabilities finer than bfloat16's 8 bits.
        layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"),
    ], name="simple")


def conv_bn_relu(filters: int, kernel_size: int = 3):
    """Convolution without bias (batch norm brings its own shift), batch norm, ReLU."""
    from keras import layers

    return [layers.Conv2D(filters, kernel_size, use_bias=False),
            layers.BatchNormalization(momentum=BN_MOMENTUM),
            layers.ReLU()]


def build_cnn(pool_before_batch_norm: bool = True, middle_filters: int = 64, name: str = "cnn"):
    """The two-convolution example grown by one convolution, batch norm and a dense head.

    Sized for CPU training: the full-resolution stage has 32 filters only, the 64-filter
    convolutions run at 13 and 11 pixels, so an epoch of the full MNIST costs about twice the
    simple example's. The first stage pools before its batch norm and ReLU, which then work on
    a quarter of the pixels: on 2 cores a training step costs ~20% less CPU than with them at
    26×26, and the models read MNIST and the handwriting sets as well (docs/benchmarks.md,
    "Training"). `pool_before_batch_norm=False` builds that first stage as it was before, for
    `make bench-train`'s levers. `middle_filters=32` is `cnn-small` (build_cnn_small).
    """
    import keras
    from keras import layers

    if pool_before_batch_norm:
        # ReLU after max pooling is the same as before it; batch norm's statistics are then
        # the pooled pixels', a different model that was measured to read as well.
        first_stage = [layers.Conv2D(32, 3, use_bias=False),           # 26×26
                       layers.MaxPooling2D(),                          # 13×13
                       layers.BatchNormalization(momentum=BN_MOMENTUM),
                       layers.ReLU()]
    else:
        first_stage = [*conv_bn_relu(32), layers.MaxPooling2D()]
    return keras.Sequential([
        keras.Input(shape=INPUT_SHAPE, name="image"),
        *first_stage,
        *conv_bn_relu(middle_filters),     # 11×11
        *conv_bn_relu(64),                 # 9×9
        layers.MaxPooling2D(),             # 4×4
        layers.Flatten(),
        layers.Dense(128, use_bias=False),
        layers.BatchNormalization(momentum=BN_MOMENTUM),
        layers.ReLU(),
        layers.Dropout(0.4),
        # float32 even when trained in bfloat16 (train/precision.py): the loss needs
        # probabilities finer than bfloat16's 8 bits.
        layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"),
    ], name=name)


def build_cnn_small():
    """`cnn` with 32 filters in its middle convolution instead of 64: about half the
    multiply-adds, ~0.65 of the CPU a training step on 2 cores.

    On the starter's 4,500 digits it reads MNIST and every handwriting set as well as `cnn` (6
    seeds each) and trains in 0.72 of the time, so it is the starter's network: `make run`'s
    first prediction comes that much sooner. On the full MNIST `cnn`'s extra filters pay: the
    small one read drawn digits 0.22 points and thick ones 0.32 points worse (3 seeds each),
    so `cnn` stays the default there (docs/handwriting.md, "A smaller network for the starter").
    """
    return build_cnn(middle_filters=32, name="cnn_small")


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch for arch in (
        Architecture(
            name="cnn",
            description="Batch norm, dropout and augmentation (shifts, small rotations, zoom, "
                        "stroke thickness); aimed at 99.5% on the full MNIST.",
            build=build_cnn,
            defaults={"epochs": 8, "batch_size": 128, "learning_rate": 0.003, "augment": True},
            schedule="cosine",
        ),
        Architecture(
            name="cnn-small",
            description="cnn with half the filters in its middle convolution: the starter's "
                        "network, as accurate as cnn on mnist-5k's 5,000 digits in 0.7 of the "
                        "time (on the full MNIST cnn reads drawings better).",
            build=build_cnn_small,
            # The starter's recipe (train/params.py STARTER): 20 epochs of 256 digits at 0.006.
            defaults={"epochs": 20, "batch_size": 256, "learning_rate": 0.006, "augment": True},
            schedule="cosine",
        ),
        Architecture(
            name="simple",
            description="The classic keras.io two-convolution MNIST example (about 99% on the "
                        "full MNIST).",
            build=build_simple,
            defaults={"epochs": 12, "batch_size": 128, "learning_rate": 0.001, "augment": False},
        ),
    )
}
DEFAULT_ARCHITECTURE = "cnn"


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; choose one of "
                       f"{', '.join(ARCHITECTURES)}") from None
