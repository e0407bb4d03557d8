"""The baseline ddvideo is timed against: the Keras DeepDream example's loop, run frame after frame.

A transcription of the example's algorithm (keras.io/examples/generative/deep_dream): one `tf.function` per
gradient step, a Python loop over steps that reads the loss back to test the early stop, `tf.image.resize`
between octaves. Built once, so each octave shape is traced once and later frames reuse the traces, as a user
dreaming a video with the example would.

Run as a script it is the example as a user runs it, start to finish (the whole-process baseline of bench.py):

    python benchmarks/keras_reference.py IN.png OUT.png --weights PATH [--iterations 30]
"""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np
import tensorflow as tf


class KerasExampleDream:
    """dream(uint8 (H, W, 3)) -> uint8 (H, W, 3), the Keras example's way. Inputs in [-1, 1] (InceptionV3)."""

    def __init__(self, model: keras.Model, layer_weights: dict[str, float], *, octaves: int = 3, scale: float = 1.4,
                 iterations: int = 30, step: float = 20.0, max_loss: float = 15.0):
        self.extractor = keras.Model(model.inputs, {n: model.get_layer(n).output for n in layer_weights})
        self.layer_weights = layer_weights
        self.octaves, self.scale, self.iterations, self.step, self.max_loss = octaves, scale, iterations, step, max_loss
        self.gradient_ascent_step = tf.function(self._gradient_ascent_step)

    def compute_loss(self, x):
        features = self.extractor(x)
        loss = tf.zeros(shape=())
        for name, coeff in self.layer_weights.items():
            loss += coeff * tf.reduce_mean(tf.square(features[name][:, 2:-2, 2:-2, :]))
        return loss

    def _gradient_ascent_step(self, x, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self.compute_loss(x)
        grads = tf.math.l2_normalize(tape.gradient(loss, x))
        return loss, x + learning_rate * grads

    def gradient_ascent_loop(self, x):
        for _ in range(self.iterations):
            loss, x = self.gradient_ascent_step(x, self.step)
            if self.max_loss is not None and loss > self.max_loss:
                break
        return x

    def dream(self, image: np.ndarray) -> np.ndarray:
        original = keras.applications.inception_v3.preprocess_input(image[None].astype("float32"))
        original_shape = original.shape[1:3]
        shapes = [original_shape] + [tuple(int(d / self.scale**i) for d in original_shape) for i in range(1, self.octaves)]
        shapes = shapes[::-1]
        shrunk = tf.image.resize(original, shapes[0])
        x = tf.identity(original)
        for shape in shapes:
            x = tf.image.resize(x, shape)
            x = self.gradient_ascent_loop(x)
            x += tf.image.resize(original, shape) - tf.image.resize(shrunk, shape)
            shrunk = tf.image.resize(original, shape)
        return np.rint(np.clip((x[0].numpy() + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """Load InceptionV3, dream one picture with the keras preset, save it: the example's script end to end."""
    parser = argparse.ArgumentParser(description="The Keras DeepDream example as one script.")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none (random) or a weights file")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--octaves", type=int, default=3)
    args = parser.parse_args(argv)
    file = args.weights not in ("imagenet", "none")
    model = keras.applications.InceptionV3(weights=None if file or args.weights == "none" else "imagenet",
                                           include_top=False)
    if file:
        model.load_weights(args.weights)
    layer_weights = {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5}
    image = keras.utils.img_to_array(keras.utils.load_img(args.input)).astype(np.uint8)
    dream = KerasExampleDream(model, layer_weights, octaves=args.octaves, iterations=args.iterations)
    keras.utils.save_img(args.output, dream.dream(image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
