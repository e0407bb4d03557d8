"""Frame timing of awkward clips: variable frame rate, late first timestamps and edit lists, with audio in step.

The clips are time-coded: frame n of a 30 fps source is flat grey of luma 16 + 3 n (coded losslessly), so each
frame read back names its source time n / 30, and the audio is silent until a tone starts at 1 s. A render that
keeps sound and picture in step puts the tone's onset on the frame coded 1.0 s.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_LAYERS
from ddvideo.cli import main
from ddvideo.media import VideoReader, ffmpeg_exe, probe_video

W, H = 160, 120  # small, but over the mixed2/mixed3 objective's minimum once the grid margin is added
RATE = 30
LEVELS_PER_FRAME = 3 * 255 / 219  # luma 16 + 3 n reads back as RGB grey 3 n * 255 / 219
# --step 0 and --blend 1: every frame is its source frame "dreamed" without change, so the time code survives
KEEP = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "1", "--step", "0",
        "--blend", "1", "--flow", "none", "--crf", "12", "-q"]
GAPPY = r"lt(mod(n\,10)\,6)+eq(n\,59)"  # 6 frames of every 10, and the last: 37 of 60, a 2 s clip at 18.5 fps


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def timecoded(path: Path, *, seconds: float = 2.0, keep: str | None = None, audio: bool = True,
              extra: tuple[str, ...] = ()) -> Path:
    """A time-coded clip at RATE fps (only the frames `keep` selects, at their own times: variable rate)."""
    video = f"color=c=black:s={W}x{H}:r={RATE}:d={seconds},geq=lum='16+3*N':cb=128:cr=128"
    args = ["-f", "lavfi", "-i", video]
    if audio:
        tone = rf"aevalsrc='0.5*sin(2*PI*440*t)*gte(t\,1)':s=48000:d={seconds}"
        args += ["-f", "lavfi", "-i", tone, "-c:a", "aac"]
    if keep:
        args += ["-vf", f"select='{keep}'", "-fps_mode", "vfr"]
    ffmpeg(*args, "-c:v", "libx264", "-qp", "0", "-g", "15", "-pix_fmt", "yuv420p", *extra, str(path))
    return path


def times(path: Path, **options) -> list[float]:
    """The time code of each frame the reader delivers: the time of the source frame it shows."""
    with VideoReader(path, **options) as reader:
        return [round(float(frame.mean()) / LEVELS_PER_FRAME) / RATE for frame in reader]


def audio(path: Path, rate: int = 8000) -> np.ndarray:
    """The audio track on the file's timeline: silence before a track that starts after 0 s."""
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                           "-af", "aresample=async=1:first_pts=0", "-ar", str(rate), "-f", "f32le", "-"],
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.float32)


def onset(samples: np.ndarray, rate: int = 8000) -> float:
    """Seconds until the tone starts."""
    return float(np.flatnonzero(np.abs(samples) > 0.1)[0]) / rate


def check_in_step(output: Path, *, tone_at: float, tone_code: float = 1.0, sound_lacks: float = 0.0) -> None:
    """The audio is as long as the video (to 0.1 s; less what the source lacks under its video), its tone starts
    at `tone_at`, and the frame on screen then is the one the source showed with it, coded `tone_code` (to a
    frame)."""
    info = probe_video(output)
    sound = audio(output)
    assert len(sound) / 8000 == pytest.approx(info.n_frames / info.fps - sound_lacks, abs=0.1)
    heard = onset(sound)
    assert heard == pytest.approx(tone_at, abs=1 / RATE)
    assert times(output)[int(heard * info.fps + 1e-6)] == pytest.approx(tone_code, abs=1.3 / RATE)


def render(capsys, source: Path, output: Path, *extra: str) -> list[str]:
    code = main(["video", str(source), str(output), *KEEP, *extra])
    err = capsys.readouterr().err.splitlines()
    assert code == 0, err
    return err


@pytest.fixture(scope="module")
def vfr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return timecoded(tmp_path_factory.mktemp("vfr") / "vfr.mp4", keep=GAPPY)


def shown(t: float) -> float:
    """The time code of the GAPPY source frame on screen at t seconds."""
    kept = [n for n in range(60) if n % 10 < 6 or n == 59]
    return max(n for n in kept if n <= round(t * RATE, 6)) / RATE


# ---------------------------------------------------------------- variable frame rate


def test_probe_reads_a_variable_rate_at_its_nominal_rate(vfr: Path, tmp_path: Path) -> None:
    info = probe_video(vfr)
    assert info.variable and info.n_frames == 37
    assert info.mean_fps == pytest.approx(18.5, abs=0.01) and info.duration == pytest.approx(2.0, abs=1e-3)
    assert info.fps == RATE  # the rate the frames are spaced at where none is missing
    steady = probe_video(timecoded(tmp_path / "steady.mp4", audio=False))
    assert not steady.variable and steady.fps == steady.mean_fps == RATE and steady.n_frames == 60


def test_nominal_rate_comes_from_the_frame_spacing(vfr: Path, tmp_path: Path) -> None:
    """Matroska stores no frame rate: ffmpeg's guess (tbr) for this clip in mkv is its mean, 18.5 fps."""
    mkv = tmp_path / "vfr.mkv"
    ffmpeg("-i", str(vfr), "-c", "copy", str(mkv))
    info = probe_video(mkv)
    assert info.variable and info.fps == RATE and info.n_frames == 37
    assert times(mkv) == pytest.approx([shown(k / RATE) for k in range(60)], abs=0.3 / RATE)


def test_reader_repeats_the_frame_on_screen_through_a_gap(vfr: Path) -> None:
    coded = times(vfr)
    assert len(coded) == 60  # 2 s at 30 fps, as long as the source
    assert coded == pytest.approx([shown(k / RATE) for k in range(60)], abs=0.3 / RATE)


def test_reader_cuts_a_variable_rate_clip_at_the_given_times(vfr: Path) -> None:
    coded = times(vfr, start=0.2, end=1.2)  # 0.2 s lies in a gap: the frame of 0.167 s is still on screen
    assert len(coded) == 30
    assert coded == pytest.approx([shown(0.2 + k / RATE) for k in range(30)], abs=0.3 / RATE)


def test_a_sparse_clip_is_read_at_its_mean_rate(tmp_path: Path) -> None:
    """Three frames of every ten: the nominal 30 fps would dream more than twice the frames the clip has."""
    clip = timecoded(tmp_path / "sparse.mp4", audio=False, keep=r"lt(mod(n\,10)\,3)+eq(n\,59)")
    info = probe_video(clip)
    assert info.variable and info.fps == pytest.approx(info.mean_fps) and info.fps < RATE / 2
    with VideoReader(clip) as reader:
        assert len(list(reader)) == reader.n_frames == round(info.duration * info.fps)


def test_variable_rate_render_keeps_duration_and_audio_in_step(vfr: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.mp4"
    main(["video", str(vfr), str(out), *KEEP[:-1]])  # with the progress bar, which names the rate
    assert "30 fps (constant; the source's varies, 18.5 on average)" in capsys.readouterr().err
    info = probe_video(out)
    assert info.fps == RATE and not info.variable
    assert info.duration == pytest.approx(probe_video(vfr).duration, abs=1 / RATE)
    check_in_step(out, tone_at=1.0)


def test_variable_rate_render_with_start_and_end(vfr: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cut.mp4"
    render(capsys, vfr, out, "--start", "0.5", "--end", "1.5")
    info = probe_video(out)
    assert info.n_frames == 30 and info.duration == pytest.approx(1.0, abs=1 / RATE)
    check_in_step(out, tone_at=0.5)
    assert times(out)[0] == pytest.approx(shown(0.5), abs=0.3 / RATE)


# ---------------------------------------------------------------- late first timestamps, edit lists


@pytest.fixture(scope="module")
def late(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, float]]:
    """name -> (clip, frames it shows, time code of its first frame)."""
    d = tmp_path_factory.mktemp("late")
    whole = timecoded(d / "whole.mp4")
    ffmpeg("-i", str(whole), "-c", "copy", "-output_ts_offset", "1.5", str(d / "offset.mp4"))
    ffmpeg("-i", str(whole), "-c", "copy", "-output_ts_offset", "1.5", str(d / "offset.ts"))
    # the video starts 0.4 s after the audio: its first frame goes with the audio's 0.4 s
    ffmpeg("-itsoffset", "0.4", "-i", str(whole), "-i", str(whole), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(d / "late video.mkv"))
    # the audio starts 0.4 s after the video
    ffmpeg("-i", str(whole), "-itsoffset", "0.4", "-i", str(whole), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(d / "late audio.mkv"))
    # a cut by stream copy: it starts at the keyframe of 0.5 s, and an edit list hides the frames before 0.7 s
    ffmpeg("-ss", "0.7", "-i", str(whole), "-c", "copy", str(d / "cut.mp4"))
    return {name: (d / name, 39 if name == "cut.mp4" else 60, 0.7 if name == "cut.mp4" else 0.0)
            for name in ("offset.mp4", "offset.ts", "late video.mkv", "late audio.mkv", "cut.mp4")}


@pytest.mark.parametrize(("name", "ext"), [("offset.mp4", ".mp4"), ("offset.ts", ".mp4"), ("late video.mkv", ".mp4"),
                                           ("late audio.mkv", ".webm"), ("cut.mp4", ".mp4")])
def test_late_first_timestamp_keeps_frames_duration_and_audio(late, name: str, ext: str, tmp_path: Path,
                                                              capsys) -> None:
    clip, frames, first = late[name]
    info = probe_video(clip)
    assert info.n_frames == frames and info.duration == pytest.approx(frames / RATE, abs=1e-3)
    assert times(clip)[0] == pytest.approx(first, abs=0.3 / RATE)
    out = tmp_path / f"out{ext}"
    render(capsys, clip, out)
    assert probe_video(out).n_frames == frames
    if name == "late video.mkv":  # the tone, 1 s into the audio, goes with the frame coded 0.6 s
        check_in_step(out, tone_at=0.6, tone_code=0.6, sound_lacks=0.4)
    elif name == "late audio.mkv":  # ... with the frame coded 1.4 s; the audio ends with the video (re-encoded)
        check_in_step(out, tone_at=1.4, tone_code=1.4)
    else:
        check_in_step(out, tone_at=1.0 - first)
