"""Tests for ddvideo.metrics: the warping error tells steady renders from flickering ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ddvideo.errors import InputError, SettingsError
from ddvideo.metrics import (activation_coverage, burn, half_share, measure_clip, measure_look, objective_gain,
                             pixel_coverage, sharpness, structure, warping_error)

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


def test_a_smaller_render_is_measured_at_its_own_size(clip):
    """A render at --max-size is measured against its source shrunk as the render read it, not scaled back up (which
    blurred it: an undreamed half-size copy read strength 4.0, and sharpness 4.6 against its source's 6.2); one cropped by a pixel to
    even sides, against its source cropped the same way."""
    source = clip[0]
    half = cv2.resize(source, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    look = measure_look(half, source)
    assert look.strength == 0 and look.sharpness == look.source_sharpness == sharpness(half)
    odd = np.ascontiguousarray(np.pad(source, ((0, 1), (0, 1), (0, 0)), mode="edge"))  # 129x97: the render keeps 128x96
    assert measure_look(source, odd).strength == 0
    halves = [cv2.resize(f, (W // 2, H // 2), interpolation=cv2.INTER_AREA) for f in clip]
    measures = measure_clip(iter(clip), iter(halves))
    assert measures.look.strength == 0 and measures.e_warp < 2e-3


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


# -- the look of a still ------------------------------------------------------------------------------------------
def test_half_share_counts_the_fewest_values_holding_half():
    assert half_share(np.ones(10)) == 0.5  # even: half of them
    assert half_share(np.array([10.0, 0, 0, 0, 0, 0, 0, 0, 0, 0])) == 0.1  # one holds it all
    assert half_share(np.array([3.0, 3.0, 1.0, 1.0, 1.0, 1.0])) == pytest.approx(2 / 6)  # 3 of 10 is not half; 6 is
    assert half_share(np.array([4.0, 1.0, 1.0, 1.0, 1.0])) == 0.2  # 4 of 8 is exactly half
    assert half_share(np.zeros(4)) == 0.0
    assert half_share(np.array([-5.0, 1.0, 1.0])) == pytest.approx(1 / 3)  # losses hold nothing


def test_pixel_coverage_even_dream_against_one_spot():
    source = np.full((64, 64, 3), 100, np.uint8)
    even = source + 10  # the same change in each of the 16 blocks of 16x16
    spot = source.copy()
    spot[:16, :16] = 200  # all of it in one block
    assert pixel_coverage(even, source) == 0.5
    assert pixel_coverage(spot, source) == 1 / 16


def test_burn_counts_pixels_moved_past_80_levels_in_any_channel():
    source = np.full((10, 10, 3), 100, np.uint8)
    out = source.copy()
    out[0, :5, 2] = 181  # 81 levels in one channel: burned
    out[1, :5] = 180  # 80 levels: not
    out[2, :3, 0] = 0  # 100 levels down: burned
    assert burn(out, source) == pytest.approx(8 / 100)


def test_structure_ignores_fine_texture_and_sees_a_lost_picture():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.float32), (64, 1))
    source = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    textured = np.clip(source + rng.normal(0, 20, source.shape), 0, 255).astype(np.uint8)
    flipped = source[:, ::-1].copy()
    assert structure(textured, source) > 0.99
    assert structure(flipped, source) < -0.9


def test_objective_gain_and_activation_coverage_of_known_maps():
    source = np.ones((4, 4))
    everywhere = source * 3  # the same gain at all 16 positions
    one_spot = source.copy()
    one_spot[1, 2] = 33  # the same total gain, at one position
    assert objective_gain(everywhere, source) == pytest.approx(3.0)
    assert objective_gain(one_spot, source) == pytest.approx(3.0)
    assert activation_coverage(everywhere, source) == 0.5
    assert activation_coverage(one_spot, source) == 1 / 16
    assert objective_gain(source * 0.5, source) == pytest.approx(0.5)  # a blur that lowers activations
