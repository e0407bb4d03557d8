"""The dream objective as data: weighted layers and channels, parsed from text and checked against a model, and the
guided term that pulls features toward a guide picture's."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .errors import InputError, SettingsError
from .models import LoadedModel

PRESETS: dict[str, str] = {
    "keras": "mixed4=1.0,mixed5=1.5,mixed6=2.0,mixed7=2.5",
    "tutorial": "mixed3=1.0,mixed5=1.0",
    "book": "mixed2=0.2,mixed3=3.0,mixed4=2.0,mixed5=1.5",
}


@dataclass(frozen=True)
class Term:
    """One part of the objective: a layer (or one of its channels) and its weight."""

    layer: str
    weight: float = 1.0
    channel: int | None = None

    @property
    def key(self) -> str:
        return self.layer if self.channel is None else f"{self.layer}:{self.channel}"


def parse_objective(spec: str) -> tuple[Term, ...]:
    """Parse 'mixed4=1.0,mixed5:97=2' (or a preset name) into terms; weights default to 1."""
    spec = PRESETS.get(spec.strip(), spec)
    terms = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight_text = part.partition("=")
        layer, _, channel_text = name.strip().partition(":")
        try:
            weight = float(weight_text) if weight_text else 1.0
            channel = int(channel_text) if channel_text else None
        except ValueError:
            raise SettingsError(
                f"cannot read layer term {part!r}: write LAYER=WEIGHT or LAYER:CHANNEL=WEIGHT, e.g. mixed4=1.0,mixed5:97=2"
            ) from None
        if channel is not None and channel < 0:
            raise SettingsError(f"channel {channel} in {part!r} is negative: channels count from 0")
        terms.append(Term(layer.strip(), weight, channel))
    if not terms:
        raise SettingsError(f"empty layer objective {spec!r}: give e.g. mixed4=1.0,mixed5=1.5 or a preset ({', '.join(PRESETS)})")
    if len({t.key for t in terms}) != len(terms):
        raise SettingsError(f"layer objective {spec!r} names a layer twice: give each layer or channel once")
    return tuple(terms)


def build_extractor(loaded: LoadedModel, terms: tuple[Term, ...]) -> keras.Model:
    """One multi-output model giving the activation of every layer the objective names, keyed by layer."""
    valid = set(loaded.dreamable_layers())
    for term in terms:
        if term.layer not in valid:
            raise SettingsError(
                f"unknown layer {term.layer!r} for {loaded.name}; valid layers include "
                f"{', '.join(loaded.block_layers())} (run `ddvideo layers --model {loaded.name}` for all)"
            )
        if term.channel is not None:
            channels = loaded.channels(term.layer)
            if term.channel >= channels:
                raise SettingsError(
                    f"channel {term.channel} is out of range for layer {term.layer!r}, which has {channels} (0..{channels - 1})"
                )
    layers = sorted({t.layer for t in terms})
    return keras.Model(loaded.model.inputs, {name: loaded.model.get_layer(name).output for name in layers})


def min_input_side(extractor: keras.Model, *, border: int = 2, limit: int = 2048) -> int:
    """Smallest square input whose every objective activation keeps at least one pixel after the border crop."""

    def fits(side: int) -> bool:
        try:
            shapes = extractor.compute_output_shape((1, side, side, 3))
        except Exception:  # a convolution with valid padding rejects too small inputs
            return False
        return all(s[1] is not None and s[1] > 2 * border and s[2] > 2 * border for s in shapes.values())

    low, high = 1, limit
    if not fits(high):
        raise SettingsError(f"the objective's layers need inputs over {limit} px: choose earlier layers")
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


def feature_stride(extractor: keras.Model, *, side: int = 1024) -> int:
    """Pixels of input per activation pixel at the objective's coarsest layer, as a power of two (16 at mixed3..7)."""
    shapes = extractor.compute_output_shape((1, side, side, 3))
    smallest = min(s[1] for s in shapes.values())
    return 2 ** max(0, round(math.log2(side / smallest)))


# -- guided dreams (Google's DeepDream notebook) ------------------------------------------------------
def check_guide(guide_shape: tuple[int, ...], *, terms: tuple[Term, ...], min_side: int) -> None:
    """Raise unless the objective can be guided (whole layers) and a (H, W, ...) guide gives every layer features."""
    channels = [t.key for t in terms if t.channel is not None]
    if channels:
        raise SettingsError(f"--guide matches whole layers, not channels: drop the channel from {', '.join(channels)}")
    height, width = guide_shape[:2]
    if min(height, width) < min_side:
        raise InputError(
            f"--guide: the guide picture is {width}x{height} as the dream uses it (a large one is scaled down), too "
            f"small for this objective: both sides must be at least {min_side} px; give a larger or less elongated "
            "guide, or earlier layers"
        )


def crop_border(act: tf.Tensor, border: int) -> tf.Tensor:
    """(N, h, w, C) activations without `border` pixels on each side."""
    return act[:, border:-border, border:-border, :] if border else act


def guide_matrices(features: dict[str, tf.Tensor], *, border: int) -> dict[str, tf.Tensor]:
    """Layer -> (positions, channels) float32 feature vectors of the guide, from its (1, h, w, C) activations,
    cropped by `border` like the frame's."""
    return {layer: tf.reshape(crop_border(tf.cast(act, tf.float32), border), [-1, act.shape[-1]])
            for layer, act in features.items()}


def guided_term(act: tf.Tensor, guide: tf.Tensor) -> tf.Tensor:
    """The guided objective at one layer: each feature vector of the frame is matched to the guide vector with the
    largest dot product, and those best dot products are averaged.

    act: (1, h, w, C) frame features, border cropped; guide: (n, C). The mean over positions and the division by
    C put the term on the plain objective's scale (were the frame its own guide, each position's best match would
    be at least its mean squared activation, the plain term), so --max-loss and layer weights keep their meaning.
    The gradient of the max is the best-matching guide vector, as in the notebook.
    """
    channels = act.shape[-1]
    x = tf.reshape(tf.cast(act, tf.float32), [-1, channels])  # (frame positions, C)
    dots = tf.matmul(x, guide, transpose_b=True)  # (frame positions, guide positions)
    return tf.reduce_mean(tf.reduce_max(dots, axis=1)) / channels


def objective_map(dreamer, frame: np.ndarray) -> np.ndarray:
    """(h, w) float64: the objective's energy at each position in the network's own eyes, for a (H, W, 3) uint8
    frame and a dream.Dreamer: each term's mean squared activation over its channels, brought to the coarsest
    term's grid by area averaging, averaged over the terms. Compare a dream's map with its source's
    (metrics.objective_gain)."""
    import cv2  # only here: the objective itself needs no OpenCV

    x = tf.cast(frame, tf.float32)[None] / 127.5 - 1.0  # [-1, 1], as the dream sees it
    features = dreamer.extractor(dreamer.loaded.to_input(x), training=False)
    maps = []
    for term in dreamer.terms:
        act = tf.cast(features[term.layer], tf.float32)[0]
        act = act if term.channel is None else act[..., term.channel:term.channel + 1]
        maps.append(tf.reduce_mean(tf.square(act), axis=-1).numpy().astype(np.float64))
    h, w = min(m.shape for m in maps)
    return np.mean([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in maps], axis=0)
