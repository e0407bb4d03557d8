"""Measures of a render against its source: flicker (against the source's motion), sharpness and strength, and
the look of the dream (burn, pixel coverage, structure; given the objective, gain and activation coverage)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import zip_longest

import cv2
import numpy as np

from ddvideo.errors import InputError
from ddvideo.flow import FlowSettings, flow_pair, warp

_END = object()


def _rgb(frame: np.ndarray, what: str, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(
            f"{what} frame {index} is {frame.dtype} {frame.shape}; expected uint8 (H, W, 3) RGB frames"
        )
    return frame


def _paired(output: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output, source) at one size, so pixels correspond: the output's where it is smaller (a render at --max-size
    is measured against its source shrunk to it, as the render read it; a source of odd sides loses the last column
    or row, as the render's reader drops it), else the source's."""
    (oh, ow), (sh, sw) = output.shape[:2], source.shape[:2]
    if (oh, ow) == (sh, sw):
        return output, source
    if 0 <= sh - oh <= 1 and 0 <= sw - ow <= 1:
        return output, np.ascontiguousarray(source[:oh, :ow])
    if oh <= sh and ow <= sw:
        return output, cv2.resize(source, (ow, oh), interpolation=cv2.INTER_AREA)
    shrinking = oh > sh or ow > sw
    return cv2.resize(output, (sw, sh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR), source


Energy = Callable[[np.ndarray], np.ndarray]  # (H, W, 3) uint8 frame -> (h, w) objective map (objective.objective_map)


@dataclass(frozen=True)
class Look:
    """The look of one dream against its source (see the functions below); gain and activation coverage are the
    network's view, given the objective's energy map."""

    strength: float
    sharpness: float
    source_sharpness: float
    burn: float
    pixel_coverage: float
    structure: float
    gain: float | None = None
    activation_coverage: float | None = None

    def lines(self) -> list[str]:
        lines = [f"sharpness {self.sharpness:.2f} (source {self.source_sharpness:.2f})",
                 f"strength {self.strength:.2f}",
                 f"burn {100 * self.burn:.2f} % (pixels moved more than {BURN_LEVELS} grey levels)",
                 f"pixel coverage {self.pixel_coverage:.3f} (share of {COVERAGE_BLOCK} px blocks holding half the change)",
                 f"structure {self.structure:.4f}"]
        if self.gain is not None:
            lines += [f"objective gain x{self.gain:.2f}",
                      f"activation coverage {self.activation_coverage:.3f}"]
        return lines


def measure_look(output: np.ndarray, source: np.ndarray, *, energy: Energy | None = None) -> Look:
    """The look of an (H, W, 3) uint8 dream against its source (at one size: _paired)."""
    output, source = _paired(_rgb(output, "output", 0), _rgb(source, "source", 0))
    gain = cover = None
    if energy is not None:
        source_map, output_map = energy(source), energy(output)
        gain, cover = objective_gain(output_map, source_map), activation_coverage(output_map, source_map)
    return Look(strength(output, source), sharpness(output), sharpness(source), burn(output, source),
                pixel_coverage(output, source), structure(output, source), gain, cover)


@dataclass(frozen=True)
class ClipMeasures:
    """How steady, sharp and strong a render is against its source; read the three together (blur lowers E_warp).
    `look` averages the look of every frame over the clip."""

    e_warp: float  # warping error (Lai et al. 2018), frames scaled to [0, 1]: lower is steadier
    look: Look = field(repr=False)

    def lines(self) -> list[str]:
        return [f"E_warp {self.e_warp:.6f}", *self.look.lines()]


def _mean_look(looks: list[Look]) -> Look:
    values = {}
    for name in Look.__dataclass_fields__:
        column = [getattr(look, name) for look in looks]
        values[name] = None if column[0] is None else float(np.mean(column))
    return Look(**values)


def measure_clip(source_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray], *,
                 method: str = "dis", energy: Energy | None = None) -> ClipMeasures:
    """E_warp and the look (sharpness, strength, burn, coverage...; measure_look) of a render against its source,
    in one pass over both clips.

    For each pair t, t+1 the flow and non-occlusion mask M_t come from the source frames
    (ddvideo.flow, same thresholds as the renderer); the output O_{t+1} is warped onto O_t and
    E_t = sum_p M_t(p) ||O_t(p) - warp(O_{t+1})(p)||^2 / sum_p M_t(p), the norm over RGB.
    E_warp is the mean of E_t over the pairs (pairs with no reliable pixel are skipped).
    Frames are uint8 (H, W, 3) RGB and are streamed, two at a time; a pair of another size is measured at one
    (_paired: the output's, where smaller). Both clips must have the same frame count.
    """
    FlowSettings(method=method)  # names the valid methods if this one is unknown
    total, pairs, count = 0.0, 0, 0
    looks: list[Look] = []
    prev_src = prev_out = None
    for src, out in zip_longest(source_frames, output_frames, fillvalue=_END):
        if src is _END or out is _END:
            shorter = "source" if src is _END else "output"
            raise InputError(f"the {shorter} clip ends after {count} frames but the other goes on; compare an output "
                             "with the source it was rendered from, read as the render read it (--start, --end, --fps)")
        out8, src = _paired(_rgb(out, "output", count), _rgb(src, "source", count))
        looks.append(measure_look(out8, src, energy=energy))
        out = out8.astype(np.float32) / 255.0
        if prev_src is not None:
            if src.shape != prev_src.shape:
                raise InputError(f"source frame {count} is {src.shape}, frame 0 was {prev_src.shape}; "
                                 "the source must keep one size")
            # (H, W, 2) flow on frame t's grid into t+1, and (H, W) unreliable pixels of t
            flow, unreliable = flow_pair(src, prev_src, method=method)
            reliable = ~unreliable
            n = int(np.count_nonzero(reliable))
            if n:
                diff_sq = np.sum((prev_out - warp(out, flow)) ** 2, axis=2)  # (H, W)
                total += float(np.sum(diff_sq[reliable])) / n
                pairs += 1
        prev_src, prev_out = src, out
        count += 1
    if count < 2:
        raise InputError(f"warping error needs at least 2 frames, got {count}")
    if pairs == 0:
        raise InputError("no pixel of the source has a reliable flow between frames; "
                         "the warping error cannot be measured on this clip")
    return ClipMeasures(total / pairs, _mean_look(looks))


def warping_error(
    source_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray], *, method: str = "dis"
) -> float:
    """Warping error E_warp of Lai et al. 2018 (lower is steadier), pixel values scaled to [0, 1]: see
    measure_clip, which gives sharpness and strength beside it."""
    return measure_clip(source_frames, output_frames, method=method).e_warp


def sharpness(frame: np.ndarray) -> float:
    """Mean |Laplacian| of the grey (H, W, 3) uint8 frame, on the 0-255 scale: falls as a picture blurs.

    Read it beside E_warp, which a blurred video lowers too.
    """
    grey = cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.mean(np.abs(cv2.Laplacian(grey, cv2.CV_32F))))


def strength(output: np.ndarray, source: np.ndarray) -> float:
    """Dream strength: mean |output - source| per pixel and channel, 0-255 scale (blur counts too: read it with
    sharpness)."""
    output, source = _paired(np.asarray(output), np.asarray(source))
    return float(np.mean(np.abs(output.astype(np.float32) - source)))


# -- the look of a still: does the dream cover the picture, or burn a spot? -----------------------------------------
BURN_LEVELS = 80  # grey levels: a pixel pushed further than this in some channel is clipped rainbow noise
COVERAGE_BLOCK = 16  # px: pixel coverage counts the dream's change in blocks of this side
STRUCTURE_SIGMA = 4.0  # px: structure compares the pictures blurred this much (is the picture still there)


def half_share(values: np.ndarray) -> float:
    """The smallest share of `values` (>= 0) that together hold half of their sum: 0.5 when all are equal, near 0
    when one holds everything. 0 for an all-zero input."""
    flat = np.sort(np.clip(np.asarray(values, np.float64).ravel(), 0, None))[::-1]
    total = flat.sum()
    if total <= 0:
        return 0.0
    return float((np.searchsorted(np.cumsum(flat), 0.5 * total) + 1) / flat.size)


def pixel_coverage(output: np.ndarray, source: np.ndarray, *, block: int = COVERAGE_BLOCK) -> float:
    """Share of block x block squares that hold half of sum |output - source|: about 0.5 for a dream spread over
    the whole picture, 0.1-0.2 for one in a few spots. Blur counts as change: read it with sharpness."""
    r = np.abs(output.astype(np.float32) - source.astype(np.float32)).sum(axis=2)
    h, w = (r.shape[0] // block) * block, (r.shape[1] // block) * block
    blocks = r[:h, :w].reshape(h // block, block, w // block, block).sum(axis=(1, 3))
    return half_share(blocks)


def burn(output: np.ndarray, source: np.ndarray, *, levels: int = BURN_LEVELS) -> float:
    """Share of pixels moved more than `levels` grey levels in some channel (0-1): the clipped rainbow noise of a
    burned spot."""
    r = np.abs(output.astype(np.int16) - source.astype(np.int16)).max(axis=2)
    return float(np.mean(r > levels))


def structure(output: np.ndarray, source: np.ndarray, *, sigma: float = STRUCTURE_SIGMA) -> float:
    """Correlation of the two grey pictures blurred by a Gaussian of `sigma` px: 1 where the picture is intact."""
    def coarse(frame):
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.GaussianBlur(grey, (0, 0), sigma).ravel()
    a, b = coarse(output), coarse(source)
    return float(np.corrcoef(a, b)[0, 1])


def objective_gain(dream_map: np.ndarray, source_map: np.ndarray) -> float:
    """The objective in the network's own eyes, dream over source: ratio of the means of two (h, w) maps of
    per-position activation energy (see objective_map). Blur cannot raise it: blurring lowers activations."""
    return float(np.mean(dream_map) / max(float(np.mean(source_map)), 1e-12))


def activation_coverage(dream_map: np.ndarray, source_map: np.ndarray) -> float:
    """Share of the map's positions that hold half of the positive gain (dream - source): about 0.5 when the
    network sees more everywhere, near 0 when one spot holds it all."""
    return half_share(np.asarray(dream_map, np.float64) - np.asarray(source_map, np.float64))
