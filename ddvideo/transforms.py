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


def fill_size(frame: np.ndarray, *, size: tuple[int, int]) -> np.ndarray:
    """Scale `frame` to cover `size` (width, height) and crop the centre, as a fixed-size canvas frames a picture."""
    height, width = frame.shape[:2]
    if (width, height) == tuple(size):
        return frame
    scale = max(size[0] / width, size[1] / height)
    scaled = (max(size[0], round(width * scale)), max(size[1], round(height * scale)))
    frame = cv2.resize(frame, scaled, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = (scaled[0] - size[0]) // 2, (scaled[1] - size[1]) // 2
    return np.ascontiguousarray(frame[y0:y0 + size[1], x0:x0 + size[0]])


def zoom_matrix(width: int, height: int, *, zoom: float = 1.0, rotate: float = 0.0,
                pan: tuple[float, float] = (0.0, 0.0), steps: int = 1) -> np.ndarray:
    """(2, 3) affine map of `steps` camera steps on a width x height frame (negative steps run backwards).

    One step sends a point x of the old frame to c + zoom * R(rotate) (x - c) - pan, c the frame centre in pixel
    coordinates ((w - 1) / 2, (h - 1) / 2): zoom > 1 magnifies (the camera flies in), rotate turns the picture
    counter-clockwise by that many degrees, and pan (dx, dy) moves the view right/down, so the picture moves the
    other way.
    """
    centre = ((width - 1) / 2, (height - 1) / 2)
    step = np.vstack([cv2.getRotationMatrix2D(centre, rotate, zoom), [0.0, 0.0, 1.0]])
    step[:2, 2] -= pan
    return np.linalg.matrix_power(step, steps)[:2]  # a negative power inverts


def zoom_frame(frame: np.ndarray, *, zoom: float, rotate: float = 0.0, pan: tuple[float, float] = (0.0, 0.0),
               steps: int = 1, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """The (H, W[, C]) frame after `steps` camera steps (see zoom_matrix): one bicubic warp, borders reflected."""
    height, width = frame.shape[:2]
    matrix = zoom_matrix(width, height, zoom=zoom, rotate=rotate, pan=pan, steps=steps)
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=border)


def grid_canvas(frame: np.ndarray, *, offset: np.ndarray, grid: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(H + grid, W + grid, C) reflect-padded canvas with frame pixel p at p + s, and s = (sy, sx).

    s = -round(offset) mod grid for the picture's accumulated motion `offset` (dx, dy): content that has moved
    by `offset` lands on the same phase of a `grid`-pixel lattice as it had before it moved. Crop the result
    back with canvas[sy:sy + H, sx:sx + W].
    """
    sx, sy = (int(v) for v in np.mod(-np.rint(np.asarray(offset, np.float64)), grid))
    canvas = cv2.copyMakeBorder(frame, sy, grid - sy, sx, grid - sx, cv2.BORDER_REFLECT_101)
    return canvas.reshape(frame.shape[0] + grid, frame.shape[1] + grid, *frame.shape[2:]), (sy, sx)
