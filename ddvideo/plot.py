"""Schedule plots: each scheduled setting of a render over time, with the music's loudness and beats under them."""

from __future__ import annotations

import math
from typing import Mapping

import cv2
import numpy as np

WIDTH = 1000  # px of the whole plot
LEFT = 170  # px for the names and ranges left of the curves
RIGHT = 16
PANEL = 84  # px height of one curve's panel
GAP = 10
AXIS = 34  # px under the panels for the time axis
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, GRID, PAPER, PANEL_BG = (30, 30, 30), (215, 215, 215), (255, 255, 255), (246, 246, 246)
LINE = (40, 90, 200)  # RGB
MUSIC, ONSET, BEAT = (150, 170, 200), (90, 90, 90), (220, 50, 50)


def plot_schedules(curves: Mapping[str, np.ndarray], *, fps: float, music: Mapping[str, np.ndarray] | None = None,
                   beat_frames: np.ndarray | None = None) -> np.ndarray:
    """(H, WIDTH, 3) uint8 RGB: one panel per curve ((frames,) values, named by its option), and with `music`
    (per-frame rms and onset) a last panel of the loudness and onsets; beats are marked across every panel."""
    frames = len(next(iter(curves.values()))) if curves else len(next(iter((music or {"": [0]}).values())))
    panels = len(curves) + (music is not None)
    height = GAP + panels * (PANEL + GAP) + AXIS
    image = np.full((height, WIDTH, 3), PAPER, np.uint8)
    x_of = _x_scale(frames)
    top = GAP
    for name, values in curves.items():
        _panel(image, top, name, np.asarray(values, np.float64), x_of)
        top += PANEL + GAP
    if music is not None:
        _music_panel(image, top, music, x_of)
        top += PANEL + GAP
    if beat_frames is not None:
        for beat in beat_frames:
            x = x_of(beat)
            for y in range(GAP, top - GAP, 6):  # dotted, so the curves stay readable
                cv2.line(image, (x, y), (x, min(y + 2, top - GAP)), BEAT, 1)
    _time_axis(image, top, frames, fps, x_of)
    return image


def _x_scale(frames: int):
    span = max(frames - 1, 1)
    return lambda frame: int(round(LEFT + (WIDTH - LEFT - RIGHT) * float(frame) / span))


def _panel(image: np.ndarray, top: int, name: str, values: np.ndarray, x_of) -> None:
    cv2.rectangle(image, (LEFT, top), (WIDTH - RIGHT, top + PANEL), PANEL_BG, -1)
    low, high = float(np.min(values)), float(np.max(values))
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 0.05)
    low_axis, high_axis = low - pad, high + pad
    y_of = lambda v: int(round(top + PANEL - (v - low_axis) / (high_axis - low_axis) * PANEL))  # noqa: E731
    for v in (low, high):
        cv2.line(image, (LEFT, y_of(v)), (WIDTH - RIGHT, y_of(v)), GRID, 1)
    points = np.array([[x_of(i), y_of(v)] for i, v in enumerate(values)], np.int32)
    cv2.polylines(image, [points], False, LINE, 2, cv2.LINE_AA)
    _text(image, name, (8, top + 22), 0.55, thickness=2)
    _text(image, f"max {_number(high)}", (8, top + 46), 0.42)
    _text(image, f"min {_number(low)}", (8, top + 66), 0.42)


def _music_panel(image: np.ndarray, top: int, music: Mapping[str, np.ndarray], x_of) -> None:
    cv2.rectangle(image, (LEFT, top), (WIDTH - RIGHT, top + PANEL), PANEL_BG, -1)
    rms = np.asarray(music["rms"], np.float64)
    y_of = lambda v: int(round(top + PANEL - 2 - v * (PANEL - 4)))  # noqa: E731 (features are 0-1)
    area = [[x_of(i), y_of(v)] for i, v in enumerate(rms)]
    polygon = np.array([[x_of(0), top + PANEL], *area, [x_of(len(rms) - 1), top + PANEL]], np.int32)
    cv2.fillPoly(image, [polygon], MUSIC, cv2.LINE_AA)
    onset = np.array([[x_of(i), y_of(v)] for i, v in enumerate(music["onset"])], np.int32)
    cv2.polylines(image, [onset], False, ONSET, 1, cv2.LINE_AA)
    _text(image, "music", (8, top + 22), 0.55, thickness=2)
    _text(image, "loudness (area)", (8, top + 46), 0.42)
    _text(image, "onsets (line)", (8, top + 64), 0.42)
    _text(image, "beats (red)", (8, top + 82), 0.42, colour=BEAT)


def _time_axis(image: np.ndarray, top: int, frames: int, fps: float, x_of) -> None:
    seconds = max(frames - 1, 1) / fps
    step = _nice_step(seconds / 8)
    for k in range(int(seconds / step) + 1):
        x = x_of(k * step * fps)
        cv2.line(image, (x, top - GAP + 2), (x, top), INK, 1)
        label = f"{k * step:g}s"
        size = cv2.getTextSize(label, FONT, 0.42, 1)[0]
        _text(image, label, (min(max(x - size[0] // 2, LEFT), WIDTH - RIGHT - size[0]), top + 16), 0.42)
    _text(image, f"{frames} frames at {fps:g} fps", (8, top + 16), 0.42)


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _text(image: np.ndarray, text: str, at: tuple[int, int], scale: float, *, thickness: int = 1,
          colour: tuple[int, int, int] = INK) -> None:
    cv2.putText(image, text, at, FONT, scale, colour, thickness, cv2.LINE_AA)
