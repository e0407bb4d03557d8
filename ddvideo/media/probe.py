"""Probing a video file: its size, streams and constant read rate, from `ffmpeg -i` and its packet timestamps."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ddvideo.errors import InputError

from .ffmpeg import PROBE_TIMEOUT_S, ffmpeg_cmd, ffmpeg_reason, run_ffmpeg
from .paths import PathLike, existing_input

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


def read_header(p: Path) -> _Header:
    """Parse `ffmpeg -i`; raise InputError when ffmpeg cannot open the file."""
    try:
        stderr = run_ffmpeg(["-i", str(p)], timeout=PROBE_TIMEOUT_S).stderr
    except subprocess.TimeoutExpired as err:
        raise InputError(f"not a readable video: {p} (ffmpeg gave no answer in {PROBE_TIMEOUT_S:.0f} s)") from err
    container = re.search(r"^Input #0, (.+?), from ", stderr, re.M)
    if container is None:
        raise InputError(f"not a readable video: {p} (ffmpeg: {ffmpeg_reason(stderr)})")
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
        result = subprocess.run(ffmpeg_cmd(*args), stdin=subprocess.DEVNULL, capture_output=True,
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
    p = existing_input(path)
    header = read_header(p)
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
