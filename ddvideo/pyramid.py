"""The octave pyramid a frame is dreamed through, its tiles, and the filters that shrink it and smooth a step."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .errors import SettingsError


def octave_shapes(height: int, width: int, *, octaves: int, scale: float, min_side: int,
                  base_size: int = 0) -> list[tuple[int, int]]:
    """Octave sizes smallest first; octaves smaller than the model can take are dropped.

    base_size 0: the Keras example's pyramid, the frame and `octaves - 1` sizes below it. Otherwise the octaves'
    long sides are rungs base_size * scale**k, and the frame's own size stands in for the rung nearest it. A frame
    above the base size takes every rung from k = 1 - octaves up: its look is set where a base-size picture's is,
    at the same fractions of the picture, and the rungs above only add detail (one look at every size). A frame up
    to the base size takes the `octaves - 1` rungs just below it: it dreams at its own scale, as the tutorial does,
    and frames of one shape still share their octaves.
    """
    if min(height, width) < min_side:
        raise SettingsError(
            f"frame {width}x{height} is too small for this model and objective: both sides must be at least "
            f"{min_side} px; use a larger image (or a larger --max-size, if one was given), or earlier layers"
        )
    if base_size:
        long = max(height, width)
        below = [base_size * scale**k for k in range(-64, 64) if base_size * scale**k < long / math.sqrt(scale)]
        look = [r for r in below if r >= base_size * scale ** (1 - octaves) * (1 - 1e-9)]
        rungs = look if len(look) >= octaves - 1 else below[-(octaves - 1):]
        shapes = [(round(height * r / long), round(width * r / long)) for r in rungs] + [(height, width)]
        looks = [shape for r, shape in zip(rungs, shapes) if r <= base_size * (1 + 1e-9)]
        if long > base_size * math.sqrt(scale) and looks and all(min(shape) < min_side for shape in looks):
            raise SettingsError(  # else only its detail octaves would dream: a picture left almost as it was
                f"frame {width}x{height} is too thin for the look at --base-size {base_size}: its look is set at "
                f"{looks[-1][1]}x{looks[-1][0]} and smaller, below the {min_side} px both sides need; dream it at "
                "its own scale with --base-size 0, or crop it less thin"
            )
    else:
        shapes = [(int(height / scale**i), int(width / scale**i)) for i in range(octaves)][::-1]
    return [s for s in shapes if min(s) >= min_side]


def tile_spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into the fewest nearly equal spans no longer than `tile` (no sliver tiles)."""
    count = max(1, math.ceil(length / tile)) if tile else 1
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def resize_filtered(img: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    """(H, W, C) -> (shape, C), bilinear; when shrinking, low-passed first (a Gaussian of sigma 0.5 px per halving
    of the size), so a large frame shrunk many times shows what a small one would, without aliasing. Separable
    convolutions rather than tf.image.resize's antialias, which XLA cannot compile."""
    height, width = int(img.shape[0]), int(img.shape[1])
    for axis, factor in ((0, height / shape[0]), (1, width / shape[1])):
        if factor > 1.0:
            sigma = 0.5 * math.sqrt(factor**2 - 1.0)  # what a box of `factor` px adds beyond the pixel itself
            radius = max(1, math.ceil(3 * sigma))
            taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
            img = convolve(img, taps / taps.sum(), axis)
    return tf.image.resize(img, shape)


def convolve(img: tf.Tensor, taps: np.ndarray, axis: int) -> tf.Tensor:
    """(H, W, C) convolved along `axis` with the odd-length 1-D `taps`, each channel on its own, edges reflected."""
    radius = len(taps) // 2
    kernel = tf.reshape(tf.constant(taps, tf.float32), [-1, 1, 1, 1] if axis == 0 else [1, -1, 1, 1])
    kernel = tf.tile(kernel, [1, 1, int(img.shape[2]), 1])  # depthwise
    pad = [[radius, radius], [0, 0], [0, 0]] if axis == 0 else [[0, 0], [radius, radius], [0, 0]]
    padded = tf.pad(img, pad, mode="REFLECT" if radius < img.shape[axis] else "SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded[None], kernel, strides=[1, 1, 1, 1], padding="VALID")[0]
