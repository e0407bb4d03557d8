"""The multi-octave DeepDream engine: pure tensors in and out, one compiled graph per frame shape."""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import tensorflow as tf

from .errors import SettingsError
from .models import PRECISIONS, LoadedModel, dreaming_copy, resolve_precision
from .objective import (Term, build_extractor, check_guide, crop_border, feature_stride, guide_matrices, guided_term,
                        min_input_side, parse_objective)
from .pyramid import convolve, octave_shapes, resize_filtered, tile_spans

# Each gradient normalisation's own step on the [-1, 1] scale: the Keras example's for l2 (the gradient scaled to
# unit length over the whole octave), the TensorFlow tutorial's for std (unit standard deviation per pixel).
NORMALIZE_STEPS = {"l2": 20.0, "std": 0.01}


@dataclass(frozen=True)
class Recipe:
    """How the ascent climbs: the step's normalisation and size, whether the picture is clipped to its range after
    every step, the octave pyramid, and how much of the source's detail lost by shrinking returns at each octave.
    A recipe is the ascent; the objective (which layers) is separate. Values the engine reads, not branches."""

    normalize: str  # "l2": unit length over the octave (Keras); "std": unit standard deviation per pixel (tutorial)
    step: float  # on the [-1, 1] scale, after normalising
    clip: bool  # clip to [-1, 1] after every step: pixels pushed past the range stop feeding the network its
    # largest answers, so the step cannot pour into one burning spot
    reinject: float  # share of the detail lost by shrinking put back after each octave up to the base size (above
    # it, all: ABOVE_BASE_REINJECT): 1 re-injects it (Keras, keeps the picture's sharpest highlights for the network
    # to burn), 0 resizes the dream itself (tutorial)
    loss: str  # "square": mean of squared activations (Keras); "mean": mean activation (tutorial)
    octave_scale: float
    base_size: int  # long side the look is set at (octave_shapes); 0 = the frame's own size and the octaves below it
    max_loss: float | None = None  # stop an octave once the loss passes this
    border: int = 2  # activation pixels dropped on each side: edges of the receptive field dream badly


RECIPES = {
    # the Keras DeepDream example, exactly
    "keras": Recipe(normalize="l2", step=20.0, clip=False, reinject=1.0, loss="square", octave_scale=1.4,
                    base_size=0, max_loss=15.0),
    # the TensorFlow tutorial's ascent at three octaves 1.3 apart, up to the frame
    "tutorial": Recipe(normalize="std", step=0.01, clip=True, reinject=0.0, loss="mean", octave_scale=1.3,
                       base_size=0, border=0),
    # The default: the tutorial's ascent (clipped every step, so no spot can burn; the mean activation, which every
    # position raises alike; no border) on the anchored pyramid (one look at every size above 640 px), with half of
    # the detail lost by shrinking put back at each octave so the picture keeps its own. Real weights
    # (benchmarks/still-look-*.md): it covers the picture as the tutorial does, with less burn. Re-injecting none
    # softened grass (sharpness 0.69 of the source against 0.90); step 0.0125 burned more than the tutorial (the
    # face: 1.20 % of pixels against 0.86 %); anchored at 384, a 640 px picture read x1.32-1.36 (tutorial x3.53-3.55).
    "cover": Recipe(normalize="std", step=0.01, clip=True, reinject=0.5, loss="mean", octave_scale=1.3,
                    base_size=640, border=0),
}
RECIPE = "cover"  # the default
# With an anchored pyramid, the l2 step is scaled by sqrt(octave pixels / this), so it moves each pixel as far
# at every size as the Keras example's step moves the pixels of a 512x384 picture.
STEP_REFERENCE_PIXELS = 512 * 384
# Octaves above the base size take one step per DETAIL_SHARE iterations: with as many steps as the look octaves, a
# 4x larger picture came out 1.8x as strong (coffee.png, base 384, real weights); with one step each, 1.19x.
DETAIL_SHARE = 30
# Share of the detail lost by shrinking that an octave above the base size puts back, whatever the recipe's share
# below. Such an octave takes one small step, which cannot burn a highlight, so the recipe's reason to hold detail
# back does not hold there, and what is held back is the picture's own sharpness. Stills at the image defaults (real
# weights, `tutorial`, bfloat16), share 0.5 -> 1: sharpness over the source 0.60 -> 1.06 (nine photos at 1920 px),
# 0.66 -> 1.05 (the same at 960 px), 0.62 -> 1.01 (the star field at 1000 px); burn 0.63 -> 0.44 %, 0.56 -> 0.46 %,
# 1.44 -> 1.17 %; the same dream patterns, while the network reads the sharper picture a little less (objective gain
# x1.22 -> x1.16, x1.74 -> x1.56, x1.52 -> x1.40). Video frames above the base size re-inject all of it already
# (video.top_up), so a clip's first frame, a still, no longer opens softer than those after it: E_warp against the
# dream filmed still 1.83 -> 1.08 on a 1920 px pan over the nine photos (sharpness 1.26 -> 1.05 of it), 1.21 -> 0.91
# and 1.19 -> 0.93 on 960 px pans over a face and the star field (benchmarks/flicker-results.md).
ABOVE_BASE_REINJECT = 1.0
# A top-up's gradient is smoothed by these taps on each axis, halving the checkerboard a strided network's gradient
# carries, which a frame's few small steps add to the same content frame after frame until the dream turns to a
# crunchy waffle (coffee.png pan: none against [1, 2, 1] / 4, E_warp 1.36 -> 1.26). With each frame's dream laid on
# the frame as a still leaves it (video.rebase), [1, 2, 1] / 4 left a star field soft (sharpness 0.84), none
# flickered on grass and a painting (E_warp 1.32, 1.34); [1, 6, 1] / 8: 0.96, 1.15, 1.16 (flicker-results.md).
TOP_UP_TAPS = np.array([0.125, 0.75, 0.125], np.float32)
# A top-up's objective raises each position's value (its mean activation, or mean square for the square loss) to this
# power before averaging: below 1 it is concave, so a position where the network reads the carried dream weakly gains
# more from a step than one where it reads it strongly. With the plain mean a frame's few small steps went mostly
# where the network already saw the dream, and over a clip the dream gathered there: activation coverage of the last
# 8 frames over the first, 48-frame pans over samples/coffee.png / samples/coffee_pan.mp4 (real weights; E_warp
# against the dream filmed still), power 1 / 0.5 / 0.2: 0.79 / 0.82 / 0.85 (1.14 / 1.12 / 1.12); 0.80 / 0.83 / 0.86
# (0.83 / 0.83 / 0.83), sharpness within 0.01 (first measured patched in from outside; in the engine, on all six
# clips of benchmarks/flicker-results.md, +0.02 to +0.07). A still's steps keep the plain mean. Cost: 1.26 s a
# top-up at 540x360 either way (two runs each, 1.23-1.29 s).
TOP_UP_POWER = 0.2
POWER_FLOOR = 1e-3  # added to each position's value before the power, so one that reads nothing has a finite slope


@dataclass(frozen=True)
class DreamSettings:
    """How hard and at which scales to dream. Settings left None take the recipe's value (`resolved`)."""

    layers: str | None = None  # objective spec or preset name; None = the backbone's default (keras preset)
    recipe: str = RECIPE  # the ascent: a name in RECIPES
    octaves: int = 3
    octave_scale: float | None = None
    iterations: int = 30
    step: float | None = None  # on the [-1, 1] scale after normalising the gradient
    strength: float = 1.0  # multiplies the step: the one knob for how strong the dream is, in every mode and size
    # Long side, in pixels, of the octave the look is set at: octaves sit at fixed fractions of the picture, so a
    # small preview and a large render share their coarse octaves and the large one adds finer ones on top, with
    # the step meaning the same per pixel. 0: octaves from the frame's own size down (the Keras example).
    base_size: int | None = None
    max_loss: float | None = None  # stop an octave early once the loss exceeds this
    normalize: str | None = None  # "l2" (Keras example) or "std" (TensorFlow tutorial)
    tile_size: int = 512  # frames larger than this are dreamed in rolled tiles; 0 turns tiling off
    # the network's dtype; the image, loss and gradient normalisation stay float32. "auto": bfloat16 where the
    # hardware runs it fast, else float32 (models.auto_precision); a Dreamer's settings hold the resolved dtype
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.recipe in RECIPES, f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}"),
            (self.octaves >= 1, f"--octaves must be at least 1, got {self.octaves}"),
            (self.octave_scale is None or self.octave_scale > 1,
             f"--octave-scale must be greater than 1, got {self.octave_scale}"),
            (self.iterations >= 0, f"--iterations must be 0 or more, got {self.iterations}"),
            (self.step is None or (self.step >= 0 and math.isfinite(self.step)),
             f"--step must be a non-negative number, got {self.step}"),
            (self.strength > 0 and math.isfinite(self.strength), f"--strength must be a positive number, got {self.strength}"),
            (self.base_size is None or self.base_size >= 0,
             f"--base-size must be 0 (the frame's own size) or a size in pixels, got {self.base_size}"),
            (self.max_loss is None or self.max_loss > 0, f"--max-loss must be positive, got {self.max_loss}"),
            (self.normalize in (None, "l2", "std"), f"--normalize must be l2 or std, got {self.normalize!r}"),
            (self.tile_size >= 0, f"--tile-size must be 0 (off) or a size in pixels, got {self.tile_size}"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    @property
    def ascent(self) -> Recipe:
        """The recipe with this dream's own choices in place of its defaults."""
        recipe = RECIPES[self.recipe]
        normalize = self.normalize or recipe.normalize
        # a normalisation other than the recipe's brings its own step unless one is given
        step = self.step if self.step is not None else (
            recipe.step if normalize == recipe.normalize else NORMALIZE_STEPS[normalize])
        return replace(recipe, normalize=normalize, step=step,
                       octave_scale=self.octave_scale or recipe.octave_scale,
                       base_size=recipe.base_size if self.base_size is None else self.base_size,
                       max_loss=recipe.max_loss if self.max_loss is None else self.max_loss)

    def resolved(self) -> "DreamSettings":
        """Every setting the recipe fills in, written out (what a work folder records)."""
        a = self.ascent
        return replace(self, octave_scale=a.octave_scale, step=a.step, base_size=a.base_size, max_loss=a.max_loss,
                       normalize=a.normalize)

    @property
    def base_step(self) -> float:
        """The step at strength 1."""
        return self.ascent.step


@dataclass(frozen=True)
class DreamResult:
    frame: np.ndarray  # (H, W, 3) uint8
    loss: float  # objective value at the last step of the last octave


def to_unit(frame: np.ndarray | tf.Tensor) -> tf.Tensor:
    """(H, W, 3) uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(frame, tf.float32) / 127.5 - 1.0


def to_uint8(x: tf.Tensor) -> np.ndarray:
    """(H, W, 3) float [-1, 1] -> uint8 [0, 255], rounded."""
    return np.rint(np.clip((np.asarray(x) + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def default_jit_compile() -> bool:
    """XLA where it pays: on a GPU. On CPU it measured several times slower than TensorFlow's own kernels."""
    return bool(tf.config.list_physical_devices("GPU"))


class Dreamer:
    """Dreams frames with one model and one objective; compiles once per frame shape.

    `jit_compile` compiles the dream with XLA; None picks it per device (default_jit_compile). A `guide` picture,
    (H, W, 3) uint8, turns each layer's term into the guided term (objective.guided_term) toward its features.
    """

    # settings the compiled dream takes as inputs: dreamers differing only in these can share one (see `sharing`)
    RUNTIME_SETTINGS = ("iterations", "step", "strength", "max_loss")

    def __init__(self, loaded: LoadedModel, settings: DreamSettings = DreamSettings(), *,
                 jit_compile: bool | None = None, guide: np.ndarray | None = None):
        self.loaded = loaded
        # "auto" chosen once, and the recipe's values written out
        settings = replace(settings, precision=resolve_precision(settings.precision)).resolved()
        self.settings = settings
        self.recipe = settings.ascent
        self.terms: tuple[Term, ...] = parse_objective(settings.layers or loaded.default_layers)
        network = dreaming_copy(loaded, settings.precision, keep=frozenset(t.layer for t in self.terms))
        self.extractor = build_extractor(network, self.terms)
        self.min_side = min_input_side(self.extractor, border=self.recipe.border)
        if settings.tile_size and settings.tile_size < 2 * self.min_side:
            # a frame just over one tile splits into two half tiles, each of which must still fit the model
            raise SettingsError(
                f"--tile-size {settings.tile_size} is too small for this objective: use at least {2 * self.min_side}, or 0 for no tiling"
            )
        # the terms' weights are read when the dream runs, so reweight() changes the objective without a retrace
        self.term_weights = tf.Variable([t.weight for t in self.terms], dtype=tf.float32, trainable=False)
        self.guide = guide
        self._guides: dict[str, tf.Tensor] | None = None  # layer -> (positions, channels) guide features
        if guide is not None:
            check_guide(guide.shape, terms=self.terms, min_side=self.min_side)
            features = self.extractor(self.loaded.to_input(to_unit(guide)[None]), training=False)
            self._guides = guide_matrices(features, border=self.recipe.border)
        self.trace_count = 0  # incremented only while tracing: a test checks frames don't retrace
        self.jit_compile = default_jit_compile() if jit_compile is None else jit_compile
        self._graph = tf.function(self._dream_graph, jit_compile=self.jit_compile)
        # The network's forward and backward pass as a function of its own, not inlined into the step loop: in a
        # loop body TensorFlow's oneDNN rewrite skips MaxPoolGrad or not depending on op names, which made a step
        # 20 % slower on CPU and its rounding depend on what else the process had built (so resumes differed).
        # It takes any (h, w, 3), so it is traced once for every octave, tile and frame size: tracing the network
        # is most of a dreamer's start-up, and a new frame size then costs only the small octave graph around it.
        self._network_gradients = tf.function(
            self._piece_gradients, experimental_attributes={"_noinline": True},
            input_signature=(tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([], tf.float32),
                             tf.TensorSpec([], tf.float32)))
        self._roll = True  # random roll of tiled gradients; off only to show the seams it hides

    # -- public -----------------------------------------------------------------------------------
    def sharing(self, loaded: LoadedModel, settings: DreamSettings) -> "Dreamer | None":
        """A dreamer for `loaded` and `settings` that reuses this one's network and compiled graphs, or None where
        they need their own: another network, or settings that differ in more than RUNTIME_SETTINGS. `loaded` may
        differ in its description only (a seed random weights alone would use); its traces count in trace_count.
        """
        settings = replace(settings, precision=resolve_precision(settings.precision)).resolved()
        runtime = {name: getattr(settings, name) for name in self.RUNTIME_SETTINGS}
        if loaded.model is not self.loaded.model or replace(self.settings, **runtime) != settings:
            return None
        view = copy.copy(self)
        view.loaded, view.settings, view.recipe = loaded, settings, settings.ascent
        return view

    @functools.cached_property
    def grid(self) -> int:
        """Input pixels per activation pixel of the objective's coarsest layer (video mode aligns frames to it)."""
        return feature_stride(self.extractor)

    def reweight(self, weights: Sequence[float]) -> None:
        """New weights for the objective's terms, in `terms` order; the compiled dream is kept."""
        if len(weights) != len(self.terms):
            raise ValueError(f"{len(weights)} weights for {len(self.terms)} objective terms")
        self.term_weights.assign([float(w) for w in weights])

    def dream(self, frame: np.ndarray, *, seed: int = 0, iterations: int | None = None,
              strength: float | None = None, detail: float = 1.0, reinject: float | None = None,
              top_up: bool = False, own_step: float = 1.0, step_map: np.ndarray | None = None) -> DreamResult:
        """Dream one (H, W, 3) uint8 frame; same frame, settings and seed give the same result."""
        x, loss = self.dream_tensor(to_unit(frame), seed=seed, iterations=iterations, strength=strength, detail=detail,
                                    reinject=reinject, top_up=top_up, own_step=own_step, step_map=step_map)
        return DreamResult(to_uint8(x), float(loss))

    def bare(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8: `frame` as a still leaves it with no step (the recipe's share of its lost detail put back)."""
        return to_uint8(self.dream_tensor(to_unit(frame), iterations=0)[0])

    def dream_tensor(self, x: tf.Tensor, *, seed: int = 0, iterations: int | None = None,
                     strength: float | None = None, detail: float = 1.0,
                     reinject: float | None = None, top_up: bool = False, own_step: float = 1.0,
                     step_map: np.ndarray | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """(H, W, 3) float32 in [-1, 1] -> dreamed (H, W, 3) in [-1, 1] and the last loss, on the device.

        Inputs of the compiled dream, so none recompiles: `iterations` and `strength` replace the settings'.
        `detail` scales the step of octaves that only add detail (above the base size). `top_up` (a video frame,
        whose init already holds the look): the gradient is smoothed, and a frame up to the base size takes one
        step at its own octave, below coarser ones, at `own_step` times the step. `reinject` replaces the recipe's
        share of re-injected detail up to the base size. `step_map`, (H, W): a factor on the step at each pixel; None
        is 1 everywhere.
        """
        height, width = int(x.shape[0]), int(x.shape[1])
        self.octaves(height, width)
        s = self.settings
        return self._graph(
            tf.convert_to_tensor(x, tf.float32),
            tf.constant(s.iterations if iterations is None else iterations, tf.int32),
            tf.constant(s.base_step * (s.strength if strength is None else strength), tf.float32),
            tf.constant(math.inf if s.max_loss is None else s.max_loss, tf.float32),
            tf.constant(seed, tf.int32),
            tf.constant(detail, tf.float32),
            tf.constant(self.recipe.reinject if reinject is None else reinject, tf.float32),
            tf.constant(top_up, tf.bool),
            tf.constant(own_step, tf.float32),
            tf.ones([height, width, 1]) if step_map is None else tf.convert_to_tensor(step_map[..., None], tf.float32),
        )

    def octaves(self, height: int, width: int) -> list[tuple[int, int]]:
        """The octave shapes a (height, width) frame is dreamed at, smallest first."""
        s = self.settings
        return octave_shapes(height, width, octaves=s.octaves, scale=s.octave_scale, min_side=self.min_side,
                             base_size=s.base_size)

    def above_base(self, height: int, width: int) -> bool:
        """Whether a frame (or an octave) of this size stands for a rung above the base size, where it only adds
        detail to the look set below (a frame up to sqrt(scale) times the base size stands in for the base rung
        itself: octave_shapes)."""
        s = self.settings
        return bool(s.base_size) and max(height, width) > s.base_size * math.sqrt(s.octave_scale)

    # -- graph ------------------------------------------------------------------------------------
    def _dream_graph(self, original, iterations, step, max_loss, seed, detail, reinject, top_up, own_step, step_map):
        self.trace_count += 1
        shapes = self.octaves(int(original.shape[0]), int(original.shape[1]))
        # An anchored pyramid shrinks large frames many times: filter first, so its coarse octaves see the picture
        # a small frame would show (the Keras example resizes without, and stays exact).
        resize = resize_filtered if self.settings.base_size else tf.image.resize
        shrunk = resize(original, shapes[0])
        img = original
        loss = tf.constant(0.0)
        for index, shape in enumerate(shapes):
            img = resize(img, shape)
            steps, octave_step = iterations, step * self._step_scale(shape)
            # one step per 30 iterations sharpens what coarser octaves dreamed; a video frame takes `detail` of it
            # there, and one step of `own_step` at its own octave below the base size (below coarser ones)
            own = top_up if 0 < index == len(shapes) - 1 and not self.above_base(*shape) else False
            adds = self.above_base(*shape) or own
            steps = tf.where(adds, (iterations + DETAIL_SHARE - 1) // DETAIL_SHARE, iterations)
            octave_step = tf.where(adds, octave_step * tf.where(own, own_step, detail), octave_step)
            octave_step = octave_step * tf.image.resize(step_map, shape)  # (h, w, 1): the step at each pixel
            img, loss = self._ascend(img, steps, octave_step, max_loss, seed * 16 + index, top_up)
            # re-inject (the recipe's share of) the detail that shrinking the original lost at this scale; an octave
            # above the base size puts all of it back (ABOVE_BASE_REINJECT)
            same_size = resize(original, shape)
            share = ABOVE_BASE_REINJECT if self.above_base(*shape) else reinject
            img = img + share * (same_size - tf.image.resize(shrunk, shape))
            shrunk = same_size
        return tf.clip_by_value(img, -1.0, 1.0), loss

    def _step_scale(self, shape: tuple[int, int]) -> float:
        """Per-octave factor on the step: with an anchored pyramid an l2 step moves each pixel equally at every size."""
        if not self.recipe.base_size or self.recipe.normalize != "l2":
            return 1.0
        return math.sqrt(shape[0] * shape[1] / STEP_REFERENCE_PIXELS)


    def _ascend(self, img, iterations, step, max_loss, seed, top_up):
        """Gradient ascent for up to `iterations` steps at one octave, stopping once loss > max_loss; `step` is a
        (h, w, 1) step at each pixel."""
        float16 = self.settings.precision == "float16"

        def cond(i, img, loss, done, backoff):
            return tf.logical_and(i < iterations, tf.logical_not(done))

        power = tf.where(top_up, TOP_UP_POWER, 1.0)

        def body(i, img, loss, done, backoff):
            loss, grads = self._gradients(img, tf.stack([seed, i]), backoff, power)
            grads = tf.cond(top_up, lambda: convolve(convolve(grads, TOP_UP_TAPS, 0), TOP_UP_TAPS, 1), lambda: grads)
            if self.recipe.normalize == "l2":
                grads = tf.math.l2_normalize(grads)
            else:
                grads = grads / (tf.math.reduce_std(grads) + 1e-8)
            moved = img + step * grads
            if self.recipe.clip:
                moved = tf.clip_by_value(moved, -1.0, 1.0)
            if float16:  # an overflowed gradient skips its step and scales the loss down for the next
                finite = tf.reduce_all(tf.math.is_finite(grads))
                moved = tf.where(finite, moved, img)
                backoff = tf.where(finite, backoff, backoff / 256.0)
            return i + 1, moved, loss, loss > max_loss, backoff

        _, img, loss, _, _ = tf.while_loop(
            cond, body, (tf.constant(0), img, tf.constant(0.0), tf.constant(False), tf.constant(1.0)),
            parallel_iterations=1,
        )
        return img, loss

    def _loss(self, img, power):
        """(the objective, what the step climbs) for one (H, W, 3) image. The objective: the weighted terms, border
        cropped, each the mean (squared, for the square loss) activation, or with a guide the guided term. What the
        step climbs: the same, except that with `power` below 1 each term is the mean of each position's value to
        that power (TOP_UP_POWER); the objective is what --max-loss and a dream's loss report."""
        features = self.extractor(self.loaded.to_input(img[None]), training=False)
        loss, climbed = tf.constant(0.0), tf.constant(0.0)
        for k, term in enumerate(self.terms):
            act = crop_border(tf.cast(features[term.layer], tf.float32), self.recipe.border)
            if self._guides is not None:
                value = climb = guided_term(act, self._guides[term.layer])
            else:
                act = act if term.channel is None else act[..., term.channel]
                values = tf.square(act) if self.recipe.loss == "square" else act
                positions = values if term.channel is not None else tf.reduce_mean(values, axis=-1)
                value = tf.reduce_mean(values)
                # a select, not a branch: a still's graph and rounding stay as without the power (a dream amplifies
                # rounding: a tf.cond here moved a 480 px still by 9 grey levels on average)
                climb = tf.where(power < 1.0, tf.reduce_mean(tf.pow(tf.nn.relu(positions) + POWER_FLOOR, power)), value)
            loss += self.term_weights[k] * value
            climbed += self.term_weights[k] * climb
        return loss, climbed

    def _gradients(self, img, seed, backoff, power):
        """(loss, d loss / d img) for one (H, W, 3) image, tile by tile when it is larger than the tile size."""
        tile = self.settings.tile_size
        if not tile or (int(img.shape[0]) <= tile and int(img.shape[1]) <= tile):
            return self._network_gradients(img, backoff, power)
        return self._tiled_gradients(img, seed, tile, backoff, power)

    def _piece_gradients(self, img, backoff, power):
        """(loss, d loss / d img) of one untiled (h, w, 3) image; the gradient is float32 whatever the network's dtype."""
        # in float16 the mean loss's gradient underflows unless the loss is scaled up by about the pixel count first
        pixels = tf.cast(tf.shape(img)[0] * tf.shape(img)[1], tf.float32)
        scale = pixels * backoff if self.settings.precision == "float16" else None
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss, climbed = self._loss(img, power)
            target = climbed if scale is None else climbed * scale
        grads = tape.gradient(target, img)
        return loss, grads if scale is None else grads / scale

    def _tiled_gradients(self, img, seed, tile, backoff, power):
        """Gradients of equal tiles in a loop: the graph holds one tile's network whatever the frame size (it
        traces and compiles in seconds at 4K), and peak memory is one tile's activations."""
        height, width = int(img.shape[0]), int(img.shape[1])
        rows, cols = len(tile_spans(height, tile)), len(tile_spans(width, tile))
        th, tw = -(-height // rows), -(-width // cols)  # tile size, rounded up: rows * th >= height
        # Roll by a random offset so tile edges fall somewhere new each step and no seam builds up.
        if self._roll:
            shift = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=tile, dtype=tf.int32)
        else:
            shift = tf.zeros([2], tf.int32)
        rolled = tf.roll(img, shift, axis=[0, 1])
        # the rolled frame wraps around, so the few rows and columns the equal tiles overhang are its first ones
        padded = tf.concat([rolled, rolled[: rows * th - height]], axis=0)
        padded = tf.concat([padded, padded[:, : cols * tw - width]], axis=1)  # (rows * th, cols * tw, 3)

        def body(k, tiles, loss):
            piece = tf.slice(padded, tf.stack([k // cols * th, k % cols * tw, 0]), [th, tw, 3])
            piece_loss, g = self._network_gradients(piece, backoff, power)
            return k + 1, tiles.write(k, g), loss + piece_loss / (rows * cols)

        tiles = tf.TensorArray(tf.float32, size=rows * cols, element_shape=[th, tw, 3])
        _, tiles, loss = tf.while_loop(lambda k, *_: k < rows * cols, body, (tf.constant(0), tiles, tf.constant(0.0)),
                                       parallel_iterations=1)
        grads = tf.reshape(tf.transpose(tf.reshape(tiles.stack(), [rows, cols, th, tw, 3]), [0, 2, 1, 3, 4]),
                           [rows * th, cols * tw, 3])[:height, :width]  # overhang dropped: counted once, at the top
        return loss, tf.roll(grads, -shift, axis=[0, 1])
