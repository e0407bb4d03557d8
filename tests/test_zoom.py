"""Zoom mode: the camera transform's geometry, dream-every, the seamless loop, resume, and the CLI's bad inputs."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SMALL_LAYERS, Interrupt, one_error_line, textured_image
from ddvideo.cli import main
from ddvideo.colour import lab_stats
from ddvideo.dream import Dreamer, DreamSettings
from ddvideo.errors import SettingsError
from ddvideo.media import VideoReader, read_image, write_image
from ddvideo.transforms import fill_size, zoom_frame, zoom_matrix
from ddvideo.zoom import ZoomSettings, loop_blend, loop_seam, parse_pan, parse_size, render_zoom

SIZE = (128, 112)  # (width, height): just over the 107 px the small objective needs
FAST = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "1", "-q"]


@pytest.fixture(scope="module")
def dreamer(inception):
    return Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1))


def frames_of(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [read_image(p) for p in sorted(path.iterdir())]
    with VideoReader(path) as reader:
        return list(reader)


def render(dreamer, out: Path, **settings) -> list[np.ndarray]:
    zoom = ZoomSettings(**{"size": SIZE, "frames": 12, **settings})
    summary = render_zoom(None, str(out), dreamer=dreamer, zoom=zoom)
    assert summary.frames == zoom.frames
    return frames_of(out)


# ---------------------------------------------------------------- the transform


def centroid(image: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass of a single-channel image."""
    m = cv2.moments(image.astype(np.float32))
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def dot(width: int, height: int, x: float, y: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2)).astype(np.float32)


@pytest.mark.parametrize(("zoom", "rotate", "pan", "expected"), [
    (2.0, 0.0, (0, 0), (60.0, 10.0)),  # centre (40, 30): the offset (10, -10) doubles
    (1.0, 90.0, (0, 0), (30.0, 20.0)),  # a quarter turn counter-clockwise: right of the centre goes up
    (1.0, 0.0, (2, -3), (48.0, 23.0)),  # the view moves right 2 and up 3: the picture moves left 2 and down 3
    (1.5, 90.0, (2, -3), (23.0, 18.0)),  # all at once: c + 1.5 * (-10, -10) - (2, -3)
])
def test_a_dot_lands_where_geometry_says(zoom, rotate, pan, expected):
    frame = dot(81, 61, 50, 20)  # centre of the 81x61 frame is (40, 30)
    moved = zoom_frame(frame, zoom=zoom, rotate=rotate, pan=pan, border=cv2.BORDER_CONSTANT)
    assert centroid(moved) == pytest.approx(expected, abs=0.05)
    back = zoom_frame(moved, zoom=zoom, rotate=rotate, pan=pan, steps=-1, border=cv2.BORDER_CONSTANT)
    assert centroid(back) == pytest.approx((50, 20), abs=0.05)


def test_steps_compose_and_invert():
    one = np.vstack([zoom_matrix(64, 48, zoom=1.1, rotate=3, pan=(1, 2)), [0, 0, 1]])
    three = zoom_matrix(64, 48, zoom=1.1, rotate=3, pan=(1, 2), steps=3)
    assert np.allclose(three, np.linalg.matrix_power(one, 3)[:2])
    assert np.allclose(zoom_matrix(64, 48, zoom=1.1, rotate=3, pan=(1, 2), steps=-3), cv2.invertAffineTransform(three))


def test_pulling_out_reflects_the_border_rather_than_going_black():
    frame = np.full((40, 60, 3), 90, np.uint8)
    frame[:, :30] = 200
    out = zoom_frame(frame, zoom=0.5)
    assert out.min() >= 70  # nothing black came in (bicubic overshoots a little at the sharp edge)
    assert abs(out[:, 0].mean() - 200) < 15 and abs(out[:, -1].mean() - 90) < 15  # each half mirrored on its side


def test_fill_size_crops_the_centre():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 50:150] = 255  # the centre square
    assert (fill_size(frame, size=(50, 50)) == 255).all()
    assert fill_size(frame, size=(64, 16)).shape == (16, 64, 3)


# ---------------------------------------------------------------- rendering


def test_dream_every_fills_between_with_the_pure_camera_move(dreamer, tmp_path):
    zoom = ZoomSettings(size=SIZE, frames=8, dream_every=3, zoom=1.06, rotate=2, pan=(1, -1))
    summary = render_zoom(None, str(tmp_path / "k3"), dreamer=dreamer, zoom=zoom)
    frames = frames_of(tmp_path / "k3")
    assert (len(frames), summary.dreamed) == (8, 3)  # frames 0, 3, 6
    for i in range(1, 8):
        moved = zoom.step(frames[i - 1])
        assert np.array_equal(frames[i], moved) == (i % 3 != 0), i  # dreamed frames differ from the move alone


def test_colour_coherence_holds_the_palette_of_a_long_zoom(dreamer, tmp_path):
    """A start whose centre is another colour than its edges: flying in, the view fills with the centre's colour
    and the dream tints it on; colour coherence holds every frame to frame 0's CIELAB mean and spread."""
    start = textured_image(SIZE[1], SIZE[0], seed=3)
    start[28:84, 36:92] = np.clip(start[28:84, 36:92] * [0.3, 0.6, 1.4], 0, 255).astype(np.uint8)  # a blue centre
    write_image(str(tmp_path / "start.png"), start)
    drift = {}
    for on in (True, False):
        out = tmp_path / f"on{on}"
        render_zoom(str(tmp_path / "start.png"), str(out), dreamer=dreamer,
                    zoom=ZoomSettings(frames=40, zoom=1.06, colour_coherence=on))
        frames = frames_of(out)
        first = lab_stats(frames[0])
        drift[on] = max(lab_stats(f).distance(first) for f in frames[1:])
        spread = np.array([lab_stats(f).spread(first) for f in frames[1:]])
        if on:
            assert np.all(np.abs(np.log(spread)) < np.log(1.1)), spread
    assert drift[True] < 1.5 < 6 < drift[False], drift


def test_loop_ends_one_camera_step_before_its_start(dreamer, tmp_path):
    frames = render(dreamer, tmp_path / "loop", frames=16, loop=True)
    seam, median = loop_seam(frames)
    assert seam <= 1.5 * median, (seam, median)
    plain = render(dreamer, tmp_path / "plain", frames=16)  # the same animation, not closed: a jump
    assert all(np.array_equal(a, b) for a, b in zip(frames[:11], plain[:11]))  # only the tail (5 frames) differs
    plain_seam, plain_median = loop_seam(plain)
    assert plain_seam > 1.5 * plain_median, (plain_seam, plain_median)


def test_loop_blend_gives_the_start_one_step_back_on_the_last_frame():
    zoom = ZoomSettings(frames=10, loop=True, zoom=1.1, rotate=5)
    first = textured_image(80, 100, seed=1)
    other = textured_image(80, 100, seed=2)
    last = loop_blend(other, first, index=9, zoom=zoom)
    back = zoom.step(first, steps=-1)
    inner = (slice(8, -8), slice(8, -8))  # where the start, one step back, covers the view
    assert np.array_equal(last[inner], back[inner])
    assert np.array_equal(loop_blend(other, first, index=9 - zoom.tail, zoom=zoom), other)  # before the tail


def test_interrupted_loop_resumes_to_the_same_frames(dreamer, tmp_path):
    settings = {"frames": 12, "loop": True, "dream_every": 2, "rotate": 1.0}  # the tail reuses frame 0
    reference = render(dreamer, tmp_path / "whole", **settings)
    out = tmp_path / "resumed"
    zoom = ZoomSettings(size=SIZE, **settings)
    with pytest.raises(KeyboardInterrupt):
        render_zoom(None, str(out), dreamer=dreamer, zoom=zoom, progress=Interrupt(4))
    assert not out.exists()
    kept = len(list((tmp_path / "resumed.ddwork" / "frames").iterdir()))
    assert 4 <= kept < 12 - zoom.tail
    summary = render_zoom(None, str(out), dreamer=dreamer, zoom=zoom)
    assert summary.frames == 12 and summary.dreamed == sum(i % 2 == 0 for i in range(kept, 12))
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(out), reference))
    assert not (tmp_path / "resumed.ddwork").exists()


def test_cli_renders_a_looping_gif_from_an_image(tmp_path):
    photo, out = tmp_path / "in.png", tmp_path / "loop.gif"
    write_image(photo, textured_image(130, 150, seed=3))
    argv = ["zoom", str(photo), str(out), *FAST, "--seconds", "1", "--fps", "8", "--loop", "--size", "128x112"]
    assert main(argv) == 0
    frames = frames_of(out)
    assert len(frames) == 8 and frames[0].shape == (112, 128, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "loop.gif"]


def test_cli_takes_its_paths_among_the_options(tmp_path, capsys):
    """`zoom [IN] OUT`: the paths may sit among the options, as other commands' may; a picture alone is not taken for
    the output."""
    photo, out = tmp_path / "in.png", tmp_path / "z.gif"
    write_image(photo, textured_image(130, 150, seed=3))
    assert main(["zoom", str(photo), *FAST, "--seconds", "0.5", "--fps", "4", str(out)]) == 0
    assert len(frames_of(out)) == 2 and frames_of(out)[0].shape == (130, 150, 3)  # the picture's size: not noise
    assert main(["zoom", "--seconds", "0.5", "--fps", "4", str(tmp_path / "noise.gif"), "--size", "64x48", *FAST]) == 0
    assert frames_of(tmp_path / "noise.gif")[0].shape == (48, 64, 3)
    assert main(["zoom", str(photo), *FAST]) == 2
    one_error_line(capsys.readouterr().err, r"in\.png is a picture, not an output: give the output after it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "noise.gif", "z.gif"]


def test_a_gif_with_music_says_it_holds_no_sound(tmp_path, capsys):
    beat = Path(__file__).resolve().parents[1] / "samples" / "beat.mp3"
    out = tmp_path / "z.gif"
    assert main(["zoom", str(out), "--size", "64x48", "--frames", "2", "--audio", str(beat), *FAST]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ddvideo")]
    assert len(err) == 1 and re.match(r"ddvideo: warning: .*z\.gif holds no sound: --audio .*beat\.mp3 only drives "
                                      r"the schedules", err[0]), err
    assert len(frames_of(out)) == 2


def test_a_schedule_may_start_with_a_minus():
    from ddvideo.options import build_parser, parse_argv

    opts = parse_argv(build_parser(), ["zoom", "a.png", "b.gif", "--rotate", "-2*sin(t)", "--pan-y", "-(t/4)",
                                       "--pan-x", "-.5"])
    assert (opts["rotate"], opts["pan_y"], opts["pan_x"], opts["output"]) == ("-2*sin(t)", "-(t/4)", "-.5", "b.gif")


def test_parsers():
    assert parse_size("640x360") == (640, 360) and parse_pan("2,-1.5") == (2.0, -1.5)
    for text in ("640", "axb", "640x"):
        with pytest.raises(SettingsError, match="--size must be WIDTHxHEIGHT"):
            parse_size(text)
    with pytest.raises(SettingsError, match="--pan must be DX,DY"):
        parse_pan("3")


@pytest.mark.parametrize(("args", "message"), [
    (["--zoom", "0"], r"--zoom must be a positive scale per frame, e\.g\. 1\.04, got 0"),
    (["--zoom", "-1.05"], r"--zoom must be a positive"),
    (["--zoom", "0.001"], r"--zoom 0\.001 shrinks a 150x130 frame to less than 2 px"),
    (["--zoom", "200"], r"--zoom 200.* less than 2 px of it stays in view"),
    (["--frames", "0"], r"--frames must be at least 1, got 0"),
    (["--seconds", "0.01"], r"--frames must be at least 1, got 0 \(check --seconds and --fps\)"),
    (["--dream-every", "0"], r"--dream-every must be 1"),
    (["--size", "40x30"], r"frame 40x30 is too small for this model"),
    (["--size", "wide"], r"--size must be WIDTHxHEIGHT"),
    (["--pan=1"], r"--pan must be DX,DY"),
    (["MISSING"], r"input not found: .*nope\.png"),
    (["NOSOURCE", "--size", "40x40"], r"frame 40x40 is too small"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, args, message):
    photo, out = tmp_path / "in.png", tmp_path / "o.gif"
    write_image(photo, textured_image(130, 150, seed=3))
    source = {"MISSING": [str(tmp_path / "nope.png")], "NOSOURCE": []}.get(args[0], [str(photo)])
    extra = [a for a in args if a not in ("MISSING", "NOSOURCE")]
    length = [] if {"--frames", "--seconds"} & set(extra) else ["--frames", "3"]
    assert main(["zoom", *source, str(out), *FAST, *length, *extra]) == 1
    one_error_line(capsys.readouterr().err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]  # nothing partial, no work folder
