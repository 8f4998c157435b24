"""Generated "feedback": real digits redrawn in a deliberately unusual style, as a user might send.

The style: very thick strokes and a strong slant, each digit framed as the inference service's
preprocessing does (ink cropped, scaled into a 20×20 box, centred in 28×28). The digits come from
mnist-5k's *test* split, so no model trained on mnist-5k has seen them in any style.

Also the measurement behind `feedback_weight`'s default (docs/training.md):
`python -m tests.feedback_support` (a few minutes on 2 cores).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image
from scipy import ndimage

SHEAR = 0.55          # a strong forward slant (x moves by 0.55 px per row)
THICKNESS = 4         # a 4×4 grey dilation: strokes several times MNIST's width


def framed(image: np.ndarray) -> np.ndarray:
    """Crop the ink, scale it into 20×20 (aspect kept), centre it in 28×28: as MNIST is made."""
    rows, cols = np.nonzero(image > 30)
    if len(rows) == 0:
        return image
    ink = Image.fromarray(image[rows.min():rows.max() + 1, cols.min():cols.max() + 1])
    scale = 20 / max(ink.size)
    ink = ink.resize((max(1, round(ink.size[0] * scale)), max(1, round(ink.size[1] * scale))),
                     Image.Resampling.LANCZOS)
    canvas = Image.new("L", (28, 28))
    canvas.paste(ink, ((28 - ink.size[0]) // 2, (28 - ink.size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def unusual(image: np.ndarray) -> np.ndarray:
    """One digit (uint8 28×28, white on black) made thick and slanted."""
    big = np.pad(image, 14)  # room for the slant and the thicker strokes
    centre = np.array(big.shape) / 2
    matrix = np.array([[1.0, 0.0], [SHEAR, 1.0]])   # output (row, col) → input: a shear in x
    offset = centre - matrix @ centre
    slanted = ndimage.affine_transform(big.astype(np.float32), matrix, offset=offset, order=1)
    thick = ndimage.grey_dilation(slanted, size=(THICKNESS, THICKNESS))
    return framed(np.clip(thick, 0, 255).astype(np.uint8))


def unusual_digits(count: int, seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits of mnist-5k's test split in the unusual style, and their labels."""
    from train.datasets import load_mnist_5k

    test = load_mnist_5k()
    pick = np.random.default_rng(seed).permutation(len(test.y_test))[:count]
    return (np.stack([unusual(test.x_test[i]) for i in pick]),
            test.y_test[pick].astype(np.int64))


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_reviewed_samples(model_dir, images: np.ndarray, labels: np.ndarray,
                           model: str = "starter") -> list[str]:
    """Store the digits as reviewed feedback samples with the store's own code (the API's path
    is tested elsewhere; this is the training tests' fixture)."""
    from train.feedback import FeedbackStore

    store = FeedbackStore(model_dir, max_samples=100_000)
    ids = []
    for pixels, label in zip(images, labels, strict=True):
        added = store.add(pixels, {"label": int(label), "predicted": int(label),
                                   "confidence": 0.5, "model": model,
                                   "preprocessing_version": 1}, None)
        store.review(added.sample["id"], None)
        ids.append(added.sample["id"])
    return ids


def measure(model_dir, weights=(1, 4, 16), epochs: int = 4, samples: int = 400,
            seed: int = 1) -> list[dict]:
    """Train mnist-5k and mnist-5k+feedback (each weight) and score all on the feedback test
    split: the table in docs/training.md."""
    from pathlib import Path

    from train.params import resolve
    from train.training import train_model

    model_dir = Path(model_dir)
    images, labels = unusual_digits(samples)
    write_reviewed_samples(model_dir, images, labels)
    rows = []
    for dataset, weight in [("mnist-5k", None), *(("mnist-5k+feedback", w) for w in weights)]:
        request = {"dataset": dataset, "epochs": epochs,
                   "name": f"m-{dataset.replace('+', '-')}-{weight}"}
        if weight is not None:
            request["feedback_weight"] = weight
        metadata = train_model(resolve(request, model_dir), model_dir, seed=seed)
        rows.append({"dataset": dataset, "feedback_weight": weight, "seed": seed,
                     "feedback_test": metadata["evaluations"]["feedback"]["accuracy"],
                     "feedback_test_size": metadata["evaluations"]["feedback"]["size"],
                     "mnist_5k_test": metadata["test_accuracy"],
                     "train_seconds": metadata["train_seconds"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m tests.feedback_support")
    parser.add_argument("weights", nargs="*", type=int, default=[1, 4, 16])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(folder, weights=tuple(args.weights), seed=args.seed)
