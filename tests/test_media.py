"""Round trips of ddvideo.media on tiny clips made in a temp folder with the bundled ffmpeg."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from ddvideo.errors import InputError, OutputError, SettingsError
from ddvideo.media import (
    VideoInfo,
    VideoReader,
    VideoWriter,
    atomic_path,
    check_writable,
    ffmpeg_exe,
    probe_video,
    read_image,
    write_image,
)

H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


def make_clip(path: Path, *, size: str = "96x64", rate: int = 12, seconds: float = 1.0,
              audio: str | None = None, video: list[str] = H264) -> Path:  # fmt: skip
    """A testsrc clip (with a 440 Hz tone encoded as `audio` if given), made by ffmpeg directly."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
           "-f", "lavfi", "-t", str(seconds), "-i", f"testsrc=size={size}:rate={rate}"]  # fmt: skip
    if audio:
        cmd += ["-f", "lavfi", "-t", str(seconds), "-i", "sine=frequency=440:sample_rate=48000", "-c:a", audio]
    subprocess.run([*cmd, *video, str(path)], check=True, capture_output=True)
    return path


def grey_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Flat frames whose level encodes their index, so order survives lossy codecs."""
    return [np.full((height, width, 3), 20 + 20 * i, np.uint8) for i in range(n)]


def levels(frames: list[np.ndarray]) -> list[int]:
    return [round((float(f.mean()) - 20) / 20) for f in frames]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "plain": make_clip(d / "plain.mp4", seconds=2.0),  # 24 frames, no audio
        "aac": make_clip(d / "aac.mp4", audio="aac"),
        "ac3": make_clip(d / "ac3.mkv", audio="ac3"),
    }


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_image_round_trip(tmp_path: Path, ext: str) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    write_image(tmp_path / f"a{ext}", frame)
    back = read_image(tmp_path / f"a{ext}")
    assert back.dtype == np.uint8 and np.array_equal(back, frame)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_lossy_image_round_trip(tmp_path: Path, ext: str) -> None:
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    frame = np.stack(np.broadcast_arrays(ramp[None, :], ramp[::-1, None][:48], np.uint8(128)), axis=-1)
    write_image(tmp_path / f"a{ext}", frame)
    back = read_image(tmp_path / f"a{ext}")
    assert back.shape == (48, 64, 3)
    assert np.abs(back.astype(int) - frame).mean() < 3


def test_read_image_drops_alpha_and_expands_grey(tmp_path: Path) -> None:
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 50
    iio.imwrite(tmp_path / "rgba.png", rgba)
    iio.imwrite(tmp_path / "grey.png", np.full((8, 10), 77, np.uint8))
    iio.imwrite(tmp_path / "grey16.png", np.full((8, 10), 0x8000, np.uint16))
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [200, 0, 0]
    assert read_image(tmp_path / "grey.png")[0, 0].tolist() == [77, 77, 77]
    assert read_image(tmp_path / "grey16.png")[0, 0].tolist() == [128, 128, 128]
    assert read_image(tmp_path / "grey.png").shape == (8, 10, 3)


def test_read_image_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="not a readable image: .*notes.png"):
        read_image(tmp_path / "notes.png")


def test_write_image_is_atomic(tmp_path: Path) -> None:
    write_image(tmp_path / "out.png", np.zeros((4, 6, 3), np.uint8))
    write_image(tmp_path / "out.png", np.ones((4, 6, 3), np.uint8))  # replaces
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert read_image(tmp_path / "out.png").max() == 1
    with pytest.raises(SettingsError, match="uint8"):
        write_image(tmp_path / "out.png", np.zeros((4, 6, 3), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_fast_png_is_lossless_and_trades_size_for_speed(tmp_path: Path) -> None:
    frame = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    frame[:, :40] = 128  # half flat, half noise: something for the compressor to do
    write_image(tmp_path / "small.png", frame)
    write_image(tmp_path / "fast.png", frame, fast=True)
    assert np.array_equal(read_image(tmp_path / "fast.png"), frame)
    assert (tmp_path / "fast.png").stat().st_size > (tmp_path / "small.png").stat().st_size


def test_write_image_errors(tmp_path: Path) -> None:
    frame = np.zeros((4, 6, 3), np.uint8)
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "nope" / "out.png", frame)
    with pytest.raises(OutputError, match=r"unknown extension '\.xyz'.*\.png"):
        write_image(tmp_path / "out.xyz", frame)


def test_atomic_path_and_check_writable(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.mp4.partial-") and tmp.suffix == ".mp4"
        tmp.write_text("done")
    assert (tmp_path / "a.mp4").read_text() == "done"
    with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "a.mp4") as tmp:
        tmp.write_text("half")
        1 / 0
    assert (tmp_path / "a.mp4").read_text() == "done"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
    check_writable(tmp_path / "new.mp4")
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "new.mp4")


# ---------------------------------------------------------------- probing


def test_probe_with_and_without_audio(clips: dict[str, Path]) -> None:
    info = probe_video(clips["aac"])
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.fps, info.n_frames) == (96, 64, 12.0, 12)
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    plain = probe_video(clips["plain"])
    assert not plain.has_audio and plain.audio_codec is None and plain.n_frames == 24
    assert probe_video(clips["ac3"]).audio_codec == "ac3"


def test_probe_rejects_non_videos(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("hello")
    with pytest.raises(InputError, match=r"not a readable video: .*notes.mp4 \(ffmpeg: .+\)"):
        probe_video(tmp_path / "notes.mp4")
    write_image(tmp_path / "still.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="still image"):
        probe_video(tmp_path / "still.png")
    (tmp_path / "empty.mkv").write_bytes(b"")
    with pytest.raises(InputError, match="not a readable video"):
        probe_video(tmp_path / "empty.mkv")


# ---------------------------------------------------------------- reading


def test_reader_streams_all_frames(clips: dict[str, Path]) -> None:
    with VideoReader(clips["plain"]) as reader:
        assert (reader.width, reader.height, reader.fps, reader.n_frames) == (96, 64, 12.0, 24)
        frames = list(reader)
    assert reader.frames_read == 24 and reader.ended_early is None
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 and f.flags.writeable for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # testsrc moves


def test_reader_trims_start_and_end(clips: dict[str, Path]) -> None:
    full = list(VideoReader(clips["plain"]))
    reader = VideoReader(clips["plain"], start=0.5, end=1.5)
    frames = list(reader)
    assert reader.n_frames == len(frames) == 12
    assert np.abs(frames[0].astype(int) - full[6]).mean() < 1  # frame 6 is at t=0.5 s
    tail = VideoReader(clips["plain"], start=1.0)
    assert tail.n_frames == len(list(tail)) == 12


@pytest.mark.parametrize(("fps", "expected"), [(6, 12), (5, 10), (24, 48)])
def test_reader_resamples_fps(clips: dict[str, Path], fps: float, expected: int) -> None:
    reader = VideoReader(clips["plain"], fps=fps)
    assert reader.fps == fps and reader.n_frames == expected
    assert len(list(reader)) == expected


def test_reader_resamples_a_trimmed_range(clips: dict[str, Path]) -> None:
    reader = VideoReader(clips["plain"], start=0.3, end=1.4, fps=7)
    assert reader.n_frames == len(list(reader)) == 8


def test_reader_max_size_scales_the_long_side(clips: dict[str, Path]) -> None:
    reader = VideoReader(clips["plain"], max_size=48)
    frames = list(reader)
    assert (reader.width, reader.height) == (48, 32) and frames[0].shape == (32, 48, 3)
    big = VideoReader(clips["plain"], max_size=500)  # never upscales
    assert (big.width, big.height) == (96, 64)


def test_reader_crops_odd_sizes_to_even(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "odd.mp4", size="97x65", video=["-c:v", "libx264", "-pix_fmt", "yuv444p"])
    reader = VideoReader(clip)
    assert (reader.info.width, reader.info.height) == (97, 65)
    frames = list(reader)
    assert (reader.width, reader.height) == (96, 64) and frames[0].shape == (64, 96, 3) and len(frames) == 12
    assert VideoReader(clip, max_size=49).height % 2 == 0


@pytest.mark.parametrize(
    ("name", "rate", "video"),
    [
        ("a.mp4", 12, H264),
        ("a.mkv", 12, H264),
        ("a.webm", 12, ["-c:v", "libvpx-vp9", "-deadline", "realtime"]),
        ("a.avi", 12, ["-c:v", "mpeg4"]),
        ("a.mpg", 25, ["-c:v", "mpeg2video"]),  # MPEG-2 only takes broadcast rates
        ("a.mov", 12, H264),
    ],
)
def test_reader_reads_common_containers(tmp_path: Path, name: str, rate: int, video: list[str]) -> None:
    clip = make_clip(tmp_path / name, rate=rate, video=video)
    reader = VideoReader(clip)
    assert reader.info.fps == rate and reader.info.n_frames == rate
    assert len(list(reader)) == reader.n_frames == rate and reader.ended_early is None


def test_reader_start_past_the_end(clips: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"past the end .* 2\.00s long"):
        VideoReader(clips["plain"], start=5)
    with pytest.raises(SettingsError):
        VideoReader(clips["plain"], start=1, end=0.5)


def test_reader_stops_early_and_can_restart(clips: dict[str, Path]) -> None:
    with VideoReader(clips["plain"]) as reader:
        for i, _ in enumerate(reader):
            if i == 2:
                break
        assert reader.frames_read == 3
        assert len(list(reader)) == 24  # a fresh stream from the start


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_truncated_file_yields_what_decodes(tmp_path: Path, ext: str) -> None:
    full = tmp_path / f"full{ext}"
    with VideoWriter(full, fps=12, size=(96, 64)) as writer:
        for frame in np.random.default_rng(1).integers(0, 256, (24, 64, 96, 3), dtype=np.uint8):
            writer.write(frame)  # noise: big frames spread over the file
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut)
    frames = list(reader)
    assert 0 < len(frames) < 24 and reader.frames_read == len(frames)
    whole = list(VideoReader(full))
    assert all(np.array_equal(a, b) for a, b in zip(frames, whole))  # what it yields are the file's own frames
    if len(frames) < reader.n_frames:
        assert "ended early" in reader.ended_early
    assert "stopped answering" not in (reader.ended_early or "")  # the end of the data ended it, not the watchdog
    stub = tmp_path / f"stub{ext}"
    stub.write_bytes(data[:600])  # headers at most: nothing decodable
    with pytest.raises(InputError):
        list(VideoReader(stub))


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_encoder_stopped_by_a_signal_says_so(tmp_path: Path, sig: signal.Signals) -> None:
    """ffmpeg catches SIGINT and SIGTERM (it exits with status 255 and says so in its log) and dies of SIGKILL:
    either way the message names the signal, not the disk."""
    out = tmp_path / "out.mp4"
    frame = grey_frames(1)[0]
    # a shell that starts the tests in the background ignores SIGINT; the encoder inherits that and goes on encoding
    # (40 of 40 tries), and the loop below would write forever
    ignored = signal.getsignal(sig) is signal.SIG_IGN
    if ignored:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    try:
        with pytest.raises(OutputError, match=rf"^ffmpeg was stopped by {sig.name} (while writing|before it finished) "
                                              rf".*out\.mp4; run the same command again to continue$"):
            with VideoWriter(out, fps=12, size=(64, 48)) as writer:
                writer.write(frame)
                writer._proc.send_signal(sig)
                while True:  # until the pipe to the stopped encoder breaks
                    writer.write(frame)
    finally:
        if ignored:
            signal.signal(sig, signal.SIG_IGN)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_folder_removed_during_the_render_is_named(tmp_path: Path) -> None:
    """Someone removed the folder the frames were being written to: say so, and that a rerun continues."""
    frame = grey_frames(1)[0]
    with pytest.raises(OutputError, match=r"the folder it was being written to is gone \(removed during the "
                                          r"render\?\); run the same command again"):
        with VideoWriter(tmp_path / "frames/", fps=12, size=(64, 48)) as writer:
            writer.write(frame)
            shutil.rmtree(writer._target.tmp)
            writer.write(frame)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm", ".gif"])
def test_writer_round_trip(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out{ext}"
    with VideoWriter(out, fps=12, size=(64, 48)) as writer:
        for frame in grey_frames(10):
            writer.write(frame)
        assert not out.exists()  # only the temporary file so far
    assert writer.frames_written == 10
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    info = probe_video(out)
    assert (info.width, info.height, info.n_frames) == (64, 48, 10)
    assert info.fps == pytest.approx(12, rel=0.02) and not info.has_audio
    assert levels(list(VideoReader(out))) == list(range(10))


def test_writer_codecs(tmp_path: Path) -> None:
    for ext, codec in [(".mp4", "h264"), (".webm", "vp9"), (".gif", "gif")]:
        with VideoWriter(tmp_path / f"o{ext}", fps=8, size=(64, 48)) as writer:
            writer.write(grey_frames(1)[0])
        assert probe_video(tmp_path / f"o{ext}").video_codec == codec


@pytest.mark.parametrize("name", ["frames", "frames/"])
def test_writer_png_folder(tmp_path: Path, name: str) -> None:
    frames = grey_frames(12)
    with VideoWriter(str(tmp_path / name), fps=12, size=(64, 48), audio_from=None) as writer:
        for frame in frames:
            writer.write(frame)
    files = sorted((tmp_path / "frames").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(12)]
    assert all(np.array_equal(read_image(f), fr) for f, fr in zip(files, frames, strict=True))
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    with VideoWriter(tmp_path / "frames", fps=12, size=(64, 48)) as writer:  # replaces an old render
        writer.write(frames[0])
    assert len(list((tmp_path / "frames").iterdir())) == 1


def test_writer_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="other files"):
        VideoWriter(tmp_path / "mine", fps=12, size=(64, 48))


@pytest.mark.parametrize(
    ("source", "ext", "start", "codec"),
    [
        ("aac", ".mp4", 0.25, "aac"),
        ("ac3", ".mp4", 0.25, "aac"),  # mp4 takes no AC-3 here: re-encoded
        ("ac3", ".mkv", 0.0, "ac3"),  # copied as it is
        ("ac3", ".mkv", 0.25, "aac"),  # a copied stream would start up to a GOP late in mkv: re-encoded and cut exactly
        ("aac", ".webm", 0.25, "opus"),
        ("aac", ".mov", 0.25, "aac"),
    ],
)
def test_writer_carries_audio(clips: dict[str, Path], tmp_path: Path, source: str, ext: str, start: float,
                              codec: str) -> None:
    out = tmp_path / f"out{ext}"
    with VideoWriter(out, fps=12, size=(64, 48), audio_from=clips[source], audio_start=start, audio_end=start + 0.5) as writer:
        for frame in grey_frames(6):
            writer.write(frame)
    info = probe_video(out)
    assert info.has_audio and info.audio_codec == codec and info.n_frames == 6
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # the video-only temp file is gone


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_writer_without_audio(clips: dict[str, Path], tmp_path: Path, ext: str) -> None:
    source = clips["plain"] if ext == ".mp4" else clips["aac"]  # no audio in source / gif takes none
    with VideoWriter(tmp_path / f"out{ext}", fps=12, size=(64, 48), audio_from=source) as writer:
        writer.write(grey_frames(1)[0])
    assert not probe_video(tmp_path / f"out{ext}").has_audio


def test_writer_crops_odd_sizes(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "odd.mp4", fps=12, size=(65, 49)) as writer:
        assert writer.size == (64, 48)
        writer.write(np.zeros((49, 65, 3), np.uint8))
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (64, 48)


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"unknown extension '\.avi'.*\.mp4.*\.webm"):
        VideoWriter(tmp_path / "out.avi", fps=12, size=(64, 48))
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", fps=12, size=(64, 48))
    with pytest.raises(SettingsError, match="crf"):
        VideoWriter(tmp_path / "out.mp4", fps=12, size=(64, 48), crf=80)
    writer = VideoWriter(tmp_path / "o.mp4", fps=12, size=(64, 48))
    with pytest.raises(SettingsError, match=r"frame is 32x48 .* 64x48"), writer:
        writer.write(np.zeros((48, 32, 3), np.uint8))
    with pytest.raises(OutputError, match="no frames"), VideoWriter(tmp_path / "o.mp4", fps=12, size=(64, 48)):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames"])
def test_exception_in_writer_leaves_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyError), VideoWriter(tmp_path / name, fps=12, size=(64, 48)) as writer:
        for frame in grey_frames(3):
            writer.write(frame)
        raise KeyError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_reader_follows_display_rotation(clips: dict[str, Path], tmp_path: Path) -> None:
    rotated = tmp_path / "rotated.mp4"
    cmd = [ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(clips["plain"]), "-c", "copy"]
    subprocess.run([*cmd, str(rotated)], check=True, capture_output=True)
    reader = VideoReader(rotated)
    assert (reader.info.width, reader.info.height) == (64, 96)  # ffmpeg turns the frames while decoding
    assert list(reader)[0].shape == (96, 64, 3)


def test_short_audio_never_shortens_the_video(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=12, size=(64, 48), audio_from=clips["aac"], audio_start=0.9) as writer:
        for frame in grey_frames(12):  # 1 s of video, 0.1 s of audio left in the source
            writer.write(frame)
    info = probe_video(out)
    assert info.n_frames == 12 and info.has_audio
    with VideoWriter(out, fps=12, size=(64, 48), audio_from=clips["aac"], audio_start=3) as writer:
        writer.write(grey_frames(1)[0])  # start past the source's end: no audio at all
    assert not probe_video(out).has_audio
