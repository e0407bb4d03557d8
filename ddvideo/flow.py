"""Optical flow, warping and occlusion masks that carry the previous dream onto the next frame."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from ddvideo.errors import InputError, SettingsError

# Flow convention used throughout ddvideo (and by ddvideo.metrics):
#   flow = compute_flow(a, b) lives on b's pixel grid, and flow(p) points to where
#   the content of b at p was in a, so b(p) ≈ a(p + flow(p)) and warp(a, flow) ≈ b.
# In OpenCV's terms this is the flow computed from b to a ("backward" flow).

FLOW_METHODS = ("dis", "farneback", "none")
CARRIES = ("residual", "frame")
# Each carry's own blend: the residual fades only as the hold needs; a carried whole frame takes 0.3 of the source
# (earlier tools' usual weight; less lets the picture go, more drops the dream).
CARRY_BLEND = {"residual": 0.0, "frame": 0.3}

# Farneback parameters from DeepDreamAnim (REFERENCE.md).
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)

# Ruder et al. 2016 thresholds, shared with the warping-error metric.
_CONSISTENCY_REL, _CONSISTENCY_ABS = 0.01, 0.5
_BOUNDARY_REL, _BOUNDARY_ABS = 0.01, 0.002

# cv2.DISOpticalFlow is not thread-safe: one instance per thread and preset.
_local = threading.local()


@dataclass(frozen=True)
class FlowSettings:
    """How the previous dream is carried onto the next frame before dreaming it."""

    method: str = "dis"  # "dis", "farneback" or "none" (plain blend, no motion)
    # What moves along the flow: "residual", the previous dream minus its source frame, added to the new source
    # frame (the picture's own detail arrives fresh, only the dream is resampled), or "frame", the whole previous
    # dream (earlier tools' way: every frame low-passes the last and the picture smears).
    carry: str = "residual"
    # How much of the carried dream fades each frame ("frame": weight of the new source frame in the init). None:
    # the carry's own, CARRY_BLEND. The carried residual needs no fixed fade: the hold keeps it at the first
    # dream's strength. A fixed fade let the level wander with the motion instead: against the same dream filmed
    # still (benchmarks/flicker.py, real weights, 48 frames, strength / still), a fade of 0.05 held 0.88 of the
    # still on a sub-pixel pan and 0.83 on samples/coffee_pan.mp4; 0.02, 0.98 and 0.92.
    blend: float | str | None = None  # a schedule (ddvideo.schedule) sets it frame by frame
    # Hold the carried dream at the strength of the chain's first dream (a still): where the carried residual is
    # stronger than that on average it fades to it, and where weaker the frame takes a larger step (video.py).
    # Without it the level a chain settles at depends on the motion (the same settings held 0.95 of a still's
    # strength on a pan, 0.75 on a pan with a slow zoom), and a video opening with a still thinned out within a second.
    hold: bool = True
    occlusion: bool = True  # take the source frame where the flow is unreliable
    # Dream each frame shifted so the camera's motion keeps the picture on the same phase of the network's stride
    # grid: each frame's step lands on the content it landed on before, so the dream is crisper and a little
    # stronger, and flickers more. Six 48-frame clips, real weights, the own step at 4x (benchmarks/flicker-results.md),
    # aligned against not, each against the filmed still: sharpness 0.93-1.30 against 0.88-1.23, strength 1.01-1.07
    # against 0.96-1.01, E_warp 0.86-1.49 against 0.75-1.37 (over 1.25 on two clips against one); no burned pixel
    # either way (before the hold's cap it stacked burned specks: tail burn up to 2.02 % against 0.54 %).
    align: bool = False

    def __post_init__(self) -> None:
        _check_method(self.method)
        if self.carry not in CARRIES:
            raise SettingsError(f"unknown carry {self.carry!r}; choose one of {', '.join(CARRIES)}")
        if self.blend is None:  # settled here, so settings records and comparisons hold the number
            object.__setattr__(self, "blend", CARRY_BLEND[self.carry])
        if isinstance(self.blend, str):
            from .schedule import scheduled

            object.__setattr__(self, "blend", scheduled(self.blend, option="--blend"))
        if isinstance(self.blend, str):
            pass  # a schedule: its values are checked once the clip's length is known (video.render_video)
        elif isinstance(self.blend, bool) or not isinstance(self.blend, (int, float)):
            raise SettingsError(f"flow blend {self.blend!r} is not a number; use a value in [0, 1]")
        elif math.isnan(self.blend) or not 0.0 <= self.blend <= 1.0:
            raise SettingsError(f"--blend {self.blend!r} is out of range; use a value in [0, 1]")
        if not isinstance(self.hold, bool):
            raise SettingsError(f"flow hold {self.hold!r} is not a boolean; use True or False")
        if not isinstance(self.occlusion, bool):
            raise SettingsError(f"flow occlusion {self.occlusion!r} is not a boolean; use True or False")

    @property
    def holds(self) -> bool:
        """Whether the carried dream is held at the chain's first strength: hold on, and the residual carried."""
        return self.hold and self.carry == "residual"

    @property
    def aligns(self) -> bool:
        """Whether frames are dreamed on the grid phase of the first: alignment on, and a flow to follow."""
        return self.align and self.method != "none"


def _check_method(method: str) -> None:
    if method not in FLOW_METHODS:
        raise SettingsError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey from an (H, W, 3) RGB or (H, W) grey uint8 frame."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise InputError(f"frame dtype {frame.dtype} is not supported for optical flow; pass uint8 frames")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    raise InputError(f"frame shape {frame.shape} is not (H, W, 3) RGB or (H, W) grey")


def _dis(preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> cv2.DISOpticalFlow:
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    if preset not in cache:
        cache[preset] = cv2.DISOpticalFlow_create(preset)
    return cache[preset]


def compute_flow(prev: np.ndarray, curr: np.ndarray, *, method: str = "dis") -> np.ndarray:
    """(H, W, 2) float32 (dx, dy) flow on curr's grid pointing into prev: curr(p) ≈ prev(p + flow(p)).

    So `warp(prev, compute_flow(prev, curr))` ≈ curr. Method "none" assumes no motion (zero flow).
    """
    _check_method(method)
    grey_prev, grey_curr = _grey(prev), _grey(curr)
    if grey_prev.shape != grey_curr.shape:
        raise InputError(f"frame sizes differ: {grey_prev.shape} and {grey_curr.shape}; resize them to match")
    if method == "none":
        return np.zeros((*grey_curr.shape, 2), np.float32)
    # OpenCV's calc(I0, I1) gives I0(p) ≈ I1(p + flow(p)), hence curr first.
    if method == "dis":
        flow = _dis().calc(grey_curr, grey_prev, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(grey_curr, grey_prev, None, **_FARNEBACK)
    return flow.astype(np.float32, copy=False)


def warp(image: np.ndarray, flow: np.ndarray, *, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample `image` at p + flow(p) (bilinear, edges replicated); same dtype and shape as `image`.

    `image` is (H, W) or (H, W, C) uint8 or float32; `flow` is (H, W, 2) in compute_flow's convention.
    """
    image = np.asarray(image)
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != image.shape[:2]:
        raise InputError(f"flow shape {flow.shape} does not fit image {image.shape}; expected (H, W, 2)")
    h, w = flow.shape[:2]
    # (H, W) absolute sampling coordinates
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    out = cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)  # remap drops a trailing channel axis of size 1


def occlusion_mask(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """(H, W) bool on the second frame's grid, True where its flow is unreliable (Ruder et al. 2016).

    For frames a then b: `flow_bw = compute_flow(a, b)` (on b's grid, pointing into a) and
    `flow_fw = compute_flow(b, a)` (on a's grid, pointing into b). A pixel of b is unreliable
    where the two flows disagree (disocclusion), at a motion boundary of flow_bw, or where
    flow_bw points outside frame a (content entering at the edges).
    """
    flow_fw = np.asarray(flow_fw, np.float32)
    flow_bw = np.asarray(flow_bw, np.float32)
    if flow_fw.shape != flow_bw.shape:
        raise InputError(f"forward flow shape {flow_fw.shape} differs from backward {flow_bw.shape}")
    # (H, W, 2) forward flow pulled onto b's grid; ≈ -flow_bw where consistent. Channels as planes, OpenCV for the
    # arithmetic: this runs for every frame, and numpy's version took as long as one of the two flows.
    fu, fv = cv2.split(warp(flow_fw, flow_bw))
    bu, bv = cv2.split(flow_bw)
    mismatch = cv2.magnitude(fu + bu, fv + bv) ** 2
    flow_sq = cv2.magnitude(bu, bv) ** 2
    energy = cv2.magnitude(fu, fv) ** 2 + flow_sq
    inconsistent = mismatch > _CONSISTENCY_REL * energy + _CONSISTENCY_ABS
    grad_sq = sum(_derivative(plane, axis) ** 2 for plane in (bu, bv) for axis in (0, 1))
    boundary = grad_sq > _BOUNDARY_REL * flow_sq + _BOUNDARY_ABS
    return inconsistent | boundary | _outside(flow_bw)


def _derivative(plane: np.ndarray, axis: int) -> np.ndarray:
    """np.gradient of a float32 plane along `axis`: central differences inside, one-sided at the edges."""
    kernel = np.array([[-0.5, 0.0, 0.5]], np.float32)
    out = cv2.filter2D(plane, -1, kernel if axis == 1 else kernel.T, borderType=cv2.BORDER_REPLICATE)
    if plane.shape[axis] > 1:  # at the edges replication halves the one-sided difference
        first, last = (slice(0, 1), slice(-1, None))
        if axis == 1:
            out[:, first], out[:, last] = 2 * out[:, first], 2 * out[:, last]
        else:
            out[first], out[last] = 2 * out[first], 2 * out[last]
    return out


def _outside(flow: np.ndarray) -> np.ndarray:
    """(H, W) True where p + flow(p) leaves the frame: content entering at the edges has no source."""
    h, w = flow.shape[:2]
    x = flow[..., 0] + np.arange(w)[None, :]
    y = flow[..., 1] + np.arange(h)[:, None]
    # half a pixel of slack: bilinear sampling there still reads the edge pixel itself
    return (x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)


def flow_pair(prev: np.ndarray, curr: np.ndarray, *, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """(flow, unreliable): compute_flow(prev, curr) and its occlusion_mask, both on curr's grid."""
    flow_bw = compute_flow(prev, curr, method=method)
    if method == "none":
        return flow_bw, np.zeros(flow_bw.shape[:2], bool)
    flow_fw = compute_flow(curr, prev, method=method)
    return flow_bw, occlusion_mask(flow_fw, flow_bw)


Motion = tuple  # (flow (H, W, 2) or None, unreliable (H, W) bool or None) of one source frame pair


def motion(prev_source: np.ndarray, source: np.ndarray, *, settings: FlowSettings) -> Motion:
    """What coherent blending needs to know about the step prev_source -> source (None parts are skipped)."""
    if settings.method == "none":
        return None, None
    if settings.occlusion:
        return flow_pair(prev_source, source, method=settings.method)
    return compute_flow(prev_source, source, method=settings.method), None


def global_shift(flow: np.ndarray | None) -> np.ndarray:
    """(2,) float (dx, dy): how far the picture moved since the previous frame (the median of -flow); 0 without flow."""
    if flow is None:
        return np.zeros(2)
    return -np.median(np.asarray(flow, np.float32).reshape(-1, 2), axis=0).astype(np.float64)


# With the hold, the carried dream is clipped to this many times the held strength in every channel: burned specks
# cannot feed on themselves from frame to frame. 48-frame pans, real weights, burn of the last 8 frames (pixels
# moved over 80 grey levels): samples/coffee.png 1.52 % without, 0.91 % at 6x (the still 1.22 %); at half a still's
# step a frame, grass 1.04 % at 6x, 0.00 % at 4x (the still 0.57 %), the shipped clip 1.13 % and 0.00 % (1.33 %).
HOLD_CAP = 4.0
# The carried dream is resampled every frame, so its interpolation decides how fast it blurs: on a sub-pixel pan
# with random-weight test dreams Lanczos kept 0.89 of the sharpness where bicubic kept 0.71 (bilinear less still).
CARRY_INTERPOLATION = cv2.INTER_LANCZOS4


def cap_dream(dream: np.ndarray, source: np.ndarray) -> np.ndarray:
    """`dream` with no pixel moved further from `source` than HOLD_CAP times the capped dream's own strength (mean
    |dream - source|): a held chain's first frame, capped as blend_init caps every frame it carries at the strength
    the chain then holds, so carrying it drops none of the still's strongest pixels at once."""
    residual = cv2.subtract(dream, source, dtype=cv2.CV_32F)
    magnitude = np.sort(np.abs(residual), axis=None)
    n = magnitude.size
    # with the k largest clipped to b: b = HOLD_CAP * (sum of the others + k b) / n, so b = HOLD_CAP * rest / (n -
    # HOLD_CAP k); the cap is the first such b that clips no value below it and spares none above it
    k = np.arange(int(np.ceil(n / HOLD_CAP)))
    rest = np.concatenate([[0.0], np.cumsum(magnitude, dtype=np.float64)])[n - k]
    bound = HOLD_CAP * rest / (n - HOLD_CAP * k)
    valid = (magnitude[n - k - 1] <= bound) & (bound <= np.append(magnitude, np.inf)[n - k]) & (bound > 0)
    # none where most values are zero (a faint scheduled dream): then the plain HOLD_CAP x its strength
    cap = bound[valid][0] if valid.any() else HOLD_CAP * rest[0] / n
    np.clip(residual, -cap, cap, out=residual)
    return cv2.add(source.astype(np.float32), residual, dtype=cv2.CV_8U)


def blend_init(source: np.ndarray, prev_dream: np.ndarray, step: Motion, *, settings: FlowSettings,
               prev_source: np.ndarray | None = None, hold: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 init for dreaming `source`: the previous dream moved along the flow.

    carry "residual": init = source + (1 - blend) * warped (prev_dream - prev_source); the picture's own detail
    comes fresh from `source` each frame and only the dream moves, so resampling blur does not compound through
    the picture. carry "frame": init = blend * source + (1 - blend) * warped prev_dream (earlier tools' way).
    Unreliable pixels (occluded or at motion boundaries) carry nothing. With no flow, nothing moves.
    `hold` (residual carry, settings.hold on): the chain's strength in grey levels (mean |dream - source|); a
    carried residual stronger than that on average is scaled down to it, beyond the fade, and no pixel carries
    more than HOLD_CAP times it.
    """
    source = np.asarray(source)
    prev_dream = np.asarray(prev_dream)
    if prev_dream.shape != source.shape:
        raise InputError(
            f"frame shapes differ: source {source.shape}, prev_dream {prev_dream.shape}; dream every frame at the source size"
        )
    src = source.astype(np.float32)
    residual = settings.carry == "residual" and prev_source is not None
    carried = (cv2.subtract(prev_dream, np.asarray(prev_source), dtype=cv2.CV_32F) if residual
               else prev_dream.astype(np.float32))
    flow, unreliable = step
    if flow is not None:
        carried = warp(carried, flow, interpolation=CARRY_INTERPOLATION if residual else cv2.INTER_LINEAR)
    if unreliable is not None:
        carried[unreliable] = 0.0 if residual else src[unreliable]
    if residual:
        keep = 1.0 - settings.blend
        if settings.holds and hold is not None:
            np.clip(carried, -HOLD_CAP * hold, HOLD_CAP * hold, out=carried)
            carried_strength = float(np.mean(np.abs(carried)))
            keep = min(keep, hold / carried_strength) if carried_strength > 0 else keep
        weights = (1.0, keep)
    else:
        weights = (settings.blend, 1.0 - settings.blend)
    # rounded half to even and clipped to 0-255 as np.clip(np.rint(...)) would, in one pass (this runs between dreams)
    return cv2.addWeighted(src, weights[0], carried, weights[1], 0.0, dtype=cv2.CV_8U)


def coherent_init(
    source: np.ndarray, prev_source: np.ndarray, prev_dream: np.ndarray, *, settings: FlowSettings,
    hold: float | None = None,
) -> np.ndarray:
    """blend_init with the motion computed here from the two source frames."""
    if np.shape(prev_source) != np.shape(source):
        raise InputError(
            f"frame shapes differ: source {np.shape(source)}, prev_source {np.shape(prev_source)}; "
            f"dream every frame at the source size"
        )
    return blend_init(source, prev_dream, motion(prev_source, source, settings=settings), settings=settings,
                      prev_source=prev_source, hold=hold)
