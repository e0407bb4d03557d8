"""Colour statistics in CIELAB, and colour coherence: hold a frame's palette to a reference frame's.

A long zoom dreams each frame on the last one, so any tint the dream adds compounds: after a few hundred frames
the palette has drifted into rainbow mush. Matching each frame's per-channel mean and spread in CIELAB to the first
dreamed frame's (the statistics transfer of Reinhard et al. 2001, which Deforum's "color coherence" also uses) holds
the palette while leaving where each colour sits, so the dream's shapes go on changing and its colours stay.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class LabStats(NamedTuple):
    """Per-channel mean and standard deviation of a frame in CIELAB: L* 0-100, a* and b* about 0."""

    mean: np.ndarray  # (3,) L*, a*, b*
    std: np.ndarray  # (3,)

    def distance(self, other: "LabStats") -> float:
        """How far apart the two mean colours are, in CIELAB units (delta E 1976)."""
        return float(np.linalg.norm(self.mean - other.mean))

    def spread(self, other: "LabStats") -> np.ndarray:
        """(2,) this frame's a* and b* spread over `other`'s."""
        return self.std[1:] / np.maximum(other.std[1:], 1e-6)


def to_lab(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 CIELAB of an (H, W, 3) uint8 RGB frame."""
    return cv2.cvtColor(np.asarray(frame, np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def lab_stats(frame: np.ndarray) -> LabStats:
    """The frame's CIELAB mean and spread per channel."""
    return _stats(to_lab(frame))


def _stats(lab: np.ndarray) -> LabStats:
    values = lab.reshape(-1, 3).astype(np.float64)
    return LabStats(values.mean(axis=0), values.std(axis=0))


def match_colour(frame: np.ndarray, reference: LabStats) -> np.ndarray:
    """(H, W, 3) uint8 `frame` with its CIELAB mean and spread per channel moved to `reference`'s."""
    lab = to_lab(frame)
    own = _stats(lab)
    scale = reference.std / np.maximum(own.std, 1e-6)
    lab = (lab - own.mean.astype(np.float32)) * scale.astype(np.float32) + reference.mean.astype(np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
