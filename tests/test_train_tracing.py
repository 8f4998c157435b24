"""A training run traces its train step once, and its test step once.

TensorFlow traces a `tf.function` a second time when its first trace created variables, and
Keras builds the optimizer's slots and string metrics lazily, inside the first traced step.
That second trace cost every run ~0.7 s on 2 cores (docs/benchmarks.md, "Training"), so
train/training.py builds both before `fit`. A Keras upgrade that moves this again shows here.
"""

from __future__ import annotations

from collections import Counter

from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

from train.params import resolve
from train.training import train_model


def test_a_run_traces_its_train_and_test_steps_once(tmp_path, monkeypatch):
    traces = Counter()
    train_step, test_step = TensorFlowTrainer.train_step, TensorFlowTrainer.test_step

    # Python runs a step's body only while TensorFlow traces it: each call here is one trace.
    def counted_train_step(self, data):
        traces["train"] += 1
        return train_step(self, data)

    def counted_test_step(self, data):
        traces["test"] += 1
        return test_step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted_train_step)
    monkeypatch.setattr(TensorFlowTrainer, "test_step", counted_test_step)
    # Two epochs with the augmentation: the last one's strokes-only batches come from a second
    # pipeline, which must not make a new trace either.
    params = resolve({"dataset": "mnist-5k", "architecture": "cnn-small", "epochs": 2,
                      "limit": 512, "name": "traced-once"}, tmp_path)
    metadata = train_model(params, tmp_path, seed=1)

    assert traces == {"train": 1, "test": 1}
    assert [sorted(epoch) for epoch in metadata["history"]] == [
        ["accuracy", "epoch", "loss", "seconds", "val_accuracy", "val_loss"]] * 2
