"""Training in bfloat16 when asked (train/precision.py), saving and serving in float32.

The speed and the accuracy come from `make bench-train PRECISION=1` (docs/benchmarks.md,
"Training"); here: float32 by default, which precision `auto` picks from the CPU's flags, that a
run trained in bfloat16 saves a float32 model whose metadata, TFLite copy and answers are those of
the saved file, and that the setting reaches a Kubernetes Job. Bad input tried:
TRAIN_PRECISION=half for the service's settings, the CLI (exit 2, nothing trained) and the
training call itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from train.config import KubernetesSettings, Settings
from train.datasets import load_dataset
from train.executors.kubernetes import KubernetesExecutor
from train.params import resolve
from train.precision import training_policy
from train.training import as_model_input, train_model

AMX_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
# AMD Zen 4 as /proc/cpuinfo shows it: AVX-512 BF16, no AMX (the starter trained in 0.80 there).
ZEN4_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni\n"
OLDER_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n"


@pytest.mark.parametrize(("cpu", "setting", "policy"), [
    (AMX_CPU, "auto", "mixed_bfloat16"),
    (ZEN4_CPU, "auto", "mixed_bfloat16"),
    (OLDER_CPU, "auto", "float32"),  # emulated bfloat16 would be slower there
    (AMX_CPU, "float32", "float32"),
    (OLDER_CPU, "mixed_bfloat16", "mixed_bfloat16"),
])
def test_auto_trains_in_bfloat16_only_on_a_cpu_that_computes_it(tmp_path, cpu, setting, policy):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(cpu)
    assert training_policy(setting, cpuinfo) == policy


def test_without_a_readable_cpuinfo_auto_is_float32(tmp_path):
    assert training_policy("auto", tmp_path / "absent") == "float32"


def test_a_bad_precision_is_refused_by_the_settings_and_the_training_call(tmp_path):
    assert Settings.from_env({"MODEL_DIR": str(tmp_path)}).train_precision == "float32"
    with pytest.raises(ValueError, match="TRAIN_PRECISION='half'"):
        Settings.from_env({"MODEL_DIR": str(tmp_path), "TRAIN_PRECISION": "half"})
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        training_policy("half")


def test_the_cli_refuses_a_bad_precision_before_training(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train", "--starter", "--model-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TRAIN_PRECISION": "half"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TRAIN_PRECISION='half'" in result.stderr
    assert not list(tmp_path.glob("*.keras"))


def test_a_kubernetes_job_trains_under_the_services_setting(tmp_path):
    settings = KubernetesSettings.from_environment(
        tmp_path, {"TRAIN_IMAGE": "digits-train:dev", "TRAIN_PRECISION": "auto"})
    body = KubernetesExecutor(batch_api=None, settings=settings).manifest("run-1")
    (container,) = body["spec"]["template"]["spec"]["containers"]
    assert {"name": "TRAIN_PRECISION", "value": "auto"} in container["env"]


def test_a_model_trained_in_bfloat16_is_saved_scored_and_served_in_float32(tmp_path):
    import keras

    params = resolve({"dataset": "mnist-5k", "architecture": "cnn", "epochs": 1, "limit": 1000,
                      "name": "bf16-run"}, tmp_path)
    metadata = train_model(params, tmp_path, seed=1, precision="mixed_bfloat16")
    assert metadata["training_precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing leaks after

    saved = keras.saving.load_model(tmp_path / "bf16-run.keras", safe_mode=True, compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    # The metadata's accuracy is the saved file's, not the bfloat16 network's.
    test = load_dataset("mnist-5k", tmp_path)
    predicted = saved.predict(as_model_input(test.x_test), verbose=0).argmax(axis=1)
    assert metadata["test_accuracy"] == pytest.approx(float(np.mean(predicted == test.y_test)),
                                                      abs=1e-6)
    # Its TFLite copy passed the 1e-5 check against that float32 file.
    assert metadata["tflite"]["max_difference"] <= 1e-5
    assert (tmp_path / metadata["tflite"]["file"]).is_file()
