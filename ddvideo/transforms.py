"""Small geometric transforms of (H, W, 3) uint8 frames: plain functions, testable on tiny arrays."""

from __future__ import annotations

import cv2
import numpy as np


def fit_size(width: int, height: int, *, max_size: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the long side is at most `max_size` (never up); None keeps it."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_to_fit(frame: np.ndarray, *, max_size: int | None) -> np.ndarray:
    """Downscale `frame` (area filter) so its long side is at most `max_size`."""
    height, width = frame.shape[:2]
    size = fit_size(width, height, max_size=max_size)
    if size == (width, height):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
