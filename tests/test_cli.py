"""The command line, called through main(argv): the image and layers commands and their one-line errors."""

import os

import numpy as np
import pytest

from conftest import SMALL_LAYERS, one_error_line, small_net_options, textured_image
from ddvideo.cli import main
from ddvideo.media import read_image, write_image

FAST = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "2", "-q"]


@pytest.fixture
def photo(tmp_path):
    path = str(tmp_path / "in.png")
    write_image(path, textured_image(120, 140, seed=3))
    return path


def test_image_command_dreams(tmp_path, photo):
    out = str(tmp_path / "out.png")
    assert main(["image", photo, out, *FAST, "--strength", "3"]) == 0  # a few steps of the default are faint here
    dreamed, original = read_image(out), read_image(photo)
    assert dreamed.shape == original.shape
    assert np.abs(dreamed.astype(int) - original.astype(int)).mean() > 2
    assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png"]  # no temporary file left behind


def test_image_seed_and_max_size(tmp_path, photo):
    a, b, c, d = (str(tmp_path / name) for name in ("a.jpg", "b.png", "c.png", "d.png"))
    for out, seed in ((a, "4"), (b, "4"), (c, "4"), (d, "5")):
        assert main(["image", photo, out, *FAST, "--max-size", "130", "--seed", seed]) == 0
    assert read_image(a).shape == read_image(b).shape == (111, 130, 3)  # 140x120 scaled to 130 px wide
    assert np.array_equal(read_image(b), read_image(c))  # the same seed, the same dream
    assert not np.array_equal(read_image(b), read_image(d))  # the seed reaches the dream


def test_layers_lists_names_and_shapes(capsys):
    assert main(["layers", "--weights", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mixed4 = next(line for line in lines if line.startswith("mixed4 "))
    assert "768" in mixed4 and mixed4.endswith("*")
    assert len(lines) > 100


@pytest.mark.parametrize("args, pattern", [
    (["--layers", "mixed99"], r"unknown layer 'mixed99'.*mixed0"),
    (["--layers", "mixed2:999"], r"channel 999 is out of range"),
    (["--octaves", "0"], r"--octaves must be at least 1"),
    (["--octave-scale", "1.0"], r"--octave-scale must be greater than 1"),
    (["--step", "-3"], r"--step must be a non-negative number"),
    (["--octaves", "abc"], r"invalid int value"),
    (["--model", "alexnet"], r"unknown model 'alexnet'"),
    (["--layers", " "], r"argument --layers: names no layer: give some, e\.g\. --layers mixed3,mixed5"),
    (["--model", "NOTES.keras"], r"cannot load model .*notes\.keras: it is not a saved Keras model \(a \.keras file "
                                 r"is a zip archive\)"),
])
def test_bad_options(tmp_path, photo, capsys, args, pattern):
    out = tmp_path / "out.png"
    (tmp_path / "notes.keras").write_text("not a model")
    args = [str(tmp_path / "notes.keras") if a == "NOTES.keras" else a for a in args]
    argv = ["image", photo, str(out), "--weights", "none", "-q", *args]
    assert main(argv) == (2 if "abc" in args or " " in args else 1)
    one_error_line(capsys.readouterr().err, pattern)
    assert not out.exists()


def test_missing_input(tmp_path, capsys):
    assert main(["image", str(tmp_path / "nope.png"), str(tmp_path / "o.png"), *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"not found.*nope\.png")


def test_not_an_image(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    assert main(["image", str(bad), str(tmp_path / "o.png"), *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"notes\.png")
    assert not (tmp_path / "o.png").exists()


def test_a_clip_given_to_image_names_the_video_command(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # what a picture reader cannot read
    assert main(["image", str(clip), str(tmp_path / "o.png"), *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"clip\.mp4 is a video, not a picture: dream a clip with `ddvideo video`")
    assert not (tmp_path / "o.png").exists()


def test_unwritable_output(tmp_path, photo, capsys):
    assert main(["image", photo, str(tmp_path / "no" / "such" / "o.png"), *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"no/such")


def test_image_too_small_says_how_to_fix(tmp_path, capsys):
    small = str(tmp_path / "small.png")
    write_image(small, textured_image(20, 24))
    assert main(["image", small, str(tmp_path / "o.png"), *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"too small.*at least \d+ px")
    assert not (tmp_path / "o.png").exists()


def test_root_cli_script_runs(tmp_path, photo, small_net):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "r.png")
    done = subprocess.run([sys.executable, os.path.join(root, "cli.py"), "image", photo, out,
                           *small_net_options(small_net, iterations=2)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # quiet: TensorFlow's start-up chatter is hidden too
    assert read_image(out).shape == (120, 140, 3)
