"""The streaming writer: RGB frames encoded to a video, GIF or frame folder, atomically, with the audio muxed in."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO

import imageio.v3 as iio
import numpy as np

from ddvideo.errors import OutputError, SettingsError

from .ffmpeg import (FINISH_TIMEOUT_S, encoder_log, ffmpeg_cmd, ffmpeg_reason, fps_fraction, read_log, run_ffmpeg,
                     stopped_by_signal)
from .images import check_frame
from .paths import (FRAME_NAME, AtomicTarget, PathLike, check_frame_folder, check_writable, existing_input,
                    remove_stale_partials)
from .probe import read_header

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".gif")
_YUV420_KINDS = ("mp4", "mov", "mkv", "webm")  # yuv420p needs even sizes
_AUDIO_COPY_OK = {  # container -> audio codecs it takes as they are; others are re-encoded
    "mp4": {"aac", "mp3"},
    "mov": {"aac", "mp3"},
    "webm": {"opus", "vorbis"},
    "mkv": None,  # anything
}
AUDIO_ENCODE = {
    "mp4": ["-c:a", "aac", "-b:a", "192k"],
    "mov": ["-c:a", "aac", "-b:a", "192k"],
    "mkv": ["-c:a", "aac", "-b:a", "192k"],
    "webm": ["-c:a", "libopus", "-b:a", "128k"],
}


def _output_kind(path: PathLike) -> str:
    """'mp4', 'mov', 'mkv', 'webm', 'gif' or 'frames' (no extension, a trailing slash, or an existing folder)."""
    text = os.fspath(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir() or not p.suffix:
        return "frames"
    ext = p.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise OutputError(
            f"cannot write video {p}: unknown extension {ext!r}; use one of {', '.join(VIDEO_EXTENSIONS)}, "
            "or a path without extension for a folder of PNG frames"
        )
    return ext[1:]


def _encode_args(kind: str, crf: int) -> list[str]:
    if kind == "gif":  # one pass: the palette is built from all frames, then applied
        return ["-filter_complex", "[0:v]split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"]
    if kind == "webm":
        return ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-pix_fmt", "yuv420p",
                "-row-mt", "1", "-deadline", "good", "-cpu-used", "2"]  # fmt: skip
    args = ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p"]
    return args + faststart(kind)


def faststart(kind: str) -> list[str]:
    return ["-movflags", "+faststart"] if kind in ("mp4", "mov") else []


class VideoWriter:
    """Encode uint8 (H, W, 3) RGB frames into a video, a GIF or a folder of PNG frames, atomically.

    The format follows the extension: .mp4/.mov/.mkv (H.264, yuv420p, `crf` 0-51), .webm (VP9,
    yuv420p, `crf` 0-63), .gif (palette built from all frames, loops forever), or no extension / a
    trailing slash for a folder of 000000.png, 000001.png, ... Everything goes to a hidden temporary
    file or folder beside `path`, which replaces `path` only when the `with` block ends without an
    exception. For the yuv420p formats an odd `size` is cropped by one pixel on the right/bottom
    (frames are still given at `size`); `self.size` is the size written. With `audio_from`, the audio
    of that file between `audio_start` and `audio_end` is muxed in afterwards (copied when the
    container takes the codec, else re-encoded to AAC, or Opus for WebM); GIFs and frame folders
    have no audio, and a source without audio gives a file without audio.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        fps: float,
        size: tuple[int, int],
        crf: int = 18,
        audio_from: PathLike | None = None,
        audio_start: float = 0.0,
        audio_end: float | None = None,
    ) -> None:
        self.kind = _output_kind(path)
        self.path = Path(os.path.abspath(os.fspath(path)))
        if fps is None or fps <= 0:
            raise SettingsError(f"fps must be > 0, got {fps}")
        width, height = (int(v) for v in size)
        if width < 2 or height < 2:
            raise SettingsError(f"video size must be at least 2x2 pixels, got {width}x{height}")
        max_crf = 63 if self.kind == "webm" else 51
        if self.kind not in ("gif", "frames") and not 0 <= crf <= max_crf:
            raise SettingsError(
                f"crf for {self.kind} must be between 0 (lossless) and {max_crf}, got {crf}; 18 to 28 is usual"
            )
        if audio_start < 0 or (audio_end is not None and audio_end <= audio_start):
            raise SettingsError(
                f"audio range {audio_start}s to {audio_end}s is empty; audio_end must be after audio_start >= 0"
            )
        check_writable(self.path)
        if self.kind == "frames":
            check_frame_folder(self.path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.input_size = (width, height)  # frames given to write()
        even = self.kind in _YUV420_KINDS
        self.size = (width // 2 * 2, height // 2 * 2) if even else (width, height)  # frames written
        self.audio_start = float(audio_start)
        self.audio_end = None if audio_end is None else float(audio_end)
        self.audio_codec = self._audio_source_codec(audio_from)  # None: no audio to mux
        self.audio_from = None if self.audio_codec is None else existing_input(audio_from)
        self.frames_written = 0
        self._target: AtomicTarget | None = None
        self._video_tmp: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def _audio_source_codec(self, audio_from: PathLike | None) -> str | None:
        """Codec of the audio to mux; None for no source, no audio in it, a start past its end, GIFs and frames."""
        if audio_from is None or self.kind not in _AUDIO_COPY_OK:
            return None
        header = read_header(existing_input(audio_from))
        if header.duration is not None and self.audio_start >= header.duration:
            return None
        return header.audio_codec

    # -- lifecycle

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def open(self) -> None:
        """Create the temporary output and start the encoder (done by `with`)."""
        if self._target is not None:
            return
        remove_stale_partials(self.path)  # a rerun after a kill -9 sweeps what the killed run left
        self._target = AtomicTarget(self.path, folder=self.kind == "frames")
        if self.kind == "frames":
            return
        # with audio, ffmpeg encodes into a second temporary file that is muxed into the target
        self._video_tmp = self._target.tmp
        if self.audio_codec is not None:
            self._video_tmp = self._target.tmp.with_name(self._target.tmp.name.replace(".partial-", ".video-", 1))
        w, h = self.size
        # info level, each line tagged with it: errors for the message, and the signal ffmpeg says stopped it
        cmd = ffmpeg_cmd("-v", "level+info", "-nostats", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                          "-r", str(fps_fraction(self.fps)), "-i", "-", "-an")  # fmt: skip
        cmd += _encode_args(self.kind, self.crf) + [str(self._video_tmp)]
        self._log = tempfile.TemporaryFile()
        try:
            # its own session: a Ctrl-C at the terminal stops the render, which then stops ffmpeg, rather than
            # ffmpeg under a render that goes on (a batch worker leaves SIGINT to its batch)
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                          start_new_session=True)
        except OSError as err:
            self._abort()
            raise OutputError(f"cannot start ffmpeg to write {self.path}: {err}") from err

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) RGB frame of the size given to the writer."""
        if self._target is None:
            raise RuntimeError("VideoWriter is not open; use it as `with VideoWriter(...) as writer:`")
        frame = check_frame(frame, what="frame")
        if (frame.shape[1], frame.shape[0]) != self.input_size:
            raise SettingsError(
                f"frame is {frame.shape[1]}x{frame.shape[0]} but the writer for {self.path} was opened for "
                f"{self.input_size[0]}x{self.input_size[1]}; give every frame the same size"
            )
        frame = np.ascontiguousarray(frame[: self.size[1], : self.size[0]])
        if self.kind == "frames":
            name = self._target.tmp / FRAME_NAME.format(self.frames_written)
            try:
                iio.imwrite(name, frame, plugin="pillow", extension=".png")
            except (FileNotFoundError, NotADirectoryError) as err:  # its temporary folder, gone or replaced
                raise OutputError(f"cannot write frame {name.name} into {self.path}: the folder it was being written "
                                  "to is gone (removed during the render?); run the same command again to continue "
                                  "from the finished frames") from err
            except OSError as err:
                msg = f"cannot write frame {name.name} into {self.path}: {err}; check free disk space"
                raise OutputError(msg) from err
        else:
            try:
                self._proc.stdin.write(memoryview(frame).cast("B"))
            except (BrokenPipeError, OSError) as err:
                raise OutputError(self._stopped(f"while writing {self.path}")) from err
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding, mux the audio and move the result onto `path` (done by `with`)."""
        if self._target is None:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}; nothing to save")
            if self.kind != "frames":
                self._finish_encoder()
                if self.audio_codec is not None:
                    self._mux_audio()
        except BaseException:
            self._abort()
            raise
        self._target.commit()
        self._target = None
        self._cleanup()

    def _abort(self) -> None:
        """Stop ffmpeg and remove every temporary file; `path` is left as it was."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._target is not None:
            self._target.discard()
            self._target = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None and self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self._video_tmp is not None:  # gone already unless it is the video-only file of the audio mux
            self._video_tmp.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
        self._proc = self._log = self._video_tmp = None

    def _stopped(self, when: str) -> str:
        """Why the encoder is gone: the signal that stopped it, else its last words (a full disk, most often)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)  # the pipe breaks as it exits: let it finish exiting to read its status
        if stopped := self._signal():
            return f"{stopped} {when}; run the same command again to continue"
        return f"ffmpeg stopped {when} ({self._reason()}); check free disk space"

    def _signal(self) -> str | None:
        """'ffmpeg was stopped by SIGINT' when a signal ended the encoder, whether it died of it or caught it."""
        if stopped := stopped_by_signal(self._proc.returncode):
            return stopped
        return encoder_log(read_log(self._log))[1] if self._log is not None else None

    def _reason(self) -> str:
        if self._log is None:
            return "ffmpeg did not start"
        return "ffmpeg: " + ffmpeg_reason(encoder_log(read_log(self._log))[0])

    def _finish_encoder(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        try:
            code = self._proc.wait(timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise OutputError(f"ffmpeg did not finish {self.path} within {FINISH_TIMEOUT_S:.0f} s") from err
        if code != 0 and self._signal():
            raise OutputError(self._stopped(f"before it finished {self.path}"))
        if code != 0:
            raise OutputError(f"ffmpeg could not encode {self.path} ({self._reason()})")

    # -- audio

    def _mux_audio(self) -> None:
        """Put the source's audio next to the encoded video, copying it when the container allows."""
        allowed = _AUDIO_COPY_OK[self.kind]
        copy = allowed is None or self.audio_codec in allowed
        if self.audio_start > 0 and self.kind in ("mkv", "webm"):
            # a copied stream seeked to audio_start keeps packets before it at negative times; Matroska has no
            # edit list to hide them, so it would start the video late: decode and trim exactly instead
            copy = False
        plans = ([["-c:a", "copy"]] if copy else []) + [AUDIO_ENCODE[self.kind]]
        for i, audio_args in enumerate(plans):
            result = self._run_mux(audio_args)
            if result.returncode == 0:
                return
            if i == len(plans) - 1:
                reason = ffmpeg_reason(result.stderr)
                raise OutputError(f"cannot add the audio of {self.audio_from} to {self.path} (ffmpeg: {reason})")

    def _run_mux(self, audio_args: list[str]) -> subprocess.CompletedProcess:
        # the audio is cut to the video's length; a shorter audio track just ends early (no -shortest,
        # which would cut the video to the audio instead). The output's -t cuts an audio track that starts
        # after the video where the video ends, too (the input's -t counts from the audio's own start there).
        length = self.frames_written / self.fps
        if self.audio_end is not None:
            length = min(length, self.audio_end - self.audio_start)
        trim = ["-ss", f"{self.audio_start:.6f}"] if self.audio_start > 0 else []
        args = ["-v", "error", "-y", "-i", str(self._video_tmp),
                *trim, "-t", f"{length:.6f}", "-i", str(self.audio_from),
                "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *audio_args, "-t", f"{length:.6f}",
                *faststart(self.kind), str(self._target.tmp)]  # fmt: skip
        try:
            return run_ffmpeg(args, timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            msg = f"ffmpeg did not finish adding audio to {self.path} within {FINISH_TIMEOUT_S:.0f} s"
            raise OutputError(msg) from err
