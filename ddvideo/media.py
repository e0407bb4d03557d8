"""All file and ffmpeg I/O of ddvideo: still images, video probing, streaming readers and writers, segment joins."""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from ddvideo.errors import DDVideoError, InputError, OutputError, SettingsError

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".gif")
FRAME_NAME = "{:06d}.png"  # frame folders: 000000.png, 000001.png, ... (sorted order = frame order)

PROBE_TIMEOUT_S = 120.0  # ffmpeg -i and the packet count; both only demux
READ_TIMEOUT_S = 60.0  # no new frame from ffmpeg for this long means it is stuck
FINISH_TIMEOUT_S = 600.0  # flushing the encoder, muxing audio, joining segments

_FRAME_FILE = re.compile(r"^\d{6}\.png$")
_YUV420_KINDS = ("mp4", "mov", "mkv", "webm")  # yuv420p needs even sizes
_AUDIO_COPY_OK = {  # container -> audio codecs it takes as they are; others are re-encoded
    "mp4": {"aac", "mp3"},
    "mov": {"aac", "mp3"},
    "webm": {"opus", "vorbis"},
    "mkv": None,  # anything
}
_AUDIO_ENCODE = {
    "mp4": ["-c:a", "aac", "-b:a", "192k"],
    "mov": ["-c:a", "aac", "-b:a", "192k"],
    "mkv": ["-c:a", "aac", "-b:a", "192k"],
    "webm": ["-c:a", "libopus", "-b:a", "128k"],
}
_GENERIC_FFMPEG_LINES = (
    "at least one output file must be specified",
    "conversion failed",
    "exiting normally",
    "error opening output files",
)


# ---------------------------------------------------------------- ffmpeg helpers


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (the only ffmpeg the project uses)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise DDVideoError(
            f"ffmpeg not found ({err}); reinstall it: pip install --force-reinstall imageio-ffmpeg"
        ) from err


def _ffmpeg_cmd(*args: str) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]


def _run_ffmpeg(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion; stderr comes back as text, TimeoutExpired propagates (the child is killed)."""
    return subprocess.run(
        _ffmpeg_cmd(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        text=True,
        errors="replace",
    )


def _ffmpeg_reason(stderr: str) -> str:
    """The last meaningful line of ffmpeg's stderr, without the '[codec @ 0x...]' prefixes."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith(_GENERIC_FFMPEG_LINES)]
    reason = lines[-1] if lines else "no error message"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _fps_fraction(fps: float) -> Fraction:
    """Exact rational for an fps; 29.97, 23.976 and 59.94 are taken as the NTSC rates (30000/1001, ...)."""
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 0.002 and abs(fps - round(fps)) > 0.001:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _read_log(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")


# ---------------------------------------------------------------- paths


def check_writable(path: PathLike, *, creatable: bool = False) -> None:
    """Raise OutputError unless the folder that will hold `path` exists and is writable; call it before long work.

    With `creatable`, missing folders are fine if the nearest one above them that exists is writable (the
    caller makes them, e.g. with os.makedirs, before writing).
    """
    folder = Path(os.path.abspath(os.fspath(path))).parent
    if creatable:
        while not folder.exists() and not folder.is_symlink() and folder.parent != folder:
            folder = folder.parent
    elif not folder.exists():
        raise OutputError(f"output folder does not exist: {folder}; create it first or choose another output path")
    if not folder.is_dir():
        raise OutputError(f"output folder is not a folder: {folder}; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}; fix its permissions or choose another output path")


def check_not_source(path: PathLike, sources: Sequence[PathLike | None], *, what: str = "output") -> None:
    """Raise OutputError if writing `path` (a file, or a folder it fills) could replace or remove one of `sources`.

    Refused: the same file, also under another name through a symbolic or hard link; a folder that holds a
    source (a folder of frames is replaced as a whole, a work folder is emptied); a path inside a source.
    """
    target = Path(os.path.realpath(os.fspath(path).rstrip("/\\") or os.sep))
    for source in sources:
        if source is None:
            continue
        real = Path(os.path.realpath(os.fspath(source)))
        if target == real:
            same_name = os.path.abspath(os.fspath(path).rstrip("/\\")) == os.path.abspath(os.fspath(source))
            how = "the input file" if same_name else f"the input {source} through a symbolic link"
        elif target.exists() and real.exists() and os.path.samefile(target, real):
            how = f"a hard link to the input {source}"
        elif any(inside.is_relative_to(folder) for inside in (real, Path(os.path.abspath(os.fspath(source))))
                 for folder in (target, Path(os.path.abspath(os.fspath(path))))):  # a link counts where it lies
            raise OutputError(f"{what} {path} holds the input {source}, which could be replaced or removed with it; "
                              f"choose a {what} that does not hold the input")
        elif target.is_relative_to(real):
            raise OutputError(f"{what} {path} lies inside the input {source}, which is a file; "
                              f"choose another {what} path")
        else:
            continue
        raise OutputError(f"{what} {path} is {how}: writing it would destroy the source; choose another {what} path")


class _AtomicTarget:
    """A hidden temporary file or folder beside `path` that is renamed onto `path` on commit."""

    def __init__(self, path: PathLike, *, folder: bool = False) -> None:
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.folder = folder
        check_writable(self.path)
        token = secrets.token_hex(4)
        suffix = "" if folder else self.path.suffix
        self.tmp = self.path.with_name(f".{self.path.name}.partial-{token}{suffix}")
        if folder:
            try:
                self.tmp.mkdir()
            except OSError as err:
                msg = f"cannot create a folder beside {self.path}: {err.strerror}; check the output folder"
                raise OutputError(msg) from err

    def commit(self) -> None:
        try:
            if self.folder and self.path.exists():
                _remove_frame_folder(self.path)
            os.replace(self.tmp, self.path)
        except OutputError:
            self.discard()
            raise
        except OSError as err:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {err.strerror or err}; check the output path") from err

    def discard(self) -> None:
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


def _remove_stale_partials(path: Path) -> None:
    """Remove the hidden temporaries a killed writer of `path` left beside it (.NAME.partial-*, .NAME.video-*)."""
    stale = re.compile(rf"^\.{re.escape(path.name)}\.(partial|video)-[0-9a-f]{{8}}{re.escape(path.suffix)}$")
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            if not stale.match(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, folder: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path` (same extension); it replaces `path` only if the block succeeds.

    With folder=True the temporary path is an empty folder, created here. If the block raises,
    the temporary file or folder is removed and `path` is left as it was.
    """
    target = _AtomicTarget(path, folder=folder)
    try:
        yield target.tmp
    except BaseException:
        target.discard()
        raise
    target.commit()


def _check_frame_folder(path: Path) -> None:
    """A frame folder may only replace a missing folder or one holding nothing but frame files."""
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(f"output {path} exists and is not a folder; choose a new folder name for the frames")
    others = [p.name for p in path.iterdir() if not _FRAME_FILE.match(p.name)]
    if others:
        raise OutputError(
            f"output folder {path} holds other files ({others[0]}, ...); choose an empty or new folder for the frames"
        )


def _remove_frame_folder(path: Path) -> None:
    _check_frame_folder(path)
    shutil.rmtree(path)


def _existing_input(path: PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise InputError(f"input not found: {p}; check the path")
    if not p.is_file():
        raise InputError(f"input is not a file: {p}; give a video or image file")
    return p


# ---------------------------------------------------------------- still images


def _check_frame(frame: Any, *, what: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise SettingsError(
            f"{what} must be a uint8 (H, W, 3) RGB array, got a {desc}; "
            "convert it with np.clip(x, 0, 255).astype(np.uint8)"
        )
    return frame


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W) grey, (H, W, 2) grey+alpha, (H, W, 4) RGBA or 16-bit -> (H, W, 3) uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] in (1, 2):  # grey, grey + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def read_image(path: PathLike) -> np.ndarray:
    """Read a still image as uint8 (H, W, 3) RGB: alpha dropped, grey expanded, EXIF rotation applied."""
    p = _existing_input(path)
    try:
        props = iio.improps(p, plugin="pillow", index=0)
        if props.dtype == np.uint8 and len(props.shape) == 3 and props.shape[2] == 3:
            image = iio.imread(p, plugin="pillow", index=0, rotate=True)
        elif props.dtype == np.uint8:  # palette, grey, RGBA, CMYK: let Pillow convert
            image = iio.imread(p, plugin="pillow", index=0, rotate=True, mode="RGB")
        else:  # 16-bit grey and friends: scale here, Pillow's RGB conversion would clip
            image = iio.imread(p, plugin="pillow", index=0, rotate=True)
    except Exception as err:  # Pillow raises many types for bad data
        raise InputError(f"not a readable image: {p} ({err}); give a PNG, JPEG, WebP, BMP or TIFF file") from err
    return _to_rgb8(np.asarray(image))


def _image_extension(p: Path) -> str:
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise OutputError(
            f"cannot write image {p}: unknown extension {ext or '(none)'!r}; use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    return ext


def check_image_output(path: PathLike) -> None:
    """Raise OutputError unless write_image could write `path`: an image extension in a writable folder."""
    _image_extension(Path(os.fspath(path)))
    check_writable(path)


def write_image(path: PathLike, frame: np.ndarray, *, fast: bool = False) -> None:
    """Write a uint8 (H, W, 3) RGB frame atomically; the format follows the extension (png, jpg, webp, bmp, tif).

    `fast` compresses PNGs lightly, for files that are read back soon (a dreamed 540x360 frame: 13 ms instead
    of 61 ms, 20 % larger).
    """
    p = Path(os.fspath(path))
    ext = _image_extension(p)
    frame = _check_frame(frame, what="image")
    options = {"quality": 95} if ext in (".jpg", ".jpeg", ".webp") else {}
    if fast and ext == ".png":
        options = {"compress_level": 1}
    try:
        with atomic_path(p) as tmp:
            iio.imwrite(tmp, frame, plugin="pillow", extension=ext, **options)
    except OSError as err:
        raise OutputError(f"cannot write image {p}: {err}; check the output folder and free disk space") from err


# ---------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg says about a video file, with the timing read from its packets (demuxed, not decoded).

    `fps` is the constant rate the clip is read at: the source's own rate for a constant-rate clip; for a
    variable-rate clip (phones drop frames in low light) its nominal rate, the rate of its usual interval
    between frames (e.g. 30), so a frame is repeated where the camera skipped one, unless that is more than
    twice the mean rate (a screen recording that only records changes): then the mean rate.
    """

    path: Path
    width: int  # after the rotation ffmpeg applies when decoding
    height: int
    fps: float
    n_frames: int  # frames the file shows: packets an edit list hides are not counted
    duration: float  # seconds of video, from its first shown frame to the end of its last
    has_audio: bool
    audio_codec: str | None  # short ffmpeg names: "aac", "ac3", "opus", ...
    video_codec: str | None  # "h264", "vp9", "mpeg4", ...
    truncated: bool = False  # the file ends before the frames its index lists (n_frames counts those present)
    start: float = 0.0  # seconds from the file's start (where its earliest stream begins) to the first frame
    mean_fps: float = 0.0  # n_frames / duration
    variable: bool = False  # the frames are not evenly spaced in time (variable frame rate)
    longest_frame: float = 0.0  # seconds the longest-shown frame stays on screen


@dataclass(frozen=True)
class _Header:
    """The parts of `ffmpeg -i` output that the project uses."""

    container: str
    video: str | None  # the first video stream line after "Video: ", cover art excluded
    audio_codec: str | None
    duration: float | None
    rotation: float


def _read_header(p: Path) -> _Header:
    """Parse `ffmpeg -i`; raise InputError when ffmpeg cannot open the file."""
    try:
        stderr = _run_ffmpeg(["-i", str(p)], timeout=PROBE_TIMEOUT_S).stderr
    except subprocess.TimeoutExpired as err:
        raise InputError(f"not a readable video: {p} (ffmpeg gave no answer in {PROBE_TIMEOUT_S:.0f} s)") from err
    container = re.search(r"^Input #0, (.+?), from ", stderr, re.M)
    if container is None:
        raise InputError(f"not a readable video: {p} (ffmpeg: {_ffmpeg_reason(stderr)})")
    video_lines = re.findall(r"^\s*Stream #0:\S* Video: (.*)$", stderr, re.M)
    videos = [line for line in video_lines if "(attached pic)" not in line]  # cover art is no video
    audio = re.search(r"^\s*Stream #0:\S* Audio: ([A-Za-z0-9_]+)", stderr, re.M)
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", stderr)
    rotation = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees|rotate\s*:\s*(-?\d+)", stderr)
    return _Header(
        container=container.group(1),
        video=videos[0] if videos else None,
        audio_codec=audio.group(1) if audio else None,
        duration=(int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3])) if duration else None,
        rotation=float(next(g for g in rotation.groups() if g is not None)) if rotation else 0.0,
    )


@dataclass(frozen=True)
class _Timing:
    """The video stream's timing, from its packets' timestamps."""

    frames: int  # packets shown (an edit list marks the ones it hides as discarded)
    start: float | None = None  # seconds from the file's start to the first shown frame
    duration: float | None = None  # first shown frame to the end of the last
    step: float | None = None  # the usual interval between frames, seconds (the mean of those near the median)
    longest: float | None = None  # longest interval between frames (the last one: its duration)
    variable: bool = False  # intervals differ by more than a timestamp's rounding
    truncated: bool = False  # the demuxer hit the end of the file inside data its index announces: a cut-off file


_PACKET = re.compile(r"^\d+,\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*\d+,\s*0x[0-9a-fA-F]+(?:, F=0x([0-9a-fA-F]+))?", re.M)
_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD: a packet decoded only to reach the frames an edit list shows
_NOPTS = -(2**63)
_COMMON_RATES = (Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 48, 50, Fraction(60000, 1001), 60, 90,
                 100, 120, 240)


def _read_timing(p: Path) -> _Timing | None:
    """List the video packets by stream copy (demux only, no decoding); None if ffmpeg fails."""
    args = ["-v", "warning", "-i", str(p), "-map", "0:V:0", "-c", "copy", "-f", "framecrc", "-"]
    try:
        result = subprocess.run(_ffmpeg_cmd(*args), stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=PROBE_TIMEOUT_S, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return None
    base = re.search(r"^#tb 0: (\d+)/(\d+)", result.stdout, re.M)
    if base is None:
        return None
    # (dts, pts, duration) of the packets shown
    packets = [(int(m[1]), int(m[2]), int(m[3])) for m in _PACKET.finditer(result.stdout)
               if not int(m[4] or "0", 16) & _DISCARD]
    truncated = ": partial file" in result.stderr
    known = [pts for _, pts, _ in packets if pts != _NOPTS]
    if len(known) == len(packets):
        shown = sorted((pts, duration) for _, pts, duration in packets)
    elif known and all(dts != _NOPTS for dts, _, _ in packets):  # MPEG-PS stamps only some packets with a pts:
        shown = sorted((dts, duration) for dts, _, duration in packets)  # the spacing comes from the decode times
    else:
        return _Timing(len(packets), truncated=truncated)
    if not shown:
        return _Timing(0, truncated=truncated)
    return _spacing(shown, first=min(known), tb=Fraction(int(base[1]), int(base[2])), truncated=truncated)


def _spacing(shown: list[tuple[int, int]], *, first: int, tb: Fraction, truncated: bool) -> _Timing:
    """Timing of sorted (time, duration) pairs in units of `tb`; `first` is the first frame's presentation time."""
    times = [t for t, _ in shown]
    steps = [b - a for a, b in zip(times, times[1:])]
    median = sorted(steps)[len(steps) // 2] if steps else 0
    last = shown[-1][1] or median  # a last packet without a duration is shown for a usual interval
    # a constant-rate stream in a millisecond time base steps 33, 33, 34 ms: allow one tick, or 5 %, either way
    tolerance = max(1, median // 20)
    usual = [step for step in steps if abs(step - median) <= tolerance]
    return _Timing(
        frames=len(shown),
        start=float(first * tb),
        duration=float((times[-1] + last - times[0]) * tb) if last else None,
        step=float(sum(usual) * tb / len(usual)) if usual else None,
        longest=float(max(steps + [last]) * tb),
        variable=len(usual) < len(steps),
        truncated=truncated,
    )


def _nominal_rate(step: float | None, tbr: float) -> float:
    """The rate of a clip's usual frame interval: ffmpeg's tbr where it agrees (it is exact: 29.97...), else a
    common rate within 0.5 %, else the interval's own rate. tbr alone when the interval is not known."""
    if not step:
        return tbr
    rate = 1 / step
    if tbr and abs(tbr - rate) <= 0.01 * rate:
        return tbr
    common = min(_COMMON_RATES, key=lambda r: abs(r - rate))
    return float(common) if abs(common - rate) <= 0.005 * rate else rate


def _constant_rate(*, header_fps: float, nominal: float, mean: float, variable: bool) -> float:
    """The rate a clip is read at (see VideoInfo): its own rate, or for variable-rate clips the nominal one."""
    if not variable:
        return header_fps or nominal or mean
    if nominal and mean * 0.99 <= nominal <= 2 * mean:
        return nominal
    return mean


def probe_video(path: PathLike) -> VideoInfo:
    """Describe a video file; raise InputError if it is missing, not a video, a still image, or has no frames."""
    p = _existing_input(path)
    header = _read_header(p)
    if header.video is None:
        raise InputError(f"not a readable video: {p} (ffmpeg: no video stream in this {header.container} file)")
    if header.container.endswith("_pipe") or header.container == "image2":
        raise InputError(
            f"not a readable video: {p} (ffmpeg: it is a still image, {header.container}); use it as an image input"
        )
    codec = re.match(r"([A-Za-z0-9_]+)", header.video)
    size = re.search(r",\s(\d+)x(\d+)[\s,\]]", header.video + " ")
    if size is None:
        raise InputError(f"not a readable video: {p} (ffmpeg: no frame size in '{header.video[:80]}')")
    width, height = int(size[1]), int(size[2])
    if round(header.rotation) % 180 == 90:  # ffmpeg rotates while decoding, so frames come out transposed
        width, height = height, width
    header_fps, tbr = (_header_rate(header.video, unit) for unit in ("fps", "tbr"))
    timing = _read_timing(p)
    nominal = _nominal_rate(timing.step if timing else None, tbr)
    n_frames = timing.frames if timing else None
    duration = timing.duration if timing and timing.duration else header.duration
    if n_frames is None and duration and (header_fps or nominal):
        n_frames = round(duration * (header_fps or nominal))
    if not n_frames:
        raise InputError(f"not a readable video: {p} (ffmpeg: no video frames found); the file looks empty or corrupt")
    if not duration:
        duration = n_frames / (header_fps or nominal or 25.0)  # 25: ffmpeg's own fallback rate
    mean = n_frames / duration
    variable = bool(timing and timing.variable)
    if header.container == "gif":  # GIF delays are whole centiseconds; the mean rate is the honest one
        fps = mean
    else:
        fps = _constant_rate(header_fps=header_fps, nominal=nominal, mean=mean, variable=variable)
    return VideoInfo(
        path=p,
        width=width,
        height=height,
        fps=fps,
        n_frames=n_frames,
        duration=duration,
        has_audio=header.audio_codec is not None,
        audio_codec=header.audio_codec,
        video_codec=codec[1] if codec else None,
        truncated=bool(timing and timing.truncated),
        start=timing.start if timing and timing.start else 0.0,
        mean_fps=mean,
        variable=variable,
        longest_frame=timing.longest if timing and timing.longest else 1 / fps,
    )


def _header_rate(video: str, unit: str) -> float:
    """A rate of the `ffmpeg -i` stream line: unit "fps" (the mean ffmpeg saw) or "tbr" (its guess of the base rate)."""
    rate = re.search(rf"(\d+(?:\.\d+)?)(k?) {unit}\b", video)
    return float(rate[1]) * (1000 if rate[2] else 1) if rate else 0.0


# ---------------------------------------------------------------- reading


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
        cmd = _ffmpeg_cmd("-v", "error")
        if self.origin - lead > 0:
            cmd += ["-ss", f"{self.origin - lead:.6f}"]  # input seek: fast, and frame-accurate when decoding
        else:
            lead = self.origin
        cmd += ["-i", str(self.info.path), "-map", "0:V:0", "-an", "-sn", "-dn"]
        filters = [f"fps={_fps_fraction(self.fps)}:start_time={lead:.6f}"]
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
            self._check_end(code, _read_log(log), stalled.is_set())

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
            reason = f"ffmpeg: {_ffmpeg_reason(log)}" if log.strip() else "ffmpeg: partial file"
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


# ---------------------------------------------------------------- writing


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
    return args + _faststart(kind)


def _faststart(kind: str) -> list[str]:
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
            _check_frame_folder(self.path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.input_size = (width, height)  # frames given to write()
        even = self.kind in _YUV420_KINDS
        self.size = (width // 2 * 2, height // 2 * 2) if even else (width, height)  # frames written
        self.audio_start = float(audio_start)
        self.audio_end = None if audio_end is None else float(audio_end)
        self.audio_codec = self._audio_source_codec(audio_from)  # None: no audio to mux
        self.audio_from = None if self.audio_codec is None else _existing_input(audio_from)
        self.frames_written = 0
        self._target: _AtomicTarget | None = None
        self._video_tmp: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def _audio_source_codec(self, audio_from: PathLike | None) -> str | None:
        """Codec of the audio to mux; None for no source, no audio in it, a start past its end, GIFs and frames."""
        if audio_from is None or self.kind not in _AUDIO_COPY_OK:
            return None
        header = _read_header(_existing_input(audio_from))
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
        _remove_stale_partials(self.path)  # a rerun after a kill -9 sweeps what the killed run left
        self._target = _AtomicTarget(self.path, folder=self.kind == "frames")
        if self.kind == "frames":
            return
        # with audio, ffmpeg encodes into a second temporary file that is muxed into the target
        self._video_tmp = self._target.tmp
        if self.audio_codec is not None:
            self._video_tmp = self._target.tmp.with_name(self._target.tmp.name.replace(".partial-", ".video-", 1))
        w, h = self.size
        cmd = _ffmpeg_cmd("-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                          "-r", str(_fps_fraction(self.fps)), "-i", "-", "-an")  # fmt: skip
        cmd += _encode_args(self.kind, self.crf) + [str(self._video_tmp)]
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        except OSError as err:
            self._abort()
            raise OutputError(f"cannot start ffmpeg to write {self.path}: {err}") from err

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) RGB frame of the size given to the writer."""
        if self._target is None:
            raise RuntimeError("VideoWriter is not open; use it as `with VideoWriter(...) as writer:`")
        frame = _check_frame(frame, what="frame")
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
            except OSError as err:
                msg = f"cannot write frame {name.name} into {self.path}: {err}; check free disk space"
                raise OutputError(msg) from err
        else:
            try:
                self._proc.stdin.write(memoryview(frame).cast("B"))
            except (BrokenPipeError, OSError) as err:
                msg = f"ffmpeg stopped while writing {self.path} ({self._reason()}); check free disk space"
                raise OutputError(msg) from err
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

    def _reason(self) -> str:
        return "ffmpeg: " + _ffmpeg_reason(_read_log(self._log)) if self._log is not None else "ffmpeg did not start"

    def _finish_encoder(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        try:
            code = self._proc.wait(timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise OutputError(f"ffmpeg did not finish {self.path} within {FINISH_TIMEOUT_S:.0f} s") from err
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
        plans = ([["-c:a", "copy"]] if copy else []) + [_AUDIO_ENCODE[self.kind]]
        for i, audio_args in enumerate(plans):
            result = self._run_mux(audio_args)
            if result.returncode == 0:
                return
            if i == len(plans) - 1:
                reason = _ffmpeg_reason(result.stderr)
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
                *_faststart(self.kind), str(self._target.tmp)]  # fmt: skip
        try:
            return _run_ffmpeg(args, timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            msg = f"ffmpeg did not finish adding audio to {self.path} within {FINISH_TIMEOUT_S:.0f} s"
            raise OutputError(msg) from err


# ---------------------------------------------------------------- joining


def join_segments(
    segments: Sequence[PathLike],
    output: PathLike,
    *,
    audio_from: PathLike | None = None,
    audio_start: float = 0.0,
    duration: float | None = None,
) -> None:
    """Concatenate encoded segments into `output` without re-encoding (ffmpeg's concat demuxer), atomically.

    The segments must share codec settings and each start with a keyframe (separate encodes of one writer
    do). The audio of `audio_from` from `audio_start` for `duration` seconds is muxed in, copied when the
    container takes it, else re-encoded.
    """
    kind = os.path.splitext(os.fspath(output))[1].lower()[1:]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        for path in segments:
            escaped = os.path.abspath(path).replace("'", "'\\''")
            listing.write(f"file '{escaped}'\n")
    try:
        inputs = ["-f", "concat", "-safe", "0", "-i", listing.name]
        maps = ["-map", "0:v:0"]
        if audio_from is not None:
            length = ["-t", f"{duration:.6f}"] if duration else []
            inputs += ["-ss", f"{audio_start:.6f}", *length, "-i", os.fspath(audio_from)]
            maps += ["-map", "1:a:0?", *length]  # `?`: a source without audio gives a file without audio
        encode = _AUDIO_ENCODE.get(kind, _AUDIO_ENCODE["mp4"])  # AAC, or Opus for WebM
        with atomic_path(output) as tmp:
            for audio_args in (["-c:a", "copy"], encode):
                args = ["-v", "error", "-y", *inputs, *maps, "-c:v", "copy", *audio_args, *_faststart(kind), str(tmp)]
                try:
                    result = _run_ffmpeg(args, timeout=FINISH_TIMEOUT_S)
                except subprocess.TimeoutExpired as err:
                    msg = f"ffmpeg did not join the segments of {output} within {FINISH_TIMEOUT_S:.0f} s"
                    raise OutputError(msg) from err
                if result.returncode == 0:
                    break
            else:
                raise OutputError(f"cannot join the segments of {output} (ffmpeg: {_ffmpeg_reason(result.stderr)})")
    finally:
        os.unlink(listing.name)
