"""The dream objective as data: weighted layers and channels, parsed from text and checked against a model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from .errors import SettingsError
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
            channels = loaded.model.get_layer(term.layer).output.shape[-1]
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
