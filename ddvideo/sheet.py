"""Contact sheets: one picture dreamed once per layer, preset, strength or channel, tiled with labels into one image."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np
import tensorflow as tf

from .dream import Dreamer, DreamResult, DreamSettings
from .errors import InputError, SettingsError
from .media import IMAGE_EXTENSIONS, VideoReader, probe_video, read_image
from .models import LoadedModel
from .objective import PRESETS, Term, parse_objective
from .render import Progress
from .transforms import resize_to_fit

DEFAULT_CHANNELS = 8  # tiles of --channels LAYER without :N
MAX_DEFAULT_TILES = 16  # a model with more block layers than this must be given --layers
GAP = 4  # px of background around and between the tiles
PAD = 4  # px of background left of a label
BACKGROUND = (24, 24, 24)
INK = (235, 235, 235)


@dataclass(frozen=True)
class SheetSettings:
    """Which picture the sheet dreams (a still, or a clip's frame at `at` seconds), its size and the layout."""

    columns: int = 4  # tiles per row: bounds the sheet's width
    max_size: int | None = 320  # the picture is scaled down so its long side is at most this (each tile's size)
    at: float | None = None  # seconds into a clip; None = its first frame

    def __post_init__(self) -> None:
        if self.columns < 1:
            raise SettingsError(f"--columns must be at least 1, got {self.columns}")
        if self.max_size is not None and self.max_size < 16:
            raise SettingsError(f"--max-size must be at least 16 pixels, got {self.max_size}")
        if self.at is not None and not (self.at >= 0 and math.isfinite(self.at)):
            raise SettingsError(f"--at must be 0 or more seconds, got {self.at}")


@dataclass(frozen=True)
class SheetEntry:
    """One tile: its label, its objective (None: the dream settings') and its strength (None: the settings')."""

    label: str
    layers: str | None = None
    strength: float | None = None


# -- the entries ----------------------------------------------------------------------------------
def parse_entries(*, layers: str | None = None, presets: str | None = None, strengths: str | None = None,
                  channels: str | None = None) -> tuple[SheetEntry, ...] | None:
    """The tiles the options ask for, checked without a model: one per preset, per strength (of the objective
    `layers`), per channel, or else per term of `layers`. None: one per block layer of the model (block_entries)."""
    if (presets or channels) and layers:
        option = "--presets" if presets else "--channels"
        raise SettingsError(f"{option} sets each tile's objective: leave out --layers and --preset")
    if presets:
        names = _items(presets, "--presets")
        unknown = [n for n in names if n not in PRESETS]
        if unknown:
            raise SettingsError(f"unknown preset {unknown[0]!r} in --presets: use some of {', '.join(PRESETS)}")
        return tuple(SheetEntry(name, layers=name) for name in names)
    if strengths:
        return tuple(SheetEntry(f"strength {s:g}", strength=s) for s in _strengths(strengths))
    if channels:
        layer, count = _channels(channels)
        return tuple(SheetEntry(f"{layer}:{c}", layers=f"{layer}:{c}") for c in range(count))
    if layers:
        return tuple(SheetEntry(t.key, layers=f"{t.key}={t.weight!r}") for t in parse_objective(layers))
    return None


def check_channels(loaded: LoadedModel, channels: str | None) -> None:
    """Refuse --channels LAYER:N asking for more channels than LAYER has (an unknown layer is named later, with the
    valid ones)."""
    if not channels:
        return
    layer, count = _channels(channels)
    try:
        has = loaded.channels(layer)
    except ValueError:
        return
    if count > has:
        raise SettingsError(f"--channels {channels} asks for {count} channels, but {layer} has {has}: give N of {has} "
                            "or fewer")


def block_entries(loaded: LoadedModel) -> tuple[SheetEntry, ...]:
    """One tile per block layer of the model (for a saved model: its layers named like a known backbone's blocks)."""
    names = loaded.block_layers()
    if len(names) > MAX_DEFAULT_TILES:
        raise SettingsError(f"{loaded.name} has {len(names)} layers to compare: name some with --layers, "
                            f"e.g. --layers {','.join(names[len(names) // 2:][:4])}")
    return tuple(SheetEntry(name, layers=name) for name in names)


def _items(text: str, option: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise SettingsError(f"{option} is empty: give a comma-separated list")
    return items


def _strengths(text: str) -> list[float]:
    values = []
    for item in _items(text, "--strengths"):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise SettingsError(f"cannot read {item!r} in --strengths: give positive numbers, e.g. 0.5,1,2")
        values.append(value)
    return values


def _channels(text: str) -> tuple[str, int]:
    layer, _, count_text = text.strip().partition(":")
    try:
        count = int(count_text) if count_text else DEFAULT_CHANNELS
    except ValueError:
        count = 0
    if not layer or count < 1:
        raise SettingsError(f"cannot read --channels {text!r}: write LAYER or LAYER:N for its first N channels, e.g. mixed4:8")
    return layer, count


# -- the picture ----------------------------------------------------------------------------------
def sheet_frame(path: str | os.PathLike, *, sheet: SheetSettings = SheetSettings()) -> np.ndarray:
    """The picture to dream: a still image, or a clip's frame at `sheet.at`, scaled down to `sheet.max_size`."""
    if os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS:
        if sheet.at is not None:
            raise SettingsError(f"--at picks a time in a clip, but {path} is a still image: leave --at out")
        frame = read_image(path)
    else:
        frame = clip_frame(path, at=sheet.at or 0.0)
    return resize_to_fit(frame, max_size=sheet.max_size)


def clip_frame(path: str | os.PathLike, *, at: float) -> np.ndarray:
    """The (H, W, 3) uint8 frame of a clip shown at `at` seconds."""
    info = probe_video(path)
    length = info.n_frames / info.fps
    if at >= length:
        raise InputError(f"--at {at:g}s is past the end of {path}, which is {length:.2f}s long; pick a time below that")
    shown = math.floor(at * info.fps + 1e-6) / info.fps  # the frame on screen at `at` began then
    with VideoReader(path, start=shown) as reader:
        for frame in reader:
            return frame.copy()
    raise InputError(f"no frame could be decoded at {at:g}s of {path}; try another --at")


# -- dreaming -------------------------------------------------------------------------------------
class SheetDreamer:
    """Dreams one picture once per entry, all with one loaded and folded model.

    Entries on the same layers (the channels of one layer, the strengths of one objective) share one Dreamer and so
    one compiled dream: each tile only reweights the objective's terms. Entries on other layers get a Dreamer each,
    rather than one dream on every layer of the sheet in which each tile would pay for the deepest layer.
    Everything (layers, channels, guide) is checked here, before the first tile is dreamed.
    """

    def __init__(self, loaded: LoadedModel, entries: Sequence[SheetEntry], settings: DreamSettings = DreamSettings(),
                 *, guide: np.ndarray | None = None, jit_compile: bool | None = None):
        if not entries:
            raise SettingsError("a sheet needs at least one tile")
        self.entries = tuple(entries)
        terms = [parse_objective(e.layers or settings.layers or loaded.default_layers) for e in self.entries]
        groups: dict[frozenset[str], list[int]] = {}
        for index, entry_terms in enumerate(terms):
            groups.setdefault(frozenset(t.layer for t in entry_terms), []).append(index)
        self.dreamers: list[Dreamer] = []
        self._plan: list[tuple[Dreamer, tuple[float, ...], float | None]] = [None] * len(self.entries)  # type: ignore
        for members in groups.values():
            union: dict[str, Term] = {}
            for index in members:
                union.update({t.key: t for t in terms[index] if t.key not in union})
            spec = ",".join(f"{key}={term.weight!r}" for key, term in union.items())
            dreamer = Dreamer(loaded, replace(settings, layers=spec), jit_compile=jit_compile, guide=guide)
            self.dreamers.append(dreamer)
            for index in members:
                weights = {t.key: t.weight for t in terms[index]}
                self._plan[index] = (dreamer, tuple(weights.get(t.key, 0.0) for t in dreamer.terms),
                                     self.entries[index].strength)

    def dream(self, frame: np.ndarray, *, seed: int = 0, progress: Progress | None = None) -> list[DreamResult]:
        """Dream (H, W, 3) uint8 `frame` once per entry, in order, every tile with the same seed."""
        height, width = frame.shape[:2]
        for dreamer in self.dreamers:  # a picture too small for one of the tiles fails before any is dreamed
            dreamer.octaves(height, width)
        results = []
        with _first_traces_expected():
            for index, (dreamer, weights, strength) in enumerate(self._plan):
                dreamer.reweight(weights)
                results.append(dreamer.dream(frame, seed=seed, strength=strength))
                if progress is not None:
                    progress(index, len(self._plan), results[-1].loss)
        return results


class _RetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _first_traces_expected():
    """Each Dreamer of a sheet compiles its dream once; TensorFlow counts those first traces of one method together
    and warns of frequent retracing after five: a false alarm here, kept off the user's terminal."""
    quiet = _RetracingWarning()
    tf.get_logger().addFilter(quiet)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(quiet)


# -- the sheet ------------------------------------------------------------------------------------
def label_height(width: int) -> int:
    """Height of the label strip under a tile `width` pixels wide."""
    return max(14, round(0.07 * width))


def tile_positions(count: int, *, tile: tuple[int, int], columns: int) -> list[tuple[int, int]]:
    """(y, x) of each tile's top-left corner on the sheet, row by row, for (height, width) tiles."""
    height, width = tile
    cell_h, cell_w = height + label_height(width) + GAP, width + GAP
    return [(GAP + (i // columns) * cell_h, GAP + (i % columns) * cell_w) for i in range(count)]


def compose_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str], *, columns: int) -> np.ndarray:
    """(H, W, 3) uint8 sheet of equal (h, w, 3) tiles, `columns` to a row, each labelled in a strip beneath it."""
    if len(tiles) != len(labels) or not tiles or len({t.shape for t in tiles}) != 1:
        raise ValueError("compose_sheet needs one label per tile and tiles of one shape")
    height, width = tiles[0].shape[:2]
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    strip = label_height(width)
    sheet = np.empty((GAP + rows * (height + strip + GAP), GAP + columns * (width + GAP), 3), np.uint8)
    sheet[:] = BACKGROUND
    for (y, x), tile, label in zip(tile_positions(len(tiles), tile=(height, width), columns=columns), tiles, labels):
        sheet[y:y + height, x:x + width] = tile
        _draw_label(sheet, label, x=x, y=y + height, width=width, height=strip)
    return sheet


def _draw_label(sheet: np.ndarray, text: str, *, x: int, y: int, width: int, height: int) -> None:
    """Write `text` into the strip at (x, y), as large as fits its height and width (OpenCV's Hershey font)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(0.6 * height / text_h, (width - 2 * PAD) / text_w)
    (_, scaled_h), _ = cv2.getTextSize(text, font, scale, 1)
    cv2.putText(sheet, text, (x + PAD, y + (height + scaled_h) // 2), font, scale, INK, 1, cv2.LINE_AA)
