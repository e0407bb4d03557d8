"""Motion and music: scheduled zooms measured frame to frame, beats of a click track, the soundtrack of a zoom,
resume with schedules, loops, previews and plots of schedules."""

from __future__ import annotations

import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SMALL_LAYERS, Interrupt, one_error_line, textured_image
from ddvideo.audio import analyse, load_music
from ddvideo.cli import main
from ddvideo.dream import Dreamer, DreamSettings
from ddvideo.errors import DDVideoError
from ddvideo.media import VideoReader, probe_video, read_image, write_image
from ddvideo.media.probe import read_header
from ddvideo.schedule import DreamSchedule, ScheduleError
from ddvideo.zoom import ZoomSettings, render_zoom

SIZE = (128, 112)
FAST = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "1", "-q"]


@pytest.fixture(scope="module")
def dreamer(inception):
    return Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1))


def click_track(path: Path, *, seconds: float, bpm: float = 120.0, first: float = 0.25, rate: int = 44100) -> np.ndarray:
    """A WAV of short 1 kHz clicks at `bpm` from `first` seconds on; returns the click times."""
    samples = np.zeros(int(seconds * rate), np.float32)
    burst = np.arange(int(0.02 * rate))
    burst = np.sin(2 * np.pi * 1000 * burst / rate) * np.exp(-burst / (0.004 * rate))
    clicks = np.arange(first, seconds - 0.05, 60.0 / bpm)
    for click in clicks:
        start = int(round(click * rate))
        samples[start:start + burst.size] += burst[: samples.size - start]
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(rate)
        f.writeframes((samples * 0.8 * 32767).astype(np.int16).tobytes())
    return clicks


def frames_of(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [read_image(p) for p in sorted(path.iterdir())]
    with VideoReader(path) as reader:
        return list(reader)


def measured_scale(before: np.ndarray, after: np.ndarray) -> float:
    """The magnification from one frame to the next, by ECC image alignment (an affine warp) of the grey frames."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in (before, after)]
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    _, warp = cv2.findTransformECC(grey[1], grey[0], warp, cv2.MOTION_AFFINE, criteria, None, 5)
    return 1.0 / float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))  # the warp maps the later frame onto the earlier


# ---------------------------------------------------------------- scheduled camera


def test_a_scheduled_zoom_follows_its_schedule_frame_to_frame(dreamer, tmp_path):
    photo = tmp_path / "in.png"
    write_image(photo, textured_image(112, 128, seed=5))
    zoom = ZoomSettings(size=SIZE, frames=9, zoom="0:(1.0), 4:(1.08), 8:(1.02)")
    render_zoom(str(photo), str(tmp_path / "out"), dreamer=dreamer, zoom=zoom)
    frames = frames_of(tmp_path / "out")
    expected = [1.0, 1.02, 1.04, 1.06, 1.08, 1.065, 1.05, 1.035, 1.02]
    scales = [measured_scale(a, b) for a, b in zip(frames[:-1], frames[1:])]
    assert scales == pytest.approx(expected[1:], abs=0.006), scales


def test_dream_every_and_rotation_follow_schedules():
    zoom = ZoomSettings(frames=12, rotate="0:(0), 1s:(3)", fps=4.0, dream_every="0:(1), 6:(3)")
    camera = zoom.camera()
    assert camera.rotate == pytest.approx([0, 0.75, 1.5, 2.25, 3, 3, 3, 3, 3, 3, 3, 3])
    # K rounds to 1, 1, 2, 2, 2, 3, 3...: a frame is dreamed once K frames have passed since the last dreamed one
    assert np.flatnonzero(camera.dreamed).tolist() == [0, 1, 3, 6, 9]


@pytest.mark.parametrize(("schedule", "ok"), [
    ("0:(1.04), 20:(1.0)", False),  # ends at 1.0, starts at 1.04: a jump at the seam
    ("0:(1.04), 10:(1.0), 20:(1.04)", True),  # ends where it starts
    ("1.03+0.01*sin(2*pi*t/20)", True),  # one period: the seam is a step like any other
])
def test_a_loop_refuses_a_schedule_that_does_not_end_where_it_starts(schedule, ok):
    zoom = ZoomSettings(frames=20, zoom=schedule, loop=True)
    if ok:
        zoom.camera()
    else:
        with pytest.raises(ScheduleError, match=r"--loop: --zoom ends at 1.002 \(frame 19\) but starts at 1.04; a loop jumps"):
            zoom.camera()


def test_a_scheduled_loop_closes(dreamer, tmp_path):
    from ddvideo.zoom import loop_seam

    zoom = ZoomSettings(size=SIZE, frames=16, loop=True, zoom="0:(1.06), 8:(1.02), 16:(1.06)", rotate="sin(2*pi*t/16)")
    render_zoom(None, str(tmp_path / "loop"), dreamer=dreamer, zoom=zoom)
    seam, median = loop_seam(frames_of(tmp_path / "loop"))
    assert seam <= 1.5 * median, (seam, median)


# ---------------------------------------------------------------- music


def test_a_click_track_gives_a_beat_at_every_click_and_nowhere_else(tmp_path):
    fps = 24.0
    clicks = click_track(tmp_path / "clicks.wav", seconds=6.0)  # 120 BPM
    music = load_music(str(tmp_path / "clicks.wav"))
    features = analyse(music, frames=music.frames(fps), fps=fps)
    beat = features.values["beat"]
    peaks = np.flatnonzero(beat == 1.0)
    expected = np.rint(clicks * fps).astype(int)
    assert len(peaks) == len(expected) and np.all(np.abs(peaks - expected) <= 1), (peaks, expected)
    assert features.tempo == pytest.approx(120, rel=0.02)
    # 1 on the beat, down to 0 within 0.2 s, and every feature in 0-1
    assert beat[expected[3] + round(0.2 * fps) + 1] == 0 and 0 < beat[expected[3] + 2] < 1
    for name, values in features.values.items():
        assert values.shape == (music.frames(fps),) and values.min() >= 0 and values.max() == pytest.approx(1), name


def test_a_zoom_carries_its_music_and_lasts_as_long(tmp_path):
    click_track(tmp_path / "clicks.wav", seconds=2.0)
    out = tmp_path / "zoom.mp4"
    argv = ["zoom", str(out), *FAST, "--size", "128x112", "--fps", "4", "--audio", str(tmp_path / "clicks.wav"),
            "--zoom", "1.01+0.05*beat", "--strength", "0.5+rms", "--layer-weights", "mixed2=0:(1), 1s:(0)"]
    assert main(argv) == 0
    info = probe_video(out)
    assert info.n_frames == 8 and read_header(out).audio_codec == "aac"
    assert read_header(out).duration == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.wav", "zoom.mp4"]


def test_the_music_sets_the_frames_each_beat_moves(tmp_path, dreamer):
    click_track(tmp_path / "clicks.wav", seconds=2.0)
    music = load_music(str(tmp_path / "clicks.wav"))
    zoom = ZoomSettings(size=SIZE, frames=music.frames(8.0), fps=8.0, zoom="1+0.1*beat")
    camera = zoom.camera(audio=analyse(music, frames=zoom.frames, fps=zoom.fps).values)
    assert np.flatnonzero(np.isclose(camera.zoom, 1.1)).tolist() == [2, 6, 10, 14]  # clicks at 0.25 s + k/2


# ---------------------------------------------------------------- resume, preview, plot, bad input


def test_resume_with_schedules_is_frame_exact_and_a_changed_schedule_is_refused(dreamer, tmp_path):
    zoom = ZoomSettings(size=SIZE, frames=8, zoom="0:(1.02), 7:(1.08)", pan=("t/4", 0), dream_every="1+t/4")
    schedule = DreamSchedule(strength="0:(0.5), 7:(2)", layer_weights="mixed3=1+t")
    render_zoom(None, str(tmp_path / "whole"), dreamer=dreamer, zoom=zoom, schedule=schedule)
    out = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        render_zoom(None, out, dreamer=dreamer, zoom=zoom, schedule=schedule, progress=Interrupt(4))
    changed = DreamSchedule(strength="0:(0.5), 7:(3)", layer_weights="mixed3=1+t")
    with pytest.raises(DDVideoError, match=r'schedule.strength "0:\(0.5\), 7:\(2\)" -> "0:\(0.5\), 7:\(3\)"'):
        render_zoom(None, out, dreamer=dreamer, zoom=zoom, schedule=changed)
    render_zoom(None, out, dreamer=dreamer, zoom=zoom, schedule=schedule)
    whole, resumed = frames_of(tmp_path / "whole"), frames_of(Path(out))
    assert len(resumed) == 8 and all(np.array_equal(a, b) for a, b in zip(whole, resumed))
    assert dreamer.term_weights.numpy() == pytest.approx([1.0, 2.0])  # the objective's own weights are back


def test_a_preview_follows_the_schedules(tmp_path):
    photo, out = tmp_path / "in.png", tmp_path / "frames"
    write_image(photo, textured_image(112, 128, seed=3))
    argv = ["zoom", str(photo), f"{out}/", *FAST, "--frames", "8", "--fps", "4", "--size", "128x112",
            "--pan-x", "0:(0), 4:(6)", "--zoom", "1.01+0.01*t", "--strength", "0:(2), 1s:(0.5)"]
    assert main([*argv, "--preview", "1"]) == 0
    assert not out.exists() and main(argv) == 0
    preview, whole = frames_of(tmp_path / "frames.preview"), frames_of(out)
    assert len(preview) == 4 and all(np.array_equal(a, b) for a, b in zip(preview, whole))  # at the same size


def test_plot_draws_the_schedules_and_the_music_without_rendering(tmp_path):
    click_track(tmp_path / "clicks.wav", seconds=2.0)
    plot, out = tmp_path / "plan.png", tmp_path / "z.mp4"
    argv = ["zoom", str(out), *FAST, "--size", "128x112", "--audio", str(tmp_path / "clicks.wav"),
            "--zoom", "0:(1.04), 1s:(1.0+0.05*beat)", "--rotate", "sin(t/4)", "--plot", str(plot)]
    assert main(argv) == 0
    image = read_image(plot)
    assert image.shape[1] == 1000 and image.shape[0] > 3 * 84  # zoom, rotate and the music
    assert not out.exists() and not Path(str(out) + ".ddwork").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--zoom", "0:(1.04), 48(1.0)"], r"--zoom: expected a keyframe at character 11 of '0:\(1.04\), 48\(1.0\)'"),
    (["--zoom", "1+beat"], r"--zoom uses beat, which follows the music: give --audio FILE"),
    (["--zoom", "0:(1.04), 3:(0)"], r"--zoom is 0 at frame 3 \(0.12 s\); it must be a positive scale"),
    (["--strength", "1-t"], r"--strength is 0 at frame 1 \(0.04 s\); it must be a positive number"),
    (["--rotate", "t/nope"], r"--rotate: unknown name 'nope' at character 3"),
    (["--dream-every", "0:(1), 4:(0)"], r"--dream-every is 0.5 at frame 2 \(0.08 s\); it must be 1 \(every frame\) or more"),
    (["--pan-x", "0:(0), 2:(300)"], r"--pan 300,0 \(at frame 2\) moves the view by a whole 128x112 frame"),
    (["--layer-weights", "mixed5=1"], r"--layer-weights names mixed5, which is not in the objective"),
    (["--audio", "NOTAUDIO"], r"has no audio; give a file with sound"),
    (["--audio", "BROKEN"], r"cannot read the audio of .*broken\.mp3"),
    (["--loop", "--zoom", "0:(1.04), 4:(1.0)"], r"--loop: --zoom ends at 1 \(frame 4\) but starts at 1.04"),
])
def test_bad_schedules_and_music_are_one_error_line(tmp_path, capsys, args, message):
    photo, out = tmp_path / "in.png", tmp_path / "o.gif"
    write_image(photo, textured_image(112, 128, seed=3))
    (tmp_path / "broken.mp3").write_bytes(b"not an mp3 at all" * 100)
    args = [{"NOTAUDIO": str(photo), "BROKEN": str(tmp_path / "broken.mp3")}.get(a, a) for a in args]
    assert main(["zoom", str(photo), str(out), *FAST, "--frames", "5", *args]) == 1
    one_error_line(capsys.readouterr().err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp3", "in.png"]  # nothing partial


# ---------------------------------------------------------------- video, batch


@pytest.fixture(scope="module")
def clicking_clip(tmp_path_factory) -> Path:
    """12 frames of a texture panning 3 px a frame at 8 fps, with a 440 Hz tone as its sound."""
    from ddvideo.media import VideoWriter, ffmpeg_exe

    folder = tmp_path_factory.mktemp("clip")
    big = textured_image(112, 112 + 3 * 12, seed=3)
    with VideoWriter(folder / "silent.mp4", fps=8, size=(112, 112)) as writer:
        for t in range(12):
            writer.write(np.ascontiguousarray(big[:, 3 * t : 3 * t + 112]))
    click_track(folder / "clicks.wav", seconds=1.5)
    subprocess_run = __import__("subprocess").run
    subprocess_run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(folder / "silent.mp4"), "-f", "lavfi", "-t", "1.5",
                    "-i", "sine=frequency=440:sample_rate=44100", "-c:v", "copy", "-c:a", "aac",
                    str(folder / "tone.mp4")], check=True)
    return folder


def test_video_schedules_follow_the_clip_and_other_music(clicking_clip, dreamer):
    from ddvideo.flow import FlowSettings
    from ddvideo.video import video_schedules

    music = load_music(str(clicking_clip / "clicks.wav"))
    strengths, blends, weights = video_schedules(
        dreamer, FlowSettings(blend="0:(0), 1s:(0.5)"), DreamSchedule(strength="0.5+beat", layer_weights="mixed2=t"),
        music=music, features=None, frames=12, fps=8.0)
    assert np.flatnonzero(strengths == 1.5).tolist() == [2, 6, 10]  # the clicks, at 0.25 s + k/2
    assert blends == pytest.approx([0, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 5 / 16, 3 / 8, 7 / 16, 1 / 2, 1 / 2, 1 / 2, 1 / 2])
    assert weights[:, 0] == pytest.approx(np.arange(12)) and weights[:, 1] == pytest.approx(2.0)
    with pytest.raises(ScheduleError, match=r"--blend is 1.2 at frame 3 \(0.38 s\); it must be between 0 and 1"):
        video_schedules(dreamer, FlowSettings(blend="0.4*t"), DreamSchedule(), music=None, features=None, frames=12,
                        fps=8.0)


def test_a_video_dreams_to_its_own_beat_or_takes_other_music(clicking_clip, tmp_path):
    from ddvideo.media import read_audio

    clip = clicking_clip / "tone.mp4"
    own = tmp_path / "own.mp4"
    assert main(["video", str(clip), str(own), *FAST, "--strength", "0.5+onset", "--blend", "0:(0), 1s:(0.2)"]) == 0
    assert probe_video(own).n_frames == 12 and read_header(own).audio_codec == "aac"
    other = tmp_path / "other.mp4"
    assert main(["video", str(clip), str(other), *FAST, "--audio", str(clicking_clip / "clicks.wav"),
                 "--strength", "0.5+beat"]) == 0
    assert read_header(other).duration == pytest.approx(1.5, abs=0.1)
    sound = read_audio(other, sample_rate=8000)
    between = sound[int(0.45 * 8000):int(0.7 * 8000)]  # between two clicks: silence, where the tone would be loud
    assert np.sqrt(np.mean(between**2)) < 0.01 < np.sqrt(np.mean(read_audio(clip, sample_rate=8000) ** 2))


def test_a_video_schedule_without_sound_is_refused(clicking_clip, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    assert main(["video", str(clicking_clip / "silent.mp4"), str(out), *FAST, "--strength", "1+beat"]) == 1
    one_error_line(capsys.readouterr().err, r"silent\.mp4 has no audio; give a file with sound")
    assert not out.exists()


def test_batch_jobs_take_schedules_as_strings(tmp_path, clicking_clip):
    from ddvideo.batch import ManifestError, load_manifest

    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "clicks.wav").write_bytes((clicking_clip / "clicks.wav").read_bytes())
    manifest = tmp_path / "jobs.toml"
    manifest.write_text(f"""\
[defaults]
mode = "zoom"
weights = "none"
layers = "{SMALL_LAYERS}"
size = "128x112"

[[job]]
output = "a.mp4"
zoom = "0:(1.04), 2s:(1.0+0.04*beat)"
rotate = 0.5
audio = "music/clicks.wav"
layer_weights = "mixed2=0:(1), 1s:(0); mixed3=1+beat"

[[job]]
output = "b.mp4"
zoom = "0:(1.04), 48(1.0)"

[[job]]
output = "c.mp4"
strength = "1+beat"
""")
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    problems = caught.value.problems
    assert [p.split(": ", 2)[:2] for p in problems] == [[f"{manifest}:16", "job 2"], [f"{manifest}:18", "job 3"]]
    assert "--zoom: expected a keyframe at character 11" in problems[0]
    assert "a schedule follows the music (rms, onset, beat, bass or treble), but the job has no audio" in problems[1]
    manifest.write_text(manifest.read_text().replace("48(1.0)", "48:(1.0)").replace("1+beat", "1+t/8"))
    first, _, _ = load_manifest(manifest).jobs
    assert "--zoom=0:(1.04), 2s:(1.0+0.04*beat)" in first.argv and "--rotate=0.5" in first.argv
    assert f"--audio={tmp_path / 'music' / 'clicks.wav'}" in first.argv


def test_other_music_is_another_render(dreamer, tmp_path):
    click_track(tmp_path / "a.wav", seconds=1.0)
    click_track(tmp_path / "b.wav", seconds=1.0, bpm=90)
    zoom = ZoomSettings(size=SIZE, frames=4, fps=4.0, zoom="1.02+0.04*beat")
    out = str(tmp_path / "z")
    with pytest.raises(KeyboardInterrupt):
        render_zoom(None, out, dreamer=dreamer, zoom=zoom, music=load_music(str(tmp_path / "a.wav")),
                    progress=Interrupt(2))
    with pytest.raises(DDVideoError, match=r"audio.path .*a\.wav\" -> .*b\.wav\"; audio.sha256"):
        render_zoom(None, out, dreamer=dreamer, zoom=zoom, music=load_music(str(tmp_path / "b.wav")))


def test_plot_of_a_video_with_its_own_sound(clicking_clip, tmp_path):
    plot = tmp_path / "plan.png"
    argv = ["video", str(clicking_clip / "tone.mp4"), str(tmp_path / "o.mp4"), *FAST, "--strength", "0.5+rms",
            "--blend", "0:(0), 1s:(0.3)", "--plot", str(plot)]
    assert main(argv) == 0
    assert read_image(plot).shape[0] > 3 * 84 and sorted(p.name for p in tmp_path.iterdir()) == ["plan.png"]


def test_layer_weights_change_the_dream_frame_by_frame(dreamer, tmp_path):
    zoom = ZoomSettings(size=SIZE, frames=3, zoom=1.0)
    plain = render_zoom(None, str(tmp_path / "plain"), dreamer=dreamer, zoom=zoom)
    morph = DreamSchedule(layer_weights="mixed2=0:(1), 2:(0); mixed3=0:(2), 2:(0.5)")
    render_zoom(None, str(tmp_path / "morph"), dreamer=dreamer, zoom=zoom, schedule=morph)
    a, b = frames_of(tmp_path / "plain"), frames_of(tmp_path / "morph")
    assert plain.frames == 3 and np.array_equal(a[0], b[0])  # frame 0: the objective's own weights (1, 2)
    # frame 2: mixed3 alone; measured 0.15 with the default recipe, whose step is normalised per pixel, so the
    # weights change only the mix of the layers' gradients, not the step's size
    assert np.abs(a[2].astype(int) - b[2].astype(int)).mean() > 0.1
