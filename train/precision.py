"""The numbers a training run computes with (TRAIN_PRECISION): float32, or bfloat16 to go faster.

Keras' mixed precision (`mixed_bfloat16`) computes each layer in bfloat16 and keeps the weights,
the optimizer and the softmax in float32. On CPUs that compute bfloat16 in hardware,
TensorFlow's oneDNN kernels then train in ~0.8 of float32's time: `cnn` on the full MNIST in
0.80 and the starter in 0.83 with Intel AMX (`amx_bf16` in /proc/cpuinfo: Xeon Sapphire Rapids
and later), the starter in 0.80 with AVX-512 BF16 (`avx512_bf16`, measured on AMD Zen 4). But
the models read the handwriting sets 0–0.25 points worse, drawn digits most consistently
(docs/benchmarks.md, "Training"), so float32 is the default and bfloat16 a choice:
`mixed_bfloat16` always, or `auto`, bfloat16 only where the CPU has either (elsewhere it is
emulated and slower). Either way the saved model is float32 (training.inference_copy): serving
and its TFLite copy never see bfloat16.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

AUTO = "auto"
FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
PRECISIONS = (AUTO, FLOAT32, MIXED_BFLOAT16)
CPUINFO = Path("/proc/cpuinfo")


# The CPU flags under which bfloat16 was measured faster than float32 (see the docstring above).
BFLOAT16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_computes_bfloat16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes bfloat16 in hardware (AMX tiles or AVX-512 BF16), where the
    speed-up was measured."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False  # not Linux, or /proc hidden: float32 is never the slower choice
    return any(line.startswith("flags") and not BFLOAT16_FLAGS.isdisjoint(line.split())
               for line in text.splitlines())


def training_policy(setting: str = FLOAT32, cpuinfo: Path = CPUINFO) -> str:
    """The Keras dtype policy a run trains under for TRAIN_PRECISION = `setting`."""
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}: choose one of {', '.join(PRECISIONS)}")
    if setting == AUTO:
        return MIXED_BFLOAT16 if cpu_computes_bfloat16(cpuinfo) else FLOAT32
    return setting


@contextlib.contextmanager
def layers_built_under(policy: str) -> Iterator[None]:
    """Layers made inside take `policy`; Keras' global policy is float32 again afterwards, so
    whatever is built later in the process (the inference copy, evaluation) stays float32."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(FLOAT32)
