"""Data augmentation for the tf.data input pipeline (never part of a saved model).

Digits drawn in a browser are off-centre, tilted, bigger or smaller and drawn with thicker or
thinner strokes than MNIST's; random shifts, small rotations, zoom and stroke-thickness changes
teach a model to recognise them too.
"""

from __future__ import annotations

ROTATION_DEGREES = 10.0
SHIFT_FRACTION = 0.1
ZOOM_FRACTION = 0.1
# Probabilities of thickening (dilation) and thinning (erosion) the strokes of an image.
DILATE_PROBABILITY = 0.2
ERODE_PROBABILITY = 0.1


def make_augmenter(seed: int):
    """A function mapping a float32 batch (N, 28, 28, 1) in [0, 1] to an augmented batch."""
    import tensorflow as tf
    from keras import layers

    geometry = [
        layers.RandomRotation(ROTATION_DEGREES / 360.0, fill_mode="constant", seed=seed),
        layers.RandomZoom(ZOOM_FRACTION, fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="constant",
                                 seed=seed + 2),
    ]

    def augment(images, labels):
        for layer in geometry:
            images = layer(images, training=True)
        images = change_stroke_thickness(tf, images)
        return tf.clip_by_value(images, 0.0, 1.0), labels

    return augment


def change_stroke_thickness(tf, images):
    """Per image: dilate (max over 2×2), erode (min over 2×2) or leave it as it is."""
    dilated = tf.nn.max_pool2d(images, ksize=2, strides=1, padding="SAME")
    eroded = -tf.nn.max_pool2d(-images, ksize=2, strides=1, padding="SAME")
    draw = tf.random.uniform((tf.shape(images)[0], 1, 1, 1))
    images = tf.where(draw < DILATE_PROBABILITY, dilated, images)
    return tf.where((draw >= DILATE_PROBABILITY)
                    & (draw < DILATE_PROBABILITY + ERODE_PROBABILITY), eroded, images)
