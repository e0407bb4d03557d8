"""Guided dreams: the guided term on hand-made features, the pull toward the guide, the strength knob, bad guides."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from conftest import one_error_line, textured_image
from ddvideo.cli import main
from ddvideo.dream import Dreamer, DreamSettings, to_unit
from ddvideo.objective import crop_border
from ddvideo.errors import InputError, SettingsError
from ddvideo.guide import GUIDE_MAX_SIZE, guide_record, read_guide
from ddvideo.media import VideoWriter, write_image
from ddvideo.objective import guided_term

SETTINGS = DreamSettings(layers="mixed2", octaves=1, iterations=8)


def stripes(size: int = 80) -> np.ndarray:
    """Colour stripes: vertical in red, horizontal in green."""
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([np.sin(xx / 2.0) * 127 + 128, np.sin(yy / 3.0) * 127 + 128, np.full_like(xx, 60.0)], -1).astype(np.uint8)


def checkers(size: int = 80) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (((xx // 6 + yy // 6) % 2) * 255)[..., None].repeat(3, -1).astype(np.uint8)


def test_guided_term_matches_each_position_to_its_best_guide_vector():
    act = tf.constant([[[[1.0, 0.0], [0.0, 2.0]]]])  # (1, 1, 2, 2): two positions, two channels
    guide = tf.constant([[3.0, 0.0], [0.0, 1.0], [1.0, 0.5]])  # (3, 2)
    with tf.GradientTape() as tape:
        tape.watch(act)
        value = guided_term(act, guide)
    # position 1 matches [3, 0] (dot 3), position 2 matches [0, 1] (dot 2, against 1 for [1, 0.5])
    assert float(value) == pytest.approx((3 + 2) / 2 / 2)
    # the gradient is the best-matching guide vector, over positions x channels
    np.testing.assert_allclose(tape.gradient(value, act).numpy()[0, 0], [[0.75, 0.0], [0.0, 0.25]])


def pooled(dreamer: Dreamer, image: np.ndarray) -> np.ndarray:
    act = dreamer.extractor(dreamer.loaded.to_input(to_unit(image)[None]))["mixed2"]
    return tf.reduce_mean(crop_border(act, dreamer.recipe.border)[0], axis=[0, 1]).numpy()


def test_a_guided_dream_moves_the_features_toward_the_guide(inception):
    source = textured_image(96, 112, seed=1)
    plain = Dreamer(inception, SETTINGS)
    dreams = {"plain": plain.dream(source).frame}
    for name, guide in (("stripes", stripes()), ("checkers", checkers())):
        dreams[name] = Dreamer(inception, SETTINGS, guide=guide).dream(source).frame

    def cosine(image: np.ndarray, guide: np.ndarray) -> float:
        u, v = pooled(plain, image), pooled(plain, guide)
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    for name, guide in (("stripes", stripes()), ("checkers", checkers())):
        assert cosine(dreams[name], guide) > cosine(dreams["plain"], guide), name
    # and it is this guide's features it moves toward: the other guide's dream is further from the stripes
    assert cosine(dreams["stripes"], stripes()) > cosine(dreams["checkers"], stripes())
    # both dreams changed the picture about as much: the guide steers, it does not just weaken the dream
    change = {k: np.abs(v.astype(int) - source).mean() for k, v in dreams.items()}
    assert min(change.values()) > 0.7 * max(change.values()), change


def test_layer_weights_scale_the_guided_terms(inception):
    source = textured_image(96, 112, seed=1)

    def loss(layers: str) -> float:  # the objective at the picture itself: the loss of the first step
        return Dreamer(inception, replace(SETTINGS, layers=layers), guide=stripes()).dream(source, iterations=1).loss

    one, two = loss("mixed1"), loss("mixed2")
    assert one > 0 and two > 0
    assert loss("mixed1=0.5,mixed2=3") == pytest.approx(0.5 * one + 3 * two, rel=1e-5)


def test_strength_multiplies_the_step(inception):
    source = textured_image(96, 112, seed=1)
    dreamer = Dreamer(inception, replace(SETTINGS, step=10.0, strength=2.0))
    stronger = dreamer.dream(source).frame
    assert np.array_equal(stronger, Dreamer(inception, replace(SETTINGS, step=20.0)).dream(source).frame)
    assert np.array_equal(dreamer.dream(source, strength=0.5).frame,
                          Dreamer(inception, replace(SETTINGS, step=5.0)).dream(source).frame)
    assert dreamer.trace_count == 1  # a strength for one call does not recompile
    with pytest.raises(SettingsError, match="--strength must be a positive number"):
        DreamSettings(strength=0)


def test_guides_that_cannot_work_are_refused(inception, tmp_path):
    with pytest.raises(InputError, match=r"guide picture is 25x20 as the dream uses it .*, too small .* at least "
                                         r"27 px"):
        Dreamer(inception, SETTINGS, guide=np.zeros((20, 25, 3), np.uint8))
    with pytest.raises(SettingsError, match="whole layers, not channels: drop the channel from mixed2:3"):
        Dreamer(inception, replace(SETTINGS, layers="mixed2:3"), guide=stripes())
    big = str(tmp_path / "big.png")
    write_image(big, textured_image(600, 1200, seed=2))
    assert read_guide(big).shape == (GUIDE_MAX_SIZE // 2, GUIDE_MAX_SIZE, 3)
    assert guide_record(None) == {} and guide_record(stripes())["guide"].startswith("80x80 sha256:")
    assert guide_record(stripes()) != guide_record(checkers())


@pytest.fixture
def files(tmp_path):
    photo, guide, tiny = (str(tmp_path / name) for name in ("in.png", "guide.png", "tiny.png"))
    write_image(photo, textured_image(96, 112, seed=3))
    write_image(guide, stripes())
    write_image(tiny, stripes(20))
    write_image(str(tmp_path / "strip.png"), textured_image(50, 1024, seed=4))  # 512x25 once scaled for the dream
    (tmp_path / "notes.png").write_bytes(b"not a picture")
    with VideoWriter(tmp_path / "in.mp4", fps=12, size=(112, 96)) as writer:
        for _ in range(3):
            writer.write(textured_image(96, 112, seed=3))
    return tmp_path


FAST = ["--weights", "none", "--layers", "mixed2", "--octaves", "1", "--iterations", "2", "-q"]


def test_commands_take_a_guide_and_renders_record_it(files, capsys):
    out, plain = files / "out.png", files / "plain.png"
    assert main(["image", str(files / "in.png"), str(out), *FAST, "--guide", str(files / "guide.png")]) == 0
    assert main(["image", str(files / "in.png"), str(plain), *FAST]) == 0
    assert out.exists() and out.read_bytes() != plain.read_bytes()
    zoom = ["zoom", str(files / "in.png"), str(files / "zoom/"), *FAST, "--frames", "2", "--keep-work"]
    assert main([*zoom, "--guide", str(files / "guide.png")]) == 0
    record = json.loads((files / "zoom.ddwork" / "settings.json").read_text())
    assert record["guide"] == guide_record(stripes())["guide"]
    # the finished frames were dreamed toward that guide: another one cannot resume them
    capsys.readouterr()
    assert main([*zoom, "--guide", str(files / "in.png")]) == 1
    one_error_line(capsys.readouterr().err, "holds frames of a render with other settings")


@pytest.mark.parametrize("guide, pattern", [
    ("missing.png", r"--guide: input not found: .*missing\.png"),
    ("notes.png", r"--guide: not a readable image: .*notes\.png"),
    ("tiny.png", r"--guide: the guide picture is 20x20 as the dream uses it \(a large one is scaled down\), too "
                 r"small for this objective"),
    ("strip.png", r"--guide: the guide picture is 512x25 as the dream uses it .* give a larger or less elongated "
                  r"guide"),
])
@pytest.mark.parametrize("command", ["image", "video", "zoom", "sheet"])
def test_bad_guides_fail_in_one_line_before_any_output(files, capsys, command, guide, pattern):
    source, out = ("in.mp4", "out.mp4") if command == "video" else ("in.png", "out.mp4" if command == "zoom" else "out.png")
    argv = [command, str(files / source), str(files / out), *FAST, "--guide", str(files / guide)]
    assert main(argv + (["--frames", "2"] if command == "zoom" else [])) == 1
    one_error_line(capsys.readouterr().err, pattern)
    assert sorted(os.listdir(files)) == ["guide.png", "in.mp4", "in.png", "notes.png", "strip.png", "tiny.png"]
