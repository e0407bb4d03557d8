"""The octave engine: parity with the Keras example, compile-once, tiling, determinism, loss behaviour."""

from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
import keras

from conftest import SMALL_LAYERS, textured_image
from ddvideo import dream
from ddvideo.dream import Dreamer, DreamSettings, to_uint8, to_unit
from ddvideo.pyramid import octave_shapes, tile_spans
from ddvideo.errors import SettingsError
from ddvideo.metrics import strength
from ddvideo.models import auto_precision, dreaming_copy, load_model, resolve_precision


def keras_example_dream(model, layer_weights, image, *, octaves, scale, iterations, step, max_loss):
    """A straightforward transcription of the Keras DeepDream example's algorithm."""
    extractor = keras.Model(model.inputs, {n: model.get_layer(n).output for n in layer_weights})

    def compute_loss(x):
        features = extractor(x)
        loss = tf.zeros(shape=())
        for name, coeff in layer_weights.items():
            act = features[name]
            loss += coeff * tf.reduce_mean(tf.square(act[:, 2:-2, 2:-2, :]))
        return loss

    @tf.function
    def gradient_ascent_step(x, lr):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = compute_loss(x)
        grads = tape.gradient(loss, x)
        grads = tf.math.l2_normalize(grads)
        return loss, x + lr * grads

    def gradient_ascent_loop(x):
        for _ in range(iterations):
            loss, x = gradient_ascent_step(x, step)
            if loss > max_loss:
                break
        return x

    original = keras.applications.inception_v3.preprocess_input(image[None].astype("float32"))
    original_shape = original.shape[1:3]
    shapes = [original_shape] + [tuple(int(d / scale**i) for d in original_shape) for i in range(1, octaves)]
    shapes = shapes[::-1]
    shrunk = tf.image.resize(original, shapes[0])
    x = tf.identity(original)
    for shape in shapes:
        x = tf.image.resize(x, shape)
        x = gradient_ascent_loop(x)
        lost = tf.image.resize(original, shape) - tf.image.resize(shrunk, shape)
        x += lost
        shrunk = tf.image.resize(original, shape)
    return np.rint(np.clip((x[0].numpy() + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def test_parity_with_keras_example(inception):
    # the example's loop run on the network ddvideo dreams with (batch norms folded: see the next test)
    image = textured_image(170, 210, seed=1)
    weights = {"mixed2": 0.5, "mixed3": 1.5}
    # two steps an octave: the ascent is chaotic (max-pool routes flip on a rounding), and after four steps a few
    # pixels of 107 000 already differed by 2 grey levels with this TensorFlow (7 of them), after two by none
    settings = DreamSettings(layers="mixed2=0.5,mixed3=1.5", recipe="keras", octaves=2, iterations=2,
                             precision="float32")  # the Keras-exact path
    ours = Dreamer(inception, settings).dream(image).frame
    network = dreaming_copy(inception, keep=frozenset(weights)).model
    reference = keras_example_dream(network, weights, image, octaves=2, scale=1.4, iterations=2, step=20.0, max_loss=15.0)
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.max() <= 1, f"max abs difference {diff.max()} grey levels"
    # and the dream really changed the picture, so the comparison means something
    assert np.abs(ours.astype(int) - image.astype(int)).mean() > 2
    # against the example on the unfolded network only rounding differs: a few pixels by a grey level or two
    unfolded = keras_example_dream(inception.model, weights, image, octaves=2, scale=1.4, iterations=2, step=20.0, max_loss=15.0)
    diff = np.abs(ours.astype(int) - unfolded.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.05, (diff.max(), diff.mean())


def tutorial_dream(model, layers, image, *, iterations, step=0.01, scale=1.3):
    """A straightforward transcription of the TensorFlow DeepDream tutorial's ascent at octaves scale**-2, **-1, 1:
    loss the sum of mean activations, gradient over its standard deviation, the image clipped after every step and
    the dream itself resized from octave to octave."""
    extractor = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    img = tf.constant(image, tf.float32) / 127.5 - 1.0
    base_shape = np.array(image.shape[:2], np.float32)
    for n in range(-2, 1):
        img = tf.image.resize(img, (base_shape * scale**n).astype(np.int32))
        for _ in range(iterations):
            with tf.GradientTape() as tape:
                tape.watch(img)
                loss = tf.add_n([tf.reduce_mean(a) for a in extractor(img[None])])
            gradients = tape.gradient(loss, img)
            gradients /= tf.math.reduce_std(gradients) + 1e-8
            img = tf.clip_by_value(img + gradients * step, -1, 1)
    return np.rint((img.numpy() + 1.0) * 127.5).astype(np.uint8)


def test_tutorial_recipe_matches_the_tutorial_loop(inception):
    image = textured_image(182, 208, seed=6)  # octaves 107x123, 140x160 and the frame, alike in both
    layers = ("mixed2", "mixed3")
    settings = DreamSettings(layers="mixed2,mixed3", recipe="tutorial", iterations=3, precision="float32")
    ours = Dreamer(inception, settings).dream(image).frame
    reference = tutorial_dream(dreaming_copy(inception, keep=frozenset(layers)).model, layers, image, iterations=3)
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.max() <= 2, f"max abs difference {diff.max()} grey levels"
    assert np.abs(ours.astype(int) - image.astype(int)).mean() > 2  # it dreamed: the comparison means something


def test_folded_network_computes_the_same_features_and_gradients(inception):
    kept, folded_conv = [layer.name for layer in inception.model.layers if type(layer) is keras.layers.Conv2D][5:7]
    keep = frozenset({"mixed3", kept})
    folded = dreaming_copy(inception, keep=keep).model
    assert dreaming_copy(inception, keep=keep).model is folded  # built once
    names = ["mixed3", kept, folded_conv]
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert "BatchNormalization" in kinds and "_Folded" in kinds  # the kept conv's norm stays, the others fold
    assert sum(type(layer).__name__ == "BatchNormalization" for layer in folded.layers) == 1
    x = tf.constant(textured_image(120, 150, seed=4)[None], tf.float32) / 127.5 - 1.0

    def run(model):
        extractor = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = extractor(x, training=False)
            loss = tf.add_n([tf.reduce_mean(tf.square(o)) for o in outputs])
        return [o.numpy() for o in outputs], tape.gradient(loss, x).numpy()

    (features, grads), (expected, expected_grads) = run(folded), run(inception.model)
    for name, got, want in zip(names[:2], features, expected):
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max() + 1e-6, name
    assert np.abs(grads - expected_grads).max() <= 1e-3 * np.abs(expected_grads).max()
    # the other conv is folded, so its output now carries its norm (with random weights a 1 / sqrt(1 + 0.001) scale)
    assert np.abs(features[2] - expected[2]).max() > 3e-4 * np.abs(expected[2]).max()


def test_parity_holds_with_early_stop(inception):
    image = textured_image(120, 130, seed=2)
    settings = DreamSettings(layers="mixed2=1.0", recipe="keras", octaves=1, iterations=6, max_loss=1e-4,
                             precision="float32")
    ours = Dreamer(inception, settings).dream(image).frame
    network = dreaming_copy(inception, keep=frozenset({"mixed2"})).model
    reference = keras_example_dream(network, {"mixed2": 1.0}, image, octaves=1, scale=1.4, iterations=6, step=20.0, max_loss=1e-4)
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1


def test_compiles_once_per_shape(inception):
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1))
    a = textured_image(112, 128, seed=3)
    b = textured_image(112, 128, seed=4)
    for frame in (a, b, a, b):
        dreamer.dream(frame, seed=7)
    assert dreamer.trace_count == 1
    dreamer.dream(a, seed=8, iterations=2)  # new seed and iteration count are tensors: no retrace
    assert dreamer.trace_count == 1
    dreamer.dream(textured_image(120, 128), seed=0)
    assert dreamer.trace_count == 2


def test_the_network_is_traced_once_for_every_octave_and_frame_size(inception):
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=2, iterations=1))
    for height, width in ((150, 160), (170, 150)):
        dreamer.dream(textured_image(height, width), seed=0)
    assert dreamer.trace_count == 2  # the small graph of octaves around it: once per frame size
    assert dreamer._network_gradients.experimental_get_tracing_count() == 1


def test_deterministic_for_a_seed(inception):
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=2, tile_size=230))
    image = textured_image(240, 250, seed=5)  # tiled, so the random roll is exercised
    first = dreamer.dream(image, seed=3).frame
    assert np.array_equal(first, dreamer.dream(image, seed=3).frame)
    assert not np.array_equal(first, dreamer.dream(image, seed=4).frame)


def test_loss_rises_over_steps(inception):
    image = textured_image(120, 120, seed=6)
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, max_loss=None, step=5.0))
    losses = [dreamer.dream(image, iterations=n).loss for n in (1, 4, 8)]
    assert losses[0] < losses[1] < losses[2]


def test_channel_objective_targets_that_channel(inception):
    image = textured_image(120, 120, seed=7)
    dreamer = Dreamer(inception, DreamSettings(layers="mixed2:5", octaves=1, iterations=5, max_loss=None))
    extractor = keras.Model(inception.model.inputs, inception.model.get_layer("mixed2").output)

    def channel_energy(frame):
        act = extractor(to_unit(frame)[None]).numpy()[0, 2:-2, 2:-2]
        return np.mean(act[..., 5] ** 2), np.mean(np.delete(act, 5, axis=-1) ** 2)

    before_target, before_rest = channel_energy(image)
    after_target, after_rest = channel_energy(dreamer.dream(image).frame)
    # the named channel grows much more than the layer as a whole
    assert after_target / before_target > 1.5 * (after_rest / before_rest)


def test_zero_step_changes_nothing_but_resampling(inception):
    image = textured_image(120, 120, seed=8)
    out = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, step=0.0, iterations=3)).dream(image).frame
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 1


def test_a_top_up_takes_one_step_of_its_own_at_the_frames_own_octave(inception):
    """A video frame's init already holds the look: with `top_up` a frame up to the base size takes one step of
    `own_step` at its own octave, while the coarser ones dream as before; `detail` is for octaves above the base
    size only. The options are inputs, not new graphs, and a one-octave dream has nothing coarser: it is unchanged."""
    image = textured_image(120, 120, seed=9)
    two = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=2, iterations=3))
    plain = [two.dream(image, detail=d).frame for d in (0.0, 1.0)]
    topped = [two.dream(image, own_step=s, top_up=True).frame for s in (0.0, 1.0)]
    assert np.array_equal(*plain)  # a frame below the base size: `detail` alone touches none of its octaves
    assert np.array_equal(two.dream(image, own_step=1.0, detail=0.0, top_up=True).frame, topped[1])
    assert not np.array_equal(*topped)  # with `top_up`, its own octave takes `own_step`
    assert np.abs(topped[0].astype(int) - image).mean() > 0.5  # the coarser octave still dreamed
    # the own octave moves the frame by `own_step`: three times the step moves it further
    moved = [np.abs(two.dream(image, own_step=s, top_up=True).frame.astype(int) - topped[0]).mean() for s in (1.0, 3.0)]
    assert moved[1] > 1.5 * moved[0] > 0
    assert two.trace_count == 1
    one = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=3))
    assert np.array_equal(one.dream(image, top_up=True, own_step=0.0).frame, one.dream(image, top_up=True).frame)


def test_a_top_up_steps_most_where_the_network_reads_least(inception, monkeypatch):
    """A top-up's objective is concave in each position's activation (TOP_UP_POWER), so its step goes more to the
    part of a frame the network reads weakly than the plain mean's would: a video's few steps a frame spread the
    dream instead of gathering it where the network already sees it."""
    strong = textured_image(96, 64, seed=2)
    weak = (128 + (textured_image(96, 64, seed=3).astype(int) - 128) // 8).astype(np.uint8)  # 1/8 of the contrast
    image = np.concatenate([strong, weak], axis=1)
    settings = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1, strength=5.0)

    def weak_share() -> float:
        moved = np.abs(Dreamer(inception, settings).dream_tensor(to_unit(image), top_up=True)[0].numpy()
                       - to_unit(image).numpy()).mean(axis=(0, 2))
        return float(moved[64:].sum() / moved.sum())

    concave = weak_share()
    monkeypatch.setattr(dream, "TOP_UP_POWER", 1.0)
    plain = weak_share()
    assert concave > 1.2 * plain, (concave, plain)


def test_max_loss_reads_a_top_ups_objective_not_what_it_climbs(inception):
    """--max-loss reads the objective a still reports, in a top-up too, where the step climbs the concave value: a
    frame whose objective stays under it takes every iteration it is given, though what it climbs reads above."""
    image = textured_image(96, 128, seed=6)
    probe = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1))
    objective, climbed = (float(v) for v in probe._loss(to_unit(image), tf.constant(dream.TOP_UP_POWER)))
    assert objective < 0.1 < 0.5 < climbed  # random weights' mean activation is small; to the power 0.2, it is not
    settings = replace(probe.settings, max_loss=(objective + climbed) / 2)
    once, twice = (Dreamer(inception, settings).dream(image, top_up=True, iterations=n).frame for n in (1, 2))
    assert strength(twice, once) > 0.1  # the second step was taken


def checkerboard(change: np.ndarray) -> float:
    """Share of a change's energy at the pixel grid's Nyquist frequency (+1/-1 alternating on both axes), against
    the energy of its 2x2 block means' pattern: 0 for a smooth change."""
    c = change.astype(np.float64).mean(axis=2)
    h, w = c.shape[0] // 2 * 2, c.shape[1] // 2 * 2
    blocks = c[:h, :w].reshape(h // 2, 2, w // 2, 2)
    nyquist = blocks[:, 0, :, 0] - blocks[:, 0, :, 1] - blocks[:, 1, :, 0] + blocks[:, 1, :, 1]
    return float(np.mean(nyquist**2) / np.mean(blocks.mean(axis=(1, 3)) ** 2 * 16 + nyquist**2))


def test_a_top_up_steps_without_the_networks_checkerboard(inception):
    """A strided network's gradient alternates from pixel to pixel; a video frame's small steps would add that
    checkerboard to the same content frame after frame, so a top-up's gradient is smoothed (TOP_UP_TAPS halve it on
    each axis: the plain step's share here 0.39, the top-up's 0.12)."""
    image = textured_image(96, 128, seed=4)
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1, strength=20.0))
    step = lambda **kw: dreamer.dream_tensor(to_unit(image), **kw)[0].numpy() - to_unit(image).numpy()
    plain, topped = checkerboard(step()), checkerboard(step(top_up=True))
    assert plain > 0.1 and topped < plain / 2, (plain, topped)


def test_tiling_leaves_no_seams(inception):
    """Change per column averaged over rows: no peak or dip at the tile edges."""
    image = np.full((120, 460, 3), 128, np.uint8) + np.random.default_rng(0).integers(-20, 20, (120, 460, 3)).astype(np.uint8)
    # the frame's own octave (base size 0), so the tiles' edges fall where tile_spans puts them in the frame
    settings = DreamSettings(layers="mixed2=1.0", octaves=1, iterations=20, tile_size=230, max_loss=None, base_size=0)
    dreamer = Dreamer(inception, settings)
    edges = [x for _, x in tile_spans(460, 230)][:-1]  # the seam between the two tiles, at x = 230

    def seam_ratio(frame):
        change = np.abs(frame.astype(float) - image.astype(float)).mean(axis=(0, 2))  # (W,)
        near = np.concatenate([change[e - 3:e + 3] for e in edges])
        interior = np.median(change[20:-20])
        return abs(near.mean() - interior) / interior

    rolled = seam_ratio(dreamer.dream(image, seed=1).frame)
    unrolled = Dreamer(inception, settings)
    unrolled._roll = False  # read while tracing, so set before the first dream
    fixed = seam_ratio(unrolled.dream(image, seed=1).frame)
    assert rolled < 0.25, f"seam stands out by {rolled:.0%} with the roll"
    assert fixed > rolled  # without the roll the seam does show: the measurement can see it


def test_octave_shapes_follow_keras_example():
    assert octave_shapes(356, 644, octaves=3, scale=1.4, min_side=75) == [(181, 328), (254, 460), (356, 644)]
    # octaves the model cannot take are dropped, not failed
    assert octave_shapes(150, 300, octaves=3, scale=1.4, min_side=100) == [(107, 214), (150, 300)]


def test_a_frame_too_thin_for_its_look_names_the_fix():
    """Above the base size the look is set at base-size octaves: a 2000x100 strip's are 32 px high and less, which the
    network cannot take, and only its detail octaves would dream (the picture left almost untouched)."""
    with pytest.raises(SettingsError, match=r"frame 2000x100 is too thin for the look at --base-size 640: its look "
                                            r"is set at 640x32 and smaller, below the 43 px .* --base-size 0"):
        octave_shapes(100, 2000, octaves=3, scale=1.3, min_side=43, base_size=640)
    # one look octave that fits is enough, and at its own scale the strip dreams
    assert octave_shapes(200, 2000, octaves=3, scale=1.3, min_side=43, base_size=640)[0] == (49, 492)
    assert octave_shapes(100, 2000, octaves=3, scale=1.3, min_side=43)[-1] == (100, 2000)


def test_too_small_frame_names_the_fix(inception):
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS))
    side = dreamer.min_side - 1
    with pytest.raises(SettingsError, match=rf"at least {dreamer.min_side} px"):
        dreamer.dream(np.zeros((side, side, 3), np.uint8))


def test_tile_spans_have_no_slivers():
    assert tile_spans(1030, 512) == [(0, 343), (343, 687), (687, 1030)]
    assert tile_spans(300, 512) == [(0, 300)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"octaves": 0}, "--octaves"),
        ({"octave_scale": 1.0}, "--octave-scale"),
        ({"step": -1.0}, "--step"),
        ({"iterations": -2}, "--iterations"),
        ({"tile_size": -5}, "--tile-size"),
    ],
)
def test_nonsense_settings_are_rejected(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        DreamSettings(**kwargs)


def test_round_trip_of_pixel_scale():
    frame = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_uint8(to_unit(frame)), frame)


# -- speed options: precision and XLA --------------------------------------------------------------
def _gradient(dreamer, image):
    x = to_unit(image)
    return tf.function(lambda x: dreamer._piece_gradients(x, tf.constant(1.0), tf.constant(1.0))[1])(x).numpy().ravel()


@pytest.mark.parametrize("precision, min_cosine", [("bfloat16", 0.95), ("float16", 0.99)])
def test_reduced_precision_gradient_points_the_same_way(inception, precision, min_cosine):
    image = textured_image(128, 144, seed=9)
    reference = _gradient(Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, precision="float32")), image)
    reduced = _gradient(Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1, precision=precision)), image)
    assert reduced.dtype == np.float32
    # float16 needs its loss scaled up: unscaled, this gradient underflows to zero
    cosine = reduced @ reference / (np.linalg.norm(reduced) * np.linalg.norm(reference))
    assert cosine > min_cosine
    assert 0.9 < np.linalg.norm(reduced) / np.linalg.norm(reference) < 1.1


def test_bfloat16_dream_differs_less_than_one_grey_level_of_input_noise(inception):
    """A dream amplifies any small change; bfloat16 must change it less than +-1 grey level on the input does."""
    image = textured_image(128, 144, seed=9)
    settings = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=2, strength=3.0, precision="float32")
    exact = Dreamer(inception, settings)
    baseline = exact.dream(image).frame.astype(int)
    noisy = np.clip(image + np.random.default_rng(0).integers(-1, 2, image.shape), 0, 255).astype(np.uint8)
    noise_effect = np.abs(exact.dream(noisy).frame - baseline).mean()
    bf16 = Dreamer(inception, replace(settings, precision="bfloat16"))
    result = bf16.dream(image)
    assert np.isfinite(result.loss)
    assert np.abs(result.frame - baseline).mean() < noise_effect
    assert np.abs(result.frame.astype(int) - image).mean() > 2  # it did dream


def test_xla_gives_the_same_dream_within_one_grey_level(inception):
    image = textured_image(108, 112, seed=10)
    # float32: in bfloat16 the two compilers round differently (up to 10 grey levels after 2 steps here)
    settings = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=2, max_loss=None, precision="float32")
    plain = Dreamer(inception, settings, jit_compile=False).dream(image).frame
    jit = Dreamer(inception, settings, jit_compile=True)
    assert np.abs(jit.dream(image).frame.astype(int) - plain).max() <= 1
    assert jit.trace_count == 1


def test_jit_defaults_to_on_only_with_a_gpu(inception):
    gpu = bool(tf.config.list_physical_devices("GPU"))  # none unless the run shows one (conftest hides them)
    assert Dreamer(inception, DreamSettings(layers=SMALL_LAYERS)).jit_compile is gpu


def test_unknown_precision_names_the_choices():
    with pytest.raises(SettingsError, match=r"--precision must be one of auto, float32, bfloat16, float16"):
        DreamSettings(precision="float64")


@pytest.mark.parametrize("flags, gpus, expected", [
    ({"avx2", "avx512f"}, [], "float32"),
    ({"avx512f", "avx512_bf16"}, [], "bfloat16"),  # AMD Zen 4, Intel Cooper Lake
    ({"amx_bf16", "amx_tile"}, [], "bfloat16"),  # Intel Sapphire Rapids on
    ({"amx_bf16"}, [(7, 5)], "float32"),  # the dream runs on the GPU: a Turing card decides
    (set(), [(8, 0), (9, 0)], "bfloat16"),
    (set(), [(8, 6), (7, 0)], "float32"),  # one older card among them
    (set(), [None], "float32"),  # a GPU that does not say (not CUDA)
])
def test_auto_precision_is_bfloat16_only_where_the_hardware_runs_it_fast(flags, gpus, expected):
    assert auto_precision(cpu_flags=frozenset(flags), gpu_capabilities=gpus) == expected


def test_auto_is_the_default_and_resolves_once_to_a_dtype(inception):
    assert DreamSettings().precision == "auto"
    chosen = resolve_precision("auto")
    assert chosen in ("float32", "bfloat16")
    dreamer = Dreamer(inception, DreamSettings(layers=SMALL_LAYERS, octaves=1))
    assert dreamer.settings.precision == chosen  # what the work folder records
    assert dreamer.extractor.layers[-1].dtype_policy.compute_dtype == chosen
    assert resolve_precision("float16") == "float16"


def test_cli_precision_and_jit_reach_the_dreamer(inception, monkeypatch):
    from ddvideo.options import build_parser, make_dreamer

    monkeypatch.setattr("ddvideo.models.load_model", lambda settings: inception)
    argv = ["image", "in.png", "out.png", "--weights", "none", "--layers", SMALL_LAYERS, "--precision", "bfloat16", "--jit"]
    dreamer = make_dreamer(vars(build_parser().parse_args(argv)))
    assert dreamer.settings.precision == "bfloat16" and dreamer.jit_compile is True


def test_result_does_not_depend_on_what_was_built_before(inception):
    """A resumed render builds its dreamer in another process, where Keras names its models differently: with
    oneDNN on, TensorFlow once picked MaxPoolGrad kernels by op name, so the rounding depended on those names."""
    image = textured_image(112, 128, seed=11)
    settings = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=3)
    frames = []
    for _ in range(3):
        frames.append(Dreamer(inception, settings).dream(image, seed=2).frame)
        keras.Model(inception.model.inputs, inception.model.get_layer("mixed0").output)  # shifts the next names
    assert all(np.array_equal(frame, frames[0]) for frame in frames[1:])


def test_a_second_load_of_a_seeded_model_dreams_the_same(inception):
    """Keras numbers the layers it names through the process (conv2d, then conv2d_94...), and TensorFlow's graph
    optimiser sums each gradient in the order of its op names: in bfloat16 a second load of the same network
    rounded otherwise, so a render in a notebook differed from the same render in a fresh process."""
    keras.layers.Conv2D(1, 1)  # takes a name, as any model built before would
    again = load_model(inception.settings)
    names = [layer.name for layer in again.model.layers]
    assert names == [layer.name for layer in inception.model.layers]
    assert keras.layers.Conv2D(1, 1).name not in names  # later layers still get names of their own
    image = textured_image(96, 128)
    settings = DreamSettings(layers=SMALL_LAYERS, octaves=1, iterations=1, precision="bfloat16")
    assert np.array_equal(Dreamer(again, settings).dream(image).frame, Dreamer(inception, settings).dream(image).frame)
