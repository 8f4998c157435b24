"""Helpers for every test tree (tests/, tests/containers, tests/cluster), imported by name.

Kept free of `from conftest import ...`: each test tree has a conftest of its own, and which one
the name `conftest` means depends on the tree being run.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

from PIL import Image


def wait_for(check, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def base64_png_test_digits(scratch: Path, count: int) -> list[tuple[int, str]]:
    """The first `count` digits of mnist-5k's test split, as (label, base64 PNG)."""
    from train.datasets import load_dataset

    dataset = load_dataset("mnist-5k", scratch)
    digits = []
    for image, label in zip(dataset.x_test[:count], dataset.y_test[:count], strict=True):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        digits.append((int(label), base64.b64encode(buffer.getvalue()).decode()))
    return digits
