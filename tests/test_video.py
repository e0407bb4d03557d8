"""Video mode end to end: a synthetic pan with audio through the CLI and render_video, resume, bad inputs, metrics."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_LAYERS, Interrupt, one_error_line, small_net_options, textured_image
from ddvideo.cli import main
from ddvideo.dream import Dreamer, DreamSettings
from ddvideo.errors import DDVideoError, LockedError, SettingsError
from ddvideo.flow import FlowSettings, cap_dream
from ddvideo.media import VideoReader, VideoWriter, check_unlocked, ffmpeg_exe, probe_video, read_image, write_image
from ddvideo.media.lock import LOCK_NAME
from ddvideo.metrics import strength, warping_error
from ddvideo.models import resolve_precision
from ddvideo.render import RunSettings, kept_state
from ddvideo.transforms import grid_canvas
from ddvideo.video import (HOLD_BOOST, HOLD_GAIN, LARGE_FRAME_SHARE, VIDEO_STEP_SHARE, ClipSettings, first_iterations,
                           frame_detail, frame_share, carried_dream, render_video, step_boost, step_map)

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS, N = 160, 120, 12, 24  # the pan clip: 2 s
PAN = 3  # px per frame: the camera moves right, so the picture moves left
FAST = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "1", "-q"]


def pan_frames(n: int = N, width: int = W, height: int = H) -> list[np.ndarray]:
    """Windows of one texture, each PAN px further right: frame t+1 (p) = frame t (p + (PAN, 0))."""
    big = textured_image(height, width + PAN * n, seed=3)
    return [np.ascontiguousarray(big[:, PAN * t : PAN * t + width]) for t in range(n)]


def write_clip(path: Path, frames: list[np.ndarray], *, audio_from: Path | None = None) -> Path:
    with VideoWriter(path, fps=FPS, size=(frames[0].shape[1], frames[0].shape[0]), audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def cut_clip(path: Path) -> Path:
    """Six frames of one shot, then six of another picture moving the same way."""
    other = [np.ascontiguousarray(255 - f[::-1]) for f in pan_frames(6)]
    return write_clip(path, pan_frames(6) + other)


def decode(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [read_image(p) for p in sorted(path.iterdir())]
    with VideoReader(path) as reader:
        return list(reader)


def leftovers(folder: Path, name: str) -> list[str]:
    """Anything the render of `folder/name` made or left: the output, its work folder, hidden temporaries."""
    return sorted(p.name for p in folder.iterdir() if p.name.lstrip(".").startswith(name))


def finished(work: Path) -> list[str]:
    """Frame files in a work folder (hidden .NAME.partial-* files are frames still being written)."""
    return [name for name in os.listdir(work) if not name.startswith(".")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("video")
    tone = d / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2", "-c:a", "aac", str(tone))
    frames = pan_frames()
    odd = d / "odd.mkv"  # 161x121: H.264 4:4:4 takes odd sizes
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=161x121:rate={FPS}:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", str(odd))  # fmt: skip
    return {
        "pan": write_clip(d / "pan.mp4", frames, audio_from=tone),
        "silent": write_clip(d / "silent.mp4", frames[:12]),
        "odd": odd,
    }


@pytest.fixture(scope="module")
def dreamer(inception) -> Dreamer:
    """The same model and objective as the FAST command line (the CLI builds the same seeded random weights)."""
    return Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1))


@pytest.fixture(scope="module")
def reference(clips, dreamer, tmp_path_factory) -> list[np.ndarray]:
    """An uninterrupted render of the pan clip to PNG frames (lossless), the yardstick of the resume tests."""
    out = tmp_path_factory.mktemp("reference") / "frames"
    summary = render_video(str(clips["pan"]), str(out), dreamer=dreamer)
    assert summary.frames == summary.dreamed == N and summary.warnings == ()
    return decode(out)


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(["video", *map(str, argv)])
    return code, capsys.readouterr().err.splitlines()


# ---------------------------------------------------------------- end to end


def test_cli_renders_clip_with_audio(clips, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, clips["pan"], out, *FAST)
    assert (code, err) == (0, [])
    info = probe_video(out)
    assert (info.width, info.height, info.n_frames, info.fps) == (W, H, N, FPS)
    assert info.duration == pytest.approx(N / FPS, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac"
    assert leftovers(tmp_path, "out") == ["out.mp4"]  # work folder removed after success
    source, dreamed = decode(clips["pan"]), decode(out)
    assert np.abs(dreamed[5].astype(int) - source[5]).mean() > 2  # it did dream


def test_render_video_writes_every_frame_and_follows_the_camera(clips, reference):
    source = decode(clips["pan"])
    assert len(reference) == N and reference[0].shape == (H, W, 3)
    # the dream (output - source) of frame t+1, moved back by the pan, lands on the dream of frame t
    residual = [o.astype(np.float32) - s for o, s in zip(reference, source)]
    along, still = [], []
    for a, b in zip(residual[4:-1], residual[5:]):
        along.append(np.corrcoef(a[8:-8, PAN + 8 : -8].ravel(), b[8:-8, 8 : -8 - PAN].ravel())[0, 1])
        still.append(np.corrcoef(a[8:-8, 8:-8].ravel(), b[8:-8, 8:-8].ravel())[0, 1])
    assert np.mean(along) > 0.5 and np.mean(along) > np.mean(still) + 0.2


def test_flow_is_steadier_than_blend_and_independent_frames(clips, dreamer, reference, tmp_path):
    source = decode(clips["pan"])
    errors = {"flow": warping_error(source, reference)}
    render_video(str(clips["pan"]), str(tmp_path / "blend"), dreamer=dreamer, flow=FlowSettings(method="none"))
    errors["blend"] = warping_error(source, decode(tmp_path / "blend"))
    # each frame dreamed as a still of its own, as the chain's first frame is
    first = first_iterations(dreamer.settings.iterations)
    errors["independent"] = warping_error(source, [dreamer.dream(frame, seed=t, iterations=first).frame
                                                   for t, frame in enumerate(source)])
    # plain blend smears the stale dream across a moving picture: it is no steadier than independent frames
    assert errors["flow"] < min(errors["blend"], errors["independent"]) / 1.5, errors


def test_each_frame_keeps_its_own_detail_as_a_still_does(clips, inception, tmp_path):
    """A frame's dream sits on the frame as a still leaves it (Dreamer.bare: the recipe's share of the detail lost
    by shrinking put back), not on the detail a carried dream brings from the frame it was dreamed on: a dream that
    takes no step writes every frame of a moving clip as its still would, carried with no flow or along it."""
    none = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=2, iterations=0))
    source = decode(clips["pan"])
    bare = [none.bare(frame) for frame in source]
    assert np.mean([np.abs(b.astype(np.int16) - s).mean() for b, s in zip(bare, source)]) > 0.5  # not the frame itself
    for name, flow in {"none": FlowSettings(method="none"), "dis": FlowSettings()}.items():
        render_video(str(clips["pan"]), str(tmp_path / name) + "/", dreamer=none, flow=flow)
        written = decode(tmp_path / name)
        assert max(np.abs(w.astype(np.int16) - b).max() for w, b in zip(written, bare)) <= 1, name


def test_first_frame_is_dreamed_as_a_still_and_the_rest_top_it_up(clips, dreamer, tmp_path, monkeypatch):
    calls = []
    dream = dreamer.dream
    monkeypatch.setattr(dreamer, "dream", lambda frame, **kw: calls.append(kw) or dream(frame, **kw))
    render_video(str(clips["silent"]), str(tmp_path / "out"), dreamer=dreamer)
    assert [kw["seed"] for kw in calls] == list(range(12))  # one dream per frame
    first = first_iterations(dreamer.settings.iterations)
    assert (first_iterations(1), first_iterations(2), first_iterations(30), first_iterations(40)) == (15, 30, 30, 40)
    assert calls[0].get("iterations") == first and calls[0].get("strength") is None  # a still's dream
    share = dreamer.settings.strength * VIDEO_STEP_SHARE  # then a share of its step, more where the dream is weak
    assert all(kw.get("iterations") is None and share <= kw["strength"] <= HOLD_BOOST * share for kw in calls[1:])
    assert all(np.all((1 <= kw["step_map"]) & (kw["step_map"] <= HOLD_BOOST)) for kw in calls[1:])
    # the whole frame's factor and the local one together: at most a whole still step anywhere
    assert all(kw["strength"] * kw["step_map"].max() <= HOLD_BOOST * share * (1 + 1e-6) for kw in calls[1:])
    detail = frame_detail(dreamer.settings.iterations)  # and a share of its detail step
    assert calls[0].get("detail", 1.0) == 1.0 and all(kw["detail"] == pytest.approx(detail) for kw in calls[1:])
    # whose own octave only adds detail: the look is in the carried init
    assert not calls[0].get("top_up") and all(kw["top_up"] for kw in calls[1:])
    assert (frame_detail(2), frame_detail(1), frame_detail(40), frame_detail(0)) == (2 / 30, 1 / 15, 1.0, 1.0)
    calls.clear()
    render_video(str(clips["silent"]), str(tmp_path / "fading"), dreamer=dreamer, flow=FlowSettings(hold=False))
    assert all("step_map" not in kw for kw in calls[1:])  # no hold: the share alone
    calls.clear()
    render_video(str(clips["silent"]), str(tmp_path / "frames"), dreamer=dreamer, flow=FlowSettings(carry="frame"))
    assert all("step_map" not in kw for kw in calls[1:])  # the hold is for the carried residual


def test_a_cut_opens_a_new_chain_dreamed_as_a_still(dreamer, tmp_path, monkeypatch):
    """Six frames of one shot, then six of another: the first frame of each is dreamed as a still, and the chain
    holds the new shot's strength from there (kept in the work folder for a resumed render)."""
    clip = cut_clip(tmp_path / "cut.mp4")
    calls = []
    dream = dreamer.dream
    monkeypatch.setattr(dreamer, "dream", lambda frame, **kw: calls.append(kw) or dream(frame, **kw))
    out, work = tmp_path / "out", tmp_path / "work"
    render_video(str(clip), str(out), dreamer=dreamer, run=RunSettings(work_dir=str(work), keep_work=True))
    stills = [t for t, kw in enumerate(calls) if kw.get("iterations") == first_iterations(dreamer.settings.iterations)]
    assert stills == [0, 6]
    held = json.loads((work / "state.json").read_text())["holds"]
    assert held.keys() == {"0", "6"}
    assert held["6"] == pytest.approx(strength(decode(out)[6], decode(clip)[6]))
    calls.clear()
    render_video(str(clip), str(tmp_path / "no-hold"), dreamer=dreamer, flow=FlowSettings(hold=False, blend=0.1))
    assert [t for t, kw in enumerate(calls) if "iterations" in kw] == [0]  # without the hold, only the opening


def test_resume_before_a_cut_holds_the_chain_of_its_last_frame(dreamer, tmp_path):
    """A kill may leave the state of a chain that opened after the last saved frame (frames reach the work folder
    after the dream that opened it): the resumed render holds the strength of the chain its frames belong to."""
    clip = cut_clip(tmp_path / "cut.mp4")
    work = tmp_path / "work"
    render_video(str(clip), str(tmp_path / "whole"), dreamer=dreamer, run=RunSettings(work_dir=str(work), keep_work=True))
    assert json.loads((work / "state.json").read_text())["holds"].keys() == {"0", "6"}
    for index in range(4, 12):  # frames 4 on were not saved when the render was killed
        (work / "frames" / f"{index:06d}.png").unlink()
    render_video(str(clip), str(tmp_path / "resumed"), dreamer=dreamer, run=RunSettings(work_dir=str(work)))
    assert all(np.array_equal(a, b) for a, b in zip(decode(tmp_path / "resumed"), decode(tmp_path / "whole"), strict=True))


def test_a_fade_in_reanchors_the_hold(dreamer, tmp_path, monkeypatch):
    """A clip fading in from black (brightness x1.4 a frame): the strength the chain holds is measured again as the picture's contrast grows,
    so its end is dreamed as strongly as a still of its last frame, not as faintly as the black frame it opened on."""
    frames = pan_frames(20)
    clip = write_clip(tmp_path / "fade.mp4", [np.rint(f * min(1.0, 0.03 * 1.4**t)).astype(np.uint8)
                                              for t, f in enumerate(frames)])
    sources = decode(clip)
    still = strength(dreamer.dream(sources[-1], iterations=first_iterations(dreamer.settings.iterations)).frame,
                     sources[-1])

    def end_strength(name: str) -> float:
        work = tmp_path / f"{name}.ddwork"
        render_video(str(clip), str(tmp_path / name), dreamer=dreamer, run=RunSettings(work_dir=str(work), keep_work=True))
        held = json.loads((work / "state.json").read_text())["holds"]
        return np.mean([strength(o, s) for o, s in zip(decode(tmp_path / name)[-4:], sources[-4:])]), held

    reanchored, held = end_strength("reanchored")
    assert len(held) >= 3 and "0" in held, held  # measured again several times over the fade
    # each measured as a chain opening on that frame would hold it: its still, capped (flow.cap_dream)
    t = max(int(k) for k in held)
    probe = dreamer.dream(sources[t], seed=t, iterations=first_iterations(dreamer.settings.iterations)).frame
    bare = dreamer.bare(sources[t])
    assert held[str(t)] == pytest.approx(strength(cap_dream(probe, bare), bare), rel=1e-6)
    assert 0.8 <= reanchored / still <= 1.25, (reanchored, still)
    monkeypatch.setattr("ddvideo.video.REANCHOR", math.inf)
    stuck, held = end_strength("stuck")
    assert held.keys() == {"0"} and stuck / still < 0.8, (stuck, still)


def test_a_frame_above_the_base_size_takes_the_large_frame_share(inception, clips, tmp_path, monkeypatch):
    """Its own octave only adds detail and its look octaves are smaller than it: top-ups take LARGE_FRAME_SHARE of
    a still's step, still up to a whole step where the carried dream is weak."""
    large = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1, base_size=96))
    assert large.above_base(H, W) and not large.above_base(96, 96)
    assert frame_share(large, H, W) == LARGE_FRAME_SHARE < VIDEO_STEP_SHARE == frame_share(large, 80, 100)
    # past LARGE_FRAME_REACH times the base size, less in proportion to the long side
    assert frame_share(large, 100, 288) == LARGE_FRAME_SHARE and frame_share(large, 200, 576) == LARGE_FRAME_SHARE / 2
    calls = []
    dream = large.dream
    monkeypatch.setattr(large, "dream", lambda frame, **kw: calls.append(kw) or dream(frame, **kw))
    render_video(str(clips["silent"]), str(tmp_path / "plain"), dreamer=large, flow=FlowSettings(hold=False),
                 clip=ClipSettings(end=4 / FPS))
    share = large.settings.strength * LARGE_FRAME_SHARE
    assert len(calls) == 4 and calls[0].get("strength") is None  # the first frame is a still, as at any size
    assert all(kw["strength"] == pytest.approx(share) for kw in calls[1:])  # without the hold: the share itself
    calls.clear()
    render_video(str(clips["silent"]), str(tmp_path / "held"), dreamer=large, clip=ClipSettings(end=4 / FPS))
    assert all(share <= kw["strength"] <= share / LARGE_FRAME_SHARE for kw in calls[1:])
    assert all(np.all((1 <= kw["step_map"]) & (kw["step_map"] <= 1 / LARGE_FRAME_SHARE)) for kw in calls[1:])
    assert all(kw["strength"] * kw["step_map"].max() <= share / LARGE_FRAME_SHARE * (1 + 1e-6) for kw in calls[1:])
    calls.clear()  # a share of 0: the first frame's dream carried and held, no top-up at all
    monkeypatch.setattr("ddvideo.video.LARGE_FRAME_SHARE", 0.0)
    render_video(str(clips["silent"]), str(tmp_path / "carried"), dreamer=large, clip=ClipSettings(end=4 / FPS))
    assert len(calls) == 4 and all(kw["strength"] == 0 for kw in calls[1:])


def test_step_boost_grows_the_dream_back_where_it_is_weak():
    assert step_boost(10.0, 8.0) == step_boost(8.0, 8.0) == 1.0  # as strong as the chain: the plain share
    assert step_boost(7.6, 8.0) == pytest.approx((8.0 / 7.6) ** HOLD_GAIN) and step_boost(7.6, 8.0) < HOLD_BOOST
    assert step_boost(4.0, 8.0) == min(HOLD_BOOST, 2.0**HOLD_GAIN)
    assert step_boost(0.0, 8.0) == step_boost(0.1, 8.0) == HOLD_BOOST  # after a cut: as fast as allowed
    assert step_boost(4.0, 8.0, boost=20.0) == 20.0 and step_boost(9.0, 8.0, boost=20.0) == 1.0  # another cap


def test_the_step_map_grows_the_dream_back_where_the_flow_brought_none():
    """A pan's new strip at the right edge carries no dream: it steps up to HOLD_BOOST times harder there, while
    the rest, carried at the held strength (or a little under it, as a still's quieter parts are), takes the
    plain share."""
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 190, (96, 160, 3), dtype=np.uint8)
    residual = rng.choice([-10, 10], frame.shape)  # strength 10 everywhere...
    residual[:, :80] = residual[:, :80] * 0.75  # ...7.5 on the left half
    residual[:, -40:] = 0  # and none in the new strip
    init = (frame + residual).astype(np.uint8)
    factors = step_map(carried_dream(init, frame), hold=10.0)
    assert factors.shape == (96, 160) and factors.dtype == np.float32
    assert np.all(factors[:, 10:110] == 1.0)  # carried: at least LOCAL_FLOOR of the hold, the plain share
    assert np.all(factors[:, -12:] == HOLD_BOOST)  # nothing carried: as fast as allowed
    assert np.all(np.diff(factors[48, 100:]) >= 0)  # rising into the strip
    assert np.all(step_map(carried_dream(frame, frame), hold=0.0) == 1.0)  # a chain holding no dream (a zero step): no boost


def test_the_hold_keeps_the_first_frames_strength(clips, dreamer, tmp_path):
    """Per-frame strength over the clip, against its first frame (a still dream): the hold keeps it; a fixed fade
    lets it settle wherever the motion takes it (here, lower)."""
    sources = decode(clips["pan"])

    def strengths(flow: FlowSettings) -> np.ndarray:
        out = tmp_path / f"hold-{flow.hold}"
        render_video(str(clips["pan"]), str(out), dreamer=dreamer, flow=flow)
        values = [strength(o, s) for o, s in zip(decode(out), sources)]
        return np.array(values) / values[0]

    held = strengths(FlowSettings())
    assert 0.9 <= held[N // 2 :].mean() <= 1.2, held
    assert strengths(FlowSettings(hold=False, blend=0.2))[N // 2 :].mean() < 0.9


def test_no_audio_option_and_silent_source(clips, tmp_path, capsys):
    assert run_cli(capsys, clips["pan"], tmp_path / "a.mp4", "--no-audio", *FAST) == (0, [])
    assert not probe_video(tmp_path / "a.mp4").has_audio
    assert run_cli(capsys, clips["silent"], tmp_path / "b.webm", *FAST) == (0, [])
    info = probe_video(tmp_path / "b.webm")
    assert not info.has_audio and info.n_frames == 12 and info.video_codec == "vp9"


def test_odd_source_size_gives_even_output(clips, tmp_path, capsys):
    assert run_cli(capsys, clips["odd"], tmp_path / "odd.mp4", *FAST) == (0, [])
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.n_frames) == (160, 120, FPS)


def test_start_end_trims_video_and_audio(clips, tmp_path, capsys):
    out = tmp_path / "cut.mkv"
    assert run_cli(capsys, clips["pan"], out, "--start", "0.5", "--end", "1.25", *FAST) == (0, [])
    info = probe_video(out)
    assert info.n_frames == 9 and info.fps == FPS and info.has_audio  # frames 6 to 14
    assert info.duration == pytest.approx(0.75, abs=0.05)
    # the first output frame is source frame 6 dreamed: closer to it than to its neighbours
    source, first = decode(clips["pan"]), decode(out)[0].astype(int)
    distance = [np.abs(first - source[t]).mean() for t in (5, 6, 7)]
    assert np.argmin(distance) == 1


def test_fps_resamples(clips, tmp_path, capsys):
    out = tmp_path / "slow.mp4"
    assert run_cli(capsys, clips["pan"], out, "--fps", "6", *FAST) == (0, [])
    info = probe_video(out)
    assert (info.n_frames, info.fps) == (N // 2, 6) and info.duration == pytest.approx(N / FPS, abs=0.1)


def test_gif_and_png_folder_outputs(clips, tmp_path, capsys):
    assert run_cli(capsys, clips["silent"], tmp_path / "loop.gif", *FAST) == (0, [])
    info = probe_video(tmp_path / "loop.gif")
    assert (info.width, info.height, info.n_frames, info.has_audio) == (W, H, 12, False)
    assert run_cli(capsys, clips["silent"], tmp_path / "frames/", *FAST) == (0, [])
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{i:06d}.png" for i in range(12)]
    assert read_image(tmp_path / "frames" / names[-1]).shape == (H, W, 3)


def test_frames_are_dreamed_on_the_grid_phase_of_the_first(clips, dreamer, tmp_path, monkeypatch):
    import ddvideo.video

    seen = []

    def spy(frame, *, offset, grid):
        if frame.ndim == 3:  # the frame (its step map, (H, W), goes on the same canvas)
            seen.append(np.array(offset))
        return grid_canvas(frame, offset=offset, grid=grid)

    monkeypatch.setattr(ddvideo.video, "grid_canvas", spy)
    render_video(str(clips["pan"]), str(tmp_path / "a") + "/", dreamer=dreamer, flow=FlowSettings(align=True))
    # per frame its dream, then its bare frame on the same canvas, at the same grid phase (video._bare)
    offsets, bares = seen[0::2], seen[1::2]
    assert len(offsets) == len(bares) == N and not offsets[0].any()
    assert all(np.array_equal(bare, offset) for bare, offset in zip(bares, offsets))
    # the camera pans PAN px right per frame, so the picture has moved -PAN * t px by frame t
    assert np.abs(np.array(offsets) - [[-PAN * t, 0] for t in range(N)]).max() < 0.5
    seen.clear()
    render_video(str(clips["pan"]), str(tmp_path / "b") + "/", dreamer=dreamer)
    assert seen == []  # off by default


# ---------------------------------------------------------------- resume


def test_interrupted_render_resumes_to_the_same_frames(clips, dreamer, reference, tmp_path):
    out = tmp_path / "frames"
    with pytest.raises(KeyboardInterrupt):
        render_video(str(clips["pan"]), str(out), dreamer=dreamer, progress=Interrupt(5))
    assert not out.exists()
    kept = len(list((tmp_path / "frames.ddwork" / "frames").iterdir()))
    assert 5 <= kept < N
    # the default precision (auto), resolved to this machine's dtype, is what the work folder records
    record = json.loads((tmp_path / "frames.ddwork" / "settings.json").read_text())
    assert dreamer.settings.precision == record["dream"]["precision"] == resolve_precision("auto")
    calls = []
    summary = render_video(str(clips["pan"]), str(out), dreamer=dreamer, progress=lambda *a: calls.append(a))
    assert (summary.frames, summary.dreamed) == (N, N - kept)
    assert [c[0] for c in calls] == list(range(N)) and calls[0][2] is None  # resumed frames have no loss
    resumed = decode(out)
    assert len(resumed) == N and all(np.array_equal(a, b) for a, b in zip(resumed, reference))
    assert leftovers(tmp_path, "frames") == ["frames"]


def test_interrupted_aligned_render_resumes_to_the_same_frames(clips, inception, tmp_path):
    """An aligned chain resumed mid-clip lays its previous frame bare at that frame's own grid phase, as the
    uninterrupted render did (two octaves: a bare frame that differs from the frame, and with the phase)."""
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=2, iterations=1))
    aligned = FlowSettings(align=True)
    render_video(str(clips["pan"]), str(tmp_path / "whole"), dreamer=dreamer, flow=aligned)
    with pytest.raises(KeyboardInterrupt):
        render_video(str(clips["pan"]), str(tmp_path / "resumed"), dreamer=dreamer, flow=aligned,
                     progress=Interrupt(5))
    render_video(str(clips["pan"]), str(tmp_path / "resumed"), dreamer=dreamer, flow=aligned)
    resumed, whole = decode(tmp_path / "resumed"), decode(tmp_path / "whole")
    assert len(resumed) == N and all(np.array_equal(a, b) for a, b in zip(resumed, whole))


def start_render(argv: list[str]) -> subprocess.Popen:
    """`ddvideo ARGV` in a process of its own, on the same devices as this one (conftest hides GPUs unless the run
    shows one), so that its frames match this process's."""
    return subprocess.Popen([sys.executable, "cli.py", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))  # fmt: skip


def wait_for_frames(proc: subprocess.Popen, work: Path, count: int) -> None:
    """Return once the render `proc` has `count` finished frames in `work` (frame files appearing); fail if it ends
    before that."""
    while not (work.is_dir() and len(finished(work)) >= count):
        assert proc.poll() is None, "the render ended before it got there"
        time.sleep(0.01)


def test_killed_render_resumes_to_the_same_frames(clips, tmp_path, capsys, small_net):
    out = tmp_path / "killed.mp4"
    work = tmp_path / "killed.mp4.ddwork" / "frames"
    argv = ["video", str(clips["pan"]), str(out), *small_net_options(small_net, iterations=1), "--crf", "0"]
    proc = start_render(argv)
    try:
        wait_for_frames(proc, work, 2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # the output appears only when complete
    assert 2 <= len(finished(work)) < N
    assert [n for n in os.listdir(tmp_path) if n.startswith(".killed.mp4.")]  # the encoder's hidden temporaries
    # its lock went with it: the lock file still names it, and holds nothing
    assert json.loads((work.parent / LOCK_NAME).read_text())["pid"] == proc.pid
    check_unlocked(str(work.parent))
    assert main(argv) == 0
    assert main([*argv[:2], str(tmp_path / "whole.mp4"), *argv[3:]]) == 0
    assert all(np.array_equal(a, b) for a, b in zip(decode(out), decode(tmp_path / "whole.mp4")))
    assert probe_video(out).n_frames == N
    # the killed run's hidden temporaries (.killed.mp4.partial-*) are swept by the rerun
    assert leftovers(tmp_path, "killed") == ["killed.mp4"]


def test_a_second_render_of_the_same_output_is_refused(clips, dreamer, reference, tmp_path, capsys):
    out = tmp_path / "frames"
    argv = ["video", str(clips["pan"]), str(out), *FAST]
    first = start_render(argv)
    try:
        wait_for_frames(first, tmp_path / "frames.ddwork" / "frames", 1)
        first.send_signal(signal.SIGSTOP)  # it holds the lock, and cannot finish while the second one tries
        try:
            assert main(argv) == 1
            # the render itself takes the lock too (the command only looks first, before loading the model)
            with pytest.raises(LockedError, match=rf"process {first.pid} on "):
                render_video(str(clips["pan"]), str(out), dreamer=dreamer)
        finally:
            first.send_signal(signal.SIGCONT)
        assert first.wait() == 0
    finally:
        first.kill()
        first.wait()
    one_error_line(capsys.readouterr().err, rf"^ddvideo: error: .*frames is being rendered by process {first.pid} on "
                                            r".*, since .*: wait for it to finish, or stop it and run the same command")
    rendered = decode(out)
    assert len(rendered) == N and all(np.array_equal(a, b) for a, b in zip(rendered, reference))
    assert leftovers(tmp_path, "frames") == ["frames"]


def test_work_folder_of_other_settings_is_refused(clips, dreamer, tmp_path, capsys):
    out = tmp_path / "frames"
    with pytest.raises(KeyboardInterrupt):
        render_video(str(clips["pan"]), str(out), dreamer=dreamer, progress=Interrupt(2))
    # the message names each setting that differs, old -> new
    with pytest.raises(DDVideoError, match=r"work folder .*frames\.ddwork holds frames of a render with other settings "
                                           r"\(flow\.blend 0\.0 -> 0\.9\): delete it"):
        render_video(str(clips["pan"]), str(out), dreamer=dreamer, flow=FlowSettings(blend=0.9))
    code, err = run_cli(capsys, clips["pan"], out, *FAST, "--iterations", "2")
    assert code == 1
    one_error_line(err, r"^ddvideo: error: work folder .*other settings \(.*dream\.iterations 1 -> 2[;)]")
    code, err = run_cli(capsys, clips["pan"], out, *FAST, "--recipe", "tutorial")  # the ascent is recorded too
    assert code == 1
    one_error_line(err, r'other settings \(.*dream\.recipe "cover" -> "tutorial"[;)]')
    assert not out.exists()


def test_a_clip_in_pieces_continues_one_chain(clips, dreamer, reference, tmp_path):
    """Pieces that each continue the one before, from its last frame and what its work folder kept (the strength
    the chain holds), make the frames of one uninterrupted render; without what it kept, a piece holds the strength
    of the last frame instead, and the chain drifts from the seam on."""
    def pieces(chained: bool) -> list[np.ndarray]:
        frames, previous, chain = [], None, None
        for k, (first, stop) in enumerate([(0, 8), (8, 16), (16, N)]):
            out, work = tmp_path / f"{chained}-{k}", tmp_path / f"{chained}-{k}.ddwork"
            render_video(str(clips["pan"]), str(out) + "/", dreamer=dreamer, first=first, stop=stop,
                         previous=previous, chain=chain if chained else None,
                         run=RunSettings(work_dir=str(work), keep_work=True))
            frames += decode(out)
            previous, chain = frames[-1], kept_state(str(work))
        return frames

    chained = pieces(True)
    assert len(chained) == N and all(np.array_equal(a, b) for a, b in zip(chained, reference))
    assert not np.array_equal(pieces(False)[-1], reference[-1])


def test_failure_before_the_first_frame_leaves_no_work_folder(clips, dreamer, tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(DDVideoError, match="too small for this model"):
        render_video(str(clips["pan"]), str(out), dreamer=dreamer, clip=ClipSettings(max_size=32))
    assert leftovers(tmp_path, "x") == []


def test_too_small_frame_error_names_the_frame_the_user_asked_for(clips, dreamer, tmp_path, capsys):
    """Aligned video frames are dreamed on a canvas a grid step larger; the error speaks of the frame."""
    code, err = run_cli(capsys, clips["pan"], tmp_path / "o.mp4", *FAST, "--max-size", "24", "--align")
    assert code == 1
    line = one_error_line(err, r"frame 24x18 is too small for this model and objective: both sides must be at least "
                               r"\d+ px; use a larger image \(or a larger --max-size, if one was given\)")
    minimum = int(re.search(r"at least (\d+) px", line)[1])
    assert "40x34" not in line and 18 < minimum < 43  # the canvas is never named; the frame needs less than it
    # so too where a chain is continued, whose previous frame is laid bare before any dream
    with pytest.raises(SettingsError, match=r"frame 24x18 is too small for this model") as caught:
        render_video(str(clips["pan"]), str(tmp_path / "c") + "/", dreamer=dreamer,
                     flow=FlowSettings(align=True), clip=ClipSettings(max_size=24), first=2,
                     previous=np.zeros((18, 24, 3), np.uint8))
    assert "40x34" not in str(caught.value)
    # and the minimum is true: the smallest frame of the clip's shape with both sides at least that renders
    short = minimum + minimum % 2  # the reader keeps sizes even
    code, err = run_cli(capsys, clips["pan"], tmp_path / "ok.mp4", *FAST, "--max-size", str(math.ceil(short * W / H)),
                        "--end", "0.2", "--align")
    assert (code, err) == (0, [])
    info = probe_video(tmp_path / "ok.mp4")
    assert min(info.width, info.height) == short


def test_resume_from_another_folder_with_a_relative_path(clips, dreamer, tmp_path, monkeypatch):
    """The source is recorded by its absolute path: `cd` elsewhere and name it differently, and the render resumes."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        render_video(os.path.relpath(clips["pan"]), "../out.mp4", dreamer=dreamer, progress=Interrupt(3))
    kept = len(os.listdir(tmp_path / "out.mp4.ddwork" / "frames"))
    monkeypatch.chdir(tmp_path)
    summary = render_video(os.path.relpath(clips["pan"]), "out.mp4", dreamer=dreamer)
    assert kept >= 3 and (summary.frames, summary.dreamed) == (N, N - kept)


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad(clips, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.mp4").write_text("not a video\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=12:duration=1", "-frames:v", "0", str(d / "zero.mp4"))
    (d / "file").write_text("a file, not a folder\n")
    return {"missing": d / "nope.mp4", "text": d / "notes.mp4", "zero": d / "zero.mp4", "file": d / "file"}


@pytest.mark.parametrize(
    ("case", "output", "extra", "message"),
    [
        ("missing", "o.mp4", [], "input not found: .*nope.mp4"),
        ("text", "o.mp4", [], "not a readable video: .*notes.mp4"),
        ("zero", "o.mp4", [], "not a readable video: .*zero.mp4"),
        ("pan", "o.xyz", [], "unknown extension '.xyz'"),
        ("pan", "nodir/o.mp4", [], "output folder does not exist: .*nodir"),
        ("pan", "FILE/o.mp4", [], "output folder .*file is a file, not a folder"),
        ("pan", "/proc/o.mp4", [], r"output folder /proc is not writable \(no files can be made there\)"),
        ("pan", "o.mp4", ["--work-dir", "/proc/w"], "work folder /proc/w cannot be created: /proc is not writable"),
        ("pan", "o.mp4", ["--work-dir", "FILE/w"], "work folder .*file/w cannot be created: .*file is a file"),
        ("pan", "o.mp4", ["--start", "5"], "start 5s is past the end of .*pan.mp4, which is 2.00s long"),
        ("pan", "o.mp4", ["--end", "0"], r"--end \(0.0\) must be after --start"),
        ("pan", "o.mp4", ["--blend", "2"], r"--blend 2.0 is out of range; use a value in \[0, 1\]"),
    ],
)
def test_bad_input_is_one_error_line(clips, bad, tmp_path, capsys, case, output, extra, message):
    source = clips.get(case) or bad[case]
    out = tmp_path / output.replace("FILE", str(bad["file"]))
    code, err = run_cli(capsys, source, out, *FAST, *(arg.replace("FILE", str(bad["file"])) for arg in extra))
    assert code == 1
    one_error_line(err, message)
    assert not out.exists() and not Path(str(out) + ".ddwork").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".o.", "o."))]


def test_truncated_video_renders_what_decodes_with_a_warning(clips, tmp_path, capsys):
    data = clips["pan"].read_bytes()  # VideoWriter puts the index first (faststart), so a cut file still opens
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, cut, out, *FAST)
    assert code == 0 and len(err) == 1, err
    assert re.match(r"ddvideo: warning: video ended early at frame (\d+) \(t=[\d.]+s\) of .*cut.mp4: .*truncated", err[0])
    decoded = int(re.search(r"frame (\d+)", err[0])[1])
    assert 0 < decoded < N and probe_video(out).n_frames == decoded
    stub = tmp_path / "stub.mp4"
    stub.write_bytes(data[:2000])  # the index and not one whole frame
    code, err = run_cli(capsys, stub, tmp_path / "stub-out.mp4", *FAST)
    assert code == 1
    one_error_line(err)
    assert leftovers(tmp_path, "stub-out") == []


# ---------------------------------------------------------------- metrics


def test_metrics_command(clips, reference, tmp_path, capsys):
    out = write_clip(tmp_path / "dreamed.mp4", reference)
    assert main(["metrics", str(clips["pan"]), str(out)]) == 0
    printed = capsys.readouterr()
    # flicker is never printed alone: sharpness and strength stand beside it
    assert printed.err == "" and re.match(r"E_warp \d+\.\d{6}\nsharpness \d+\.\d\d \(source \d+\.\d\d\)\n"
                                          r"strength \d+\.\d\d\nburn \d+\.\d\d %.*\npixel coverage 0\.\d{3} .*\n"
                                          r"structure [01]\.\d{4}\n$", printed.out), printed.out
    expected = warping_error(decode(clips["pan"]), decode(out))
    assert float(printed.out.split()[1]) == pytest.approx(expected, abs=1e-6)
    dreamed, source = decode(out), decode(clips["pan"])
    strength = np.mean([np.abs(d.astype(float) - s).mean() for d, s in zip(dreamed, source)])
    assert float(printed.out.split("\n")[2].split()[1]) == pytest.approx(strength, abs=0.01)
    assert main(["metrics", str(clips["pan"]), str(clips["pan"])]) == 0  # the source against itself: steady
    # measured 0.00082 for the source, 0.00157 for this faint dream (FAST settings, the default recipe; 0.00237
    # before the chain's first frame was capped as its carried frames are)
    assert float(capsys.readouterr().out.split()[1]) < expected / 1.5
    for argv in ([str(clips["pan"]), str(clips["silent"])], [str(clips["pan"]), str(tmp_path / "nope.mp4")]):
        assert main(["metrics", *argv]) == 1
        one_error_line(capsys.readouterr().err)
    # a render of part of the clip, measured against the source read the same way
    part = write_clip(tmp_path / "part.mp4", reference[6:18])
    assert main(["metrics", str(clips["pan"]), str(part)]) == 1
    one_error_line(capsys.readouterr().err, r"the output clip ends after 12 frames .* \(--start, --end, --fps\)$")
    assert main(["metrics", str(clips["pan"]), str(part), "--start", str(6 / FPS), "--end", str(18 / FPS)]) == 0
    assert float(capsys.readouterr().out.split()[1]) == pytest.approx(
        warping_error(decode(clips["pan"])[6:18], decode(part)), abs=1e-6)


def test_metrics_of_a_still_in_pixels_and_in_the_networks_eyes(inception, tmp_path, capsys):
    from ddvideo.metrics import burn, objective_gain, pixel_coverage
    from ddvideo.objective import objective_map

    source = textured_image(112, 144, seed=5)
    out = source.copy()
    out[30:60, 40:90] = (255, 0, 255)  # one patch pushed far: a burn, in one spot
    write_image(str(tmp_path / "source.png"), source), write_image(str(tmp_path / "out.png"), out)
    argv = ["metrics", str(tmp_path / "source.png"), str(tmp_path / "out.png")]
    assert main([*argv, "--model", "inception_v3", "--weights", "none", "--layers", SMALL_LAYERS]) == 0
    printed = capsys.readouterr().out
    value = dict(re.match(r"([A-Za-z_ ]+?) x?([\d.]+)", line).groups() for line in printed.splitlines())
    assert "E_warp" not in value  # a still has no flicker
    assert float(value["burn"]) == pytest.approx(100 * burn(out, source), abs=0.005) and float(value["burn"]) > 3
    assert float(value["pixel coverage"]) == pytest.approx(pixel_coverage(out, source), abs=5e-4)
    assert float(value["pixel coverage"]) < 0.2  # the change sits in one spot
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS))
    gain = objective_gain(objective_map(dreamer, out), objective_map(dreamer, source))
    assert float(value["objective gain"]) == pytest.approx(gain, abs=0.005)
    assert main(argv) == 0 and "objective gain" not in capsys.readouterr().out  # the network's view needs --model
    assert main([*argv, "--end", "1"]) == 1
    one_error_line(capsys.readouterr().err, "pick a part of a source clip; drop them for a still")
    assert main(["metrics", str(tmp_path / "source.png"), str(tmp_path / "clip.mp4")]) == 1
    one_error_line(capsys.readouterr().err, "a still with its source picture or a clip with its source clip")


def test_encoding_options_may_change_on_resume_and_user_work_dir_is_kept(tmp_path, inception):
    """--crf changes only the encoding: a resume accepts it; a user's own work folder keeps its other files."""
    from ddvideo.dream import Dreamer, DreamSettings
    from ddvideo.media import VideoWriter
    from ddvideo.render import OutputSettings, RunSettings
    from ddvideo.video import render_video
    from conftest import SMALL_LAYERS, textured_image

    clip = str(tmp_path / "clip.mp4")
    with VideoWriter(clip, fps=12, size=(112, 112)) as writer:
        for i in range(4):
            writer.write(textured_image(112, 112, seed=i))
    work = tmp_path / "mine"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1))
    run = RunSettings(work_dir=str(work))

    def stop_after_two(index, total, loss):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(clip, str(tmp_path / "out.mp4"), dreamer=dreamer, run=run, progress=stop_after_two)
    summary = render_video(clip, str(tmp_path / "out.mp4"), dreamer=dreamer, run=run, out=OutputSettings(crf=30))
    assert summary.frames == 4 and summary.dreamed < 4
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
