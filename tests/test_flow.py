"""Tests for ddvideo.flow: flow recovers known motion, warps land where geometry says."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from ddvideo.errors import InputError, SettingsError
from ddvideo.flow import HOLD_CAP, FlowSettings, cap_dream, coherent_init, compute_flow, flow_pair, global_shift, occlusion_mask, warp

H, W = 96, 128
DX, DY = 3, -2  # content offset of frame b's window relative to frame a's


def texture(h: int, w: int, *, seed: int) -> np.ndarray:
    """(h, w, 3) uint8 smooth random texture that optical flow can lock on to."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return np.rint(smooth * 255).astype(np.uint8)


def window(big: np.ndarray, x: int, y: int) -> np.ndarray:
    return np.ascontiguousarray(big[y : y + H, x : x + W])


@pytest.fixture(scope="module")
def panned() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames a, b of a pan (b(p) = a(p + (DX, DY))) and the big texture they are cut from."""
    big = texture(H + 40, W + 40, seed=1)
    return window(big, 20, 20), window(big, 20 + DX, 20 + DY), big


def interior(x: np.ndarray, margin: int = 8) -> np.ndarray:
    return x[margin:-margin, margin:-margin]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_compute_flow_recovers_pan(panned, method):
    a, b, _ = panned
    flow = compute_flow(a, b, method=method)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    assert abs(np.median(interior(flow[..., 0])) - DX) < 0.3
    assert abs(np.median(interior(flow[..., 1])) - DY) < 0.3


def test_global_shift_is_how_far_the_picture_moved(panned):
    a, b, _ = panned  # b's window is (DX, DY) further along the texture, so the picture moved by (-DX, -DY)
    assert global_shift(compute_flow(a, b)) == pytest.approx([-DX, -DY], abs=0.3)
    assert list(global_shift(None)) == [0.0, 0.0]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_warp_along_flow_matches_next_frame(panned, method):
    a, b, _ = panned
    warped = warp(a, compute_flow(a, b, method=method))
    assert warped.dtype == np.uint8 and warped.shape == a.shape
    aligned = np.abs(interior(warped).astype(np.float32) - interior(b)).mean()
    unaligned = np.abs(interior(a).astype(np.float32) - interior(b)).mean()
    assert aligned < 1.0
    assert unaligned > 10 * aligned


def test_compute_flow_none_is_zero(panned):
    a, b, _ = panned
    assert not compute_flow(a, b, method="none").any()


def test_warp_constant_one_pixel_flow():
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = 1.0  # every pixel reads its right neighbour
    out = warp(image, flow)
    assert out.shape == image.shape and out.dtype == np.float32
    expected = np.array([[1, 2, 3, 3], [5, 6, 7, 7], [9, 10, 11, 11]], np.float32)  # edge replicated
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-6)

    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 1] = -1.0  # every pixel reads the one above it
    rgb = np.stack([image[..., 0]] * 3, axis=2).astype(np.uint8)
    out = warp(rgb, flow)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[1:, :, 0], rgb[:-1, :, 0])
    np.testing.assert_array_equal(out[0], rgb[0])


def test_warp_half_pixel_is_bilinear():
    image = np.array([[0.0, 10.0, 20.0]], np.float32)
    flow = np.zeros((1, 3, 2), np.float32)
    flow[..., 0] = 0.5
    np.testing.assert_allclose(warp(image, flow), [[5.0, 15.0, 20.0]], atol=1e-5)


def test_warp_rejects_mismatched_flow():
    with pytest.raises(InputError, match="flow shape"):
        warp(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 2), np.float32))


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_occlusion_mask_pure_pan_is_reliable_inside(panned, method):
    a, b, _ = panned
    _, unreliable = flow_pair(a, b, method=method)
    assert unreliable.shape == (H, W) and unreliable.dtype == bool
    assert interior(unreliable).mean() < 0.02
    # b's right columns and top rows show content that lies outside a
    assert unreliable[H // 2 :, -DX:].all() and unreliable[: -DY, : W // 2].all()


def test_occlusion_mask_marks_uncovered_strip():
    background = texture(H, W, seed=2)
    square = texture(32, 32, seed=3)
    a, b = background.copy(), background.copy()
    a[32:64, 40:72] = square
    b[32:64, 48:80] = square  # the square moves 8 px right; columns 40..47 are uncovered
    unreliable = occlusion_mask(compute_flow(b, a), compute_flow(a, b))
    assert unreliable[36:60, 41:47].mean() > 0.6
    assert unreliable[8:24, 8:120].mean() < 0.05  # static background far from the square
    assert unreliable[8:88, 96:120].mean() < 0.05


def test_occlusion_mask_is_ruders_test_pixel_for_pixel():
    """The mask, written with OpenCV for speed, against the definition in plain numpy on rough random flows (and
    the same flows transposed, so each frame edge meets every part of the test)."""
    rng = np.random.default_rng(4)
    flow_bw = cv2.GaussianBlur(rng.normal(0, 20, (H, W, 2)).astype(np.float32), (0, 0), 6)
    flow_fw = -flow_bw + cv2.GaussianBlur(rng.normal(0, 2, (H, W, 2)).astype(np.float32), (0, 0), 2)
    for bw, fw in ((flow_bw, flow_fw), (flow_bw.transpose(1, 0, 2)[..., ::-1], flow_fw.transpose(1, 0, 2)[..., ::-1])):
        bw, fw = np.ascontiguousarray(bw), np.ascontiguousarray(fw)
        h, w = bw.shape[:2]
        fw_on_b = warp(fw, bw)
        energy = np.sum(fw_on_b**2, axis=2) + np.sum(bw**2, axis=2)
        inconsistent = np.sum((fw_on_b + bw) ** 2, axis=2) > 0.01 * energy + 0.5
        grads = [g for c in (0, 1) for g in np.gradient(bw[..., c])]
        boundary = sum(g**2 for g in grads) > 0.01 * np.sum(bw**2, axis=2) + 0.002
        x, y = bw[..., 0] + np.arange(w), bw[..., 1] + np.arange(h)[:, None]
        outside = (x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)
        expected = inconsistent | boundary | outside
        assert 0.05 < expected.mean() < 0.95  # a test with both kinds of pixel
        np.testing.assert_array_equal(occlusion_mask(fw, bw), expected)


def test_coherent_init_none_is_plain_blend():
    source = np.array([[[200, 0, 100], [255, 255, 255]]], np.uint8)  # (1, 2, 3)
    prev_dream = np.array([[[0, 100, 101], [0, 10, 255]]], np.uint8)
    prev_source = np.zeros_like(source)  # ignored without flow
    out = coherent_init(source, prev_source, prev_dream, settings=FlowSettings(method="none", carry="frame", blend=0.25))
    # 0.25 * source + 0.75 * dream: 50, 75, 100.75 -> 101; 63.75 -> 64, 71.25 -> 71, 255
    expected = np.array([[[50, 75, 101], [64, 71, 255]]], np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_residual_carry_puts_the_faded_dream_on_the_fresh_source():
    source = np.array([[[200, 0, 100], [250, 20, 30]]], np.uint8)  # (1, 2, 3)
    prev_source = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    prev_dream = np.array([[[30, 0, 30], [40, 90, 61]]], np.uint8)  # its dream: +20 -20 0, 0 +40 +1
    out = coherent_init(source, prev_source, prev_dream, settings=FlowSettings(method="none", blend=0.25))
    # source + 0.75 * dream: 215, -15 -> 0, 100; 250, 50, 30.75 -> 31
    np.testing.assert_array_equal(out, np.array([[[215, 0, 100], [250, 50, 31]]], np.uint8))


def test_hold_scales_a_carried_dream_stronger_than_the_chain_down_to_it():
    source = np.full((1, 2, 3), 100, np.uint8)
    prev_source = np.full((1, 2, 3), 100, np.uint8)
    prev_dream = np.array([[[112, 88, 100], [130, 100, 70]]], np.uint8)  # dream +12 -12 0, +30 0 -30: mean |.| 14
    settings = FlowSettings(method="none", blend=0.0)
    held = coherent_init(source, prev_source, prev_dream, settings=settings, hold=7.0)
    # scaled by 7 / 14: +6 -6 0, +15 0 -15
    np.testing.assert_array_equal(held, np.array([[[106, 94, 100], [115, 100, 85]]], np.uint8))
    # weaker than the chain: only the fade applies, nothing is strengthened
    faded = coherent_init(source, prev_source, prev_dream, settings=replace(settings, blend=0.5), hold=20.0)
    np.testing.assert_array_equal(faded, np.array([[[106, 94, 100], [115, 100, 85]]], np.uint8))
    # the fade and the hold: whichever keeps less
    both = coherent_init(source, prev_source, prev_dream, settings=replace(settings, blend=0.25), hold=7.0)
    np.testing.assert_array_equal(both, held)
    # hold off: the fade alone
    off = coherent_init(source, prev_source, prev_dream, settings=replace(settings, hold=False), hold=7.0)
    np.testing.assert_array_equal(off, prev_dream)


def test_hold_clips_a_burned_speck_so_it_cannot_feed_on_itself():
    source = prev_source = np.full((1, 4, 3), 100, np.uint8)
    prev_dream = np.array([[[110, 90, 100], [100, 100, 100], [250, 0, 100], [100, 100, 104]]], np.uint8)
    settings = FlowSettings(method="none", blend=0.0)
    # dream +10 -10 0, 0, +150 -100 0, +4: each channel is clipped to HOLD_CAP (4) x the hold (10), then the
    # whole is scaled to the hold where it is stronger on average (mean 104 / 12 = 8.7: it is not)
    assert HOLD_CAP == 4.0
    held = coherent_init(source, prev_source, prev_dream, settings=settings, hold=10.0)
    expected = np.rint(100 + np.array([[[10, -10, 0], [0, 0, 0], [40, -40, 0], [0, 0, 4]]]))
    np.testing.assert_array_equal(held, expected.astype(np.uint8))
    held = coherent_init(source, prev_source, prev_dream, settings=settings, hold=5.0)  # clipped to 20: mean 64 / 12
    keep = 5.0 / ((10 + 10 + 20 + 20 + 4) / 12)
    expected = np.rint(100 + keep * np.array([[[10, -10, 0], [0, 0, 0], [20, -20, 0], [0, 0, 4]]]))
    np.testing.assert_array_equal(held, expected.astype(np.uint8))
    off = coherent_init(source, prev_source, prev_dream, settings=replace(settings, hold=False), hold=10.0)
    np.testing.assert_array_equal(off, prev_dream)  # without the hold the speck is carried as it is


def test_a_chains_first_frame_is_capped_as_its_carried_frames_are():
    """The still that opens a held chain keeps no pixel beyond HOLD_CAP times its own strength, so carrying it to
    the next frame (which caps at that bound) changes nothing at once."""
    source = np.full((1, 4, 3), 100, np.uint8)
    dream = np.array([[[110, 90, 100], [100, 100, 100], [250, 0, 100], [100, 100, 104]]], np.uint8)
    # dream +10 -10 0, 0, +150 -100 0, +4: the bound b with +-150 and 100 clipped to it is 4 (24 + 2 b) / 12: 24
    capped = cap_dream(dream, source)
    np.testing.assert_array_equal(capped, [[[110, 90, 100], [100, 100, 100], [124, 76, 100], [100, 100, 104]]])
    hold = float(np.mean(np.abs(capped.astype(int) - source)))
    carried = coherent_init(source, source, capped, settings=FlowSettings(method="none", blend=0.0), hold=hold)
    np.testing.assert_array_equal(carried, capped)
    np.testing.assert_array_equal(cap_dream(source, source), source)  # no dream: nothing to cap
    # one value of twelve moved (+150): no bound but 0 caps it at 4x the capped strength, so the plain cap, 4x its
    # strength 12.5, rather than wiping the dream out
    assert cap_dream(np.where(dream > 200, dream, source), source).max() == 150


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_coherent_init_carries_dream_along_motion(panned, method):
    a, b, big = panned
    pattern = texture(*big.shape[:2], seed=5)  # the "dream": a pattern stuck to the content
    dream_a, dream_b = window(pattern, 20, 20), window(pattern, 20 + DX, 20 + DY)
    init = coherent_init(b, a, dream_a, settings=FlowSettings(method=method, blend=0.0))
    assert init.shape == b.shape and init.dtype == np.uint8
    assert np.abs(interior(init).astype(np.float32) - interior(dream_b)).mean() < 1.0
    # content entering at the edge has no dream to carry: it takes the source frame
    np.testing.assert_array_equal(init[H // 2 :, -DX:], b[H // 2 :, -DX:])
    # without flow the same dream lands misaligned
    blended = coherent_init(b, a, dream_a, settings=FlowSettings(method="none", blend=0.0))
    assert np.abs(interior(blended).astype(np.float32) - interior(dream_b)).mean() > 10


def test_coherent_init_rejects_mismatched_shapes(panned):
    a, b, _ = panned
    with pytest.raises(InputError, match="prev_dream"):
        coherent_init(b, a, a[:-1], settings=FlowSettings())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lucas"}, "'lucas'.*dis, farneback, none"),
        ({"blend": 1.5}, "1.5.*\\[0, 1\\]"),
        ({"blend": -0.1}, "-0.1.*\\[0, 1\\]"),
        ({"blend": float("nan")}, "nan"),
        ({"blend": "half"}, "'half'"),
        ({"occlusion": "yes"}, "'yes'"),
        ({"hold": 1}, "hold 1"),
    ],
)
def test_flow_settings_validation(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        FlowSettings(**kwargs)


def test_flow_settings_defaults_and_unknown_method_in_compute_flow(panned):
    assert FlowSettings() == FlowSettings(method="dis", carry="residual", blend=0.0, hold=True, occlusion=True)
    assert FlowSettings(carry="frame").blend == 0.3  # each carry its own blend
    a, b, _ = panned
    with pytest.raises(SettingsError, match="'raft'"):
        compute_flow(a, b, method="raft")
