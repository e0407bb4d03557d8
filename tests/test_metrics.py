"""Tests for ddvideo.metrics: the warping error tells steady renders from flickering ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ddvideo.errors import InputError, SettingsError
from ddvideo.metrics import warping_error

H, W, T = 96, 128, 5


def pan_clip(*, seed: int = 0) -> list[np.ndarray]:
    """T frames of a smooth random texture panning 2 px right and 1 px down per frame."""
    noise = np.random.default_rng(seed).random((H + 40, W + 40, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = np.rint((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).astype(np.uint8)
    return [np.ascontiguousarray(smooth[2 + t : 2 + t + H, 4 + 2 * t : 4 + 2 * t + W]) for t in range(T)]


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return pan_clip()


def test_output_following_source_has_near_zero_error(clip):
    assert warping_error(clip, clip) < 1e-3
    assert warping_error(clip, clip, method="farneback") < 1e-3


def test_independent_noise_has_large_error(clip):
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in clip]
    assert warping_error(clip, noise) > 0.2  # about 3 * 1/6 for uniform noise in [0, 1]


def test_consistent_stylisation_beats_flicker(clip):
    inverted = [255 - f for f in clip]
    offsets = np.random.default_rng(2).uniform(-40, 40, len(clip))
    flicker = [np.clip(f.astype(np.float32) + o, 0, 255).astype(np.uint8) for f, o in zip(clip, offsets)]
    steady, flickering = warping_error(clip, inverted), warping_error(clip, flicker)
    assert steady < 1e-3
    assert flickering > 0.01
    assert flickering > 10 * steady


def test_streams_generators_and_resizes_output(clip):
    bigger = (cv2.resize(f, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR) for f in clip)
    assert warping_error(iter(clip), bigger) < 2e-3


@pytest.mark.parametrize("frames", [0, 1])
def test_fewer_than_two_frames_raises(clip, frames):
    with pytest.raises(InputError, match="at least 2 frames"):
        warping_error(clip[:frames], clip[:frames])


def test_frame_count_mismatch_raises(clip):
    with pytest.raises(InputError, match="output clip ends after 3 frames"):
        warping_error(clip, clip[:3])


def test_bad_frames_and_method_raise(clip):
    with pytest.raises(InputError, match="uint8"):
        warping_error(clip, [f.astype(np.float32) for f in clip])
    with pytest.raises(SettingsError, match="'raft'"):
        warping_error(clip, clip, method="raft")
