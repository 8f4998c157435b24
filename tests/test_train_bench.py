"""`make bench-train` (bench/bench_train.py), its levers, and the starter's network.

The figures come from the benchmark itself (docs/benchmarks.md, "Training"); here: the `cnn bn26`
lever differs from the recipe's network only in where the first stage's batch norm and ReLU sit,
`cnn-small` (the starter's) only in its middle convolution's width; and a three-epoch run of the
starter's recipe prints its table without the full MNIST's goal. Bad input tried: the full MNIST
asked for where there is none (a clear exit, no training).
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

from train.architectures import ARCHITECTURES, build_cnn
from train.params import STARTER


def layer_kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_the_recipe_pools_before_its_first_batch_norm_and_the_lever_after():
    recipe, previous = build_cnn(), build_cnn(pool_before_batch_norm=False)
    assert layer_kinds(recipe)[:4] == ["Conv2D", "MaxPooling2D", "BatchNormalization", "ReLU"]
    assert layer_kinds(previous)[:4] == ["Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D"]
    assert layer_kinds(recipe)[4:] == layer_kinds(previous)[4:]
    assert recipe.count_params() == previous.count_params()
    assert recipe.output_shape == previous.output_shape == (None, 10)
    # The batch norm sees the pooled 13×13 map instead of the 26×26 one.
    assert recipe.layers[1].output.shape[1:3] == (13, 13)
    assert previous.layers[1].output.shape[1:3] == (26, 26)


def test_the_starter_is_cnn_small_and_the_width_lever_keeps_each_recipe():
    from argparse import Namespace

    from bench.bench_train import variants

    small, cnn = ARCHITECTURES["cnn-small"].build(), ARCHITECTURES["cnn"].build()
    assert STARTER["architecture"] == "cnn-small"
    assert layer_kinds(small) == layer_kinds(cnn)
    # Only the middle convolution is narrower: 32 filters at 11×11 instead of 64.
    convolutions = [[layer.output.shape[1:] for layer in model.layers
                     if type(layer).__name__ == "Conv2D"] for model in (small, cnn)]
    assert convolutions == [[(26, 26, 32), (11, 11, 32), (9, 9, 64)],
                            [(26, 26, 32), (11, 11, 64), (9, 9, 64)]]
    assert small.count_params() < cnn.count_params()

    def chosen(starter: bool) -> dict:
        args = Namespace(cnn_epochs=None, simple_epochs=None, starter=starter, levers=True,
                         precision=False, only="cnn")
        return {variant.label: variant for variant in variants(args)}

    starter = chosen(True)
    assert starter["cnn-small"].architecture == "cnn-small"
    recipe = {key: STARTER[key] for key in ("epochs", "batch_size", "learning_rate")}
    assert starter["cnn-small"].request == starter["cnn"].request == recipe
    full = chosen(False)
    assert full["cnn"].request == {}  # cnn's own recipe
    assert full["cnn-small"].request == {key: ARCHITECTURES["cnn"].defaults[key]
                                         for key in ("epochs", "batch_size", "learning_rate")}


def run(*args):
    command = [sys.executable, str(REPO / "bench" / "bench_train.py"), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)


def test_a_starter_run_prints_its_row_without_the_full_mnist_goal():
    result = run("--starter", "--only", "cnn", "--cnn-epochs", "3", "--seeds", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    columns = r"\s+1\s+3\s+[\d.]+\s+[\d.]+\s+(0\.\d{4})\s+\S+\s+(\S+)$"
    row = re.search(re.escape(STARTER["architecture"]) + columns, result.stdout, re.M)
    assert row, result.stdout[-2000:]
    # Three epochs of the starter's 18 steps of 256 digits read ~97% (seed 1): far above chance.
    assert 0.5 < float(row.group(1)) <= 1.0
    assert row.group(2) == "—"
    assert "the starter's recipe: no goal of its own" in result.stdout
    assert "within 180 s" not in result.stdout


def test_the_full_mnist_asked_for_where_there_is_none_is_refused(tmp_path):
    result = run("--mnist-npz", str(tmp_path / "absent.npz"), "--only", "cnn", "--seeds", "1")
    assert result.returncode == 2
    assert "no MNIST at" in result.stderr
    assert "epoch" not in result.stdout
