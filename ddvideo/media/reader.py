"""The streaming reader: a clip decoded by ffmpeg at one constant rate, one RGB frame in memory at a time."""

from __future__ import annotations

import math
import subprocess
import tempfile
import threading
from collections.abc import Iterator

import numpy as np

from ddvideo.errors import InputError, SettingsError

from .ffmpeg import READ_TIMEOUT_S, ffmpeg_cmd, ffmpeg_reason, fps_fraction, read_log
from .paths import PathLike
from .probe import probe_video

def _even_size(width: int, height: int, max_size: int | None) -> tuple[int, int, bool]:
    """Output (w, h, scaled): the long side scaled down to max_size if larger, both sides rounded down to even."""
    scale = 1.0
    if max_size is not None and max(width, height) > max_size:
        scale = max_size / max(width, height)
    w = int(round(width * scale)) // 2 * 2
    h = int(round(height * scale)) // 2 * 2
    return max(w, 2), max(h, 2), scale != 1.0


class VideoReader:
    """Stream a clip as uint8 (H, W, 3) RGB frames through ffmpeg, one frame in memory at a time.

    Frames come at one constant rate, `fps` (the source's, see VideoInfo, or the one given): output
    frame k is the picture the source shows at `start + k / fps` seconds after its first frame, so a
    variable-rate clip comes out with a frame repeated where the source skipped one, and as long as
    the source. `start`/`end` (seconds, from the first frame) select a range; `max_size` scales the
    long side down to at most that many pixels. Odd sizes are cropped by one pixel on the
    right/bottom because yuv420p needs even sizes; after a downscale both sides are rounded down to
    even numbers instead. `n_frames` is the number of frames the range yields (fewer only if the
    file is damaged); `frames_read` counts what really came out; `origin` is the file time of frame
    0, where the audio that goes with it starts. A file that ends early (truncated or corrupt) stops
    the iteration cleanly after the last decodable frame and sets `ended_early` to a message; it
    raises InputError only if not a single frame could be decoded.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        start: float = 0.0,
        end: float | None = None,
        fps: float | None = None,
        max_size: int | None = None,
    ) -> None:
        if start < 0:
            raise SettingsError(f"start must be >= 0 seconds, got {start}")
        if end is not None and end <= start:
            raise SettingsError(f"end ({end}s) must be after start ({start}s)")
        if fps is not None and fps <= 0:
            raise SettingsError(f"fps must be > 0, got {fps}")
        if max_size is not None and max_size < 2:
            raise SettingsError(f"max_size must be at least 2 pixels, got {max_size}")
        self.info = probe_video(path)
        if self.info.width < 2 or self.info.height < 2:
            size = f"{self.info.width}x{self.info.height}"
            raise InputError(f"video {self.info.path} is only {size} pixels; give a larger video")
        self.start = float(start)
        self.end = None if end is None else float(end)
        self.fps = float(fps) if fps is not None else self.info.fps
        self.origin = self.info.start + self.start
        self.width, self.height, self._scaled = _even_size(self.info.width, self.info.height, max_size)
        self.n_frames = self._expected_frames()
        self.frames_read = 0
        self.ended_early: str | None = None
        self._frames: Iterator[np.ndarray] | None = None

    def _expected_frames(self) -> int:
        length = self.info.duration  # the video stream's own length, audio excluded
        if self.start >= length:
            raise InputError(
                f"start {self.start:g}s is past the end of {self.info.path}, which is {length:.2f}s long; "
                "pick a start below that"
            )
        # the fps filter holds the last frame to the end of the video and rounds that end to the nearest frame
        n = math.floor((length - self.start) * self.fps + 0.5)
        if self.end is not None and self.end < length:  # frames at start + k / fps < end
            n = min(n, math.ceil((self.end - self.start) * self.fps - 1e-6))
        if n <= 0:
            stop = length if self.end is None else min(self.end, length)
            raise InputError(
                f"the range {self.start:g}s to {stop:g}s of {self.info.path} holds no frames at {self.fps:g} fps; "
                "widen the range"
            )
        return n

    def _command(self) -> list[str]:
        # Seek a little before the range: ffmpeg drops the frames before its seek point, and the frame on
        # screen at `start` may have begun up to one (variable-rate) frame earlier. The fps filter then
        # starts its constant-rate grid exactly at `start`.
        lead = min(self.origin, self.info.longest_frame + 2 / self.fps)
        cmd = ffmpeg_cmd("-v", "error")
        if self.origin - lead > 0:
            cmd += ["-ss", f"{self.origin - lead:.6f}"]  # input seek: fast, and frame-accurate when decoding
        else:
            lead = self.origin
        cmd += ["-i", str(self.info.path), "-map", "0:V:0", "-an", "-sn", "-dn"]
        filters = [f"fps={fps_fraction(self.fps)}:start_time={lead:.6f}"]
        if self._scaled:
            filters.append(f"scale={self.width}:{self.height}:flags=area")
        elif (self.width, self.height) != (self.info.width, self.info.height):
            filters.append(f"crop={self.width}:{self.height}:0:0")  # drop the last column/row
        cmd += ["-vf", ",".join(filters), "-fps_mode", "passthrough", "-frames:v", str(self.n_frames)]
        return cmd + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]

    def __iter__(self) -> Iterator[np.ndarray]:
        self.close()
        self._frames = self._stream()
        return self._frames

    def _stream(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        self.ended_early = None
        nbytes = self.width * self.height * 3
        stalled = threading.Event()
        with tempfile.TemporaryFile() as log:  # a file, not a pipe: ffmpeg can never block on stderr
            proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
            try:
                while (buf := _read_exactly(proc, nbytes, stalled)) is not None:
                    self.frames_read += 1
                    yield np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)
                code = proc.wait(timeout=READ_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                stalled.set()
                code = -1
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            self._check_end(code, read_log(log), stalled.is_set())

    def _check_end(self, code: int, log: str, stalled: bool) -> None:
        """After the last frame: raise if nothing decoded, note it if the file ended early."""
        short = self.frames_read < self.n_frames and (code != 0 or bool(log.strip()))
        # a cut-off mp4/mov decodes cleanly up to the cut: the probe saw its index announce more
        cut = self.info.truncated and (self.end is None or self.end > self.info.duration)
        if not (self.frames_read == 0 or stalled or short or cut):
            return
        t = self.start + self.frames_read / self.fps
        if stalled:
            reason = f"ffmpeg stopped answering for {READ_TIMEOUT_S:.0f} s"
        else:
            reason = f"ffmpeg: {ffmpeg_reason(log)}" if log.strip() else "ffmpeg: partial file"
        message = (
            f"video ended early at frame {self.frames_read} (t={t:.2f}s) of {self.info.path}: "
            f"the file looks truncated or corrupt ({reason}); re-export or re-download it"
        )
        if self.frames_read == 0:
            raise InputError(message)
        self.ended_early = message

    def close(self) -> None:
        """Stop ffmpeg if a stream is running (iteration can be restarted from the range start)."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exactly(proc: subprocess.Popen, nbytes: int, stalled: threading.Event) -> bytearray | None:
    """One frame of raw bytes from ffmpeg's stdout, or None at the end (a partial last frame counts as the end)."""
    buf = bytearray(nbytes)  # a fresh buffer per frame: callers may keep earlier frames
    view = memoryview(buf)
    got = 0

    def kill() -> None:
        stalled.set()
        proc.kill()

    watchdog = threading.Timer(READ_TIMEOUT_S, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        while got < nbytes:
            n = proc.stdout.readinto(view[got:])
            if not n:
                return None
            got += n
    finally:
        watchdog.cancel()
    return buf
