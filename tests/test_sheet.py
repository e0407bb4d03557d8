"""Contact sheets: layout and labels, one tile per layer, channel or strength, the frame of a clip, bad options."""

import os
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from conftest import one_error_line, textured_image
from ddvideo.cli import main
from ddvideo.dream import Dreamer, DreamSettings, to_unit
from ddvideo.objective import crop_border
from ddvideo.errors import SettingsError
from ddvideo.media import VideoReader, VideoWriter, read_image, write_image
from ddvideo.sheet import (BACKGROUND, SheetDreamer, block_entries, compose_sheet, label_height, parse_entries,
                           tile_positions)

FAST = ["--weights", "none", "--octaves", "1", "--iterations", "2", "-q"]


def tiles_of(sheet: np.ndarray, count: int, *, tile: tuple[int, int], columns: int) -> list[np.ndarray]:
    return [sheet[y:y + tile[0], x:x + tile[1]] for y, x in tile_positions(count, tile=tile, columns=columns)]


def strips_of(sheet: np.ndarray, count: int, *, tile: tuple[int, int], columns: int) -> list[np.ndarray]:
    strip = label_height(tile[1])
    return [sheet[y + tile[0]:y + tile[0] + strip, x:x + tile[1]]
            for y, x in tile_positions(count, tile=tile, columns=columns)]


def test_compose_lays_tiles_out_in_rows_with_a_label_under_each():
    tiles = [np.full((30, 40, 3), 50 * i, np.uint8) for i in range(5)]
    labels = ["mixed0", "mixed1", "mixed2", "mixed3", "mixed4:97"]
    sheet = compose_sheet(tiles, labels, columns=2)
    strip = label_height(40)
    assert sheet.shape == (4 + 3 * (30 + strip + 4), 4 + 2 * (40 + 4), 3)  # 3 rows of 2, the last one half full
    for tile, placed in zip(tiles, tiles_of(sheet, 5, tile=(30, 40), columns=2)):
        assert np.array_equal(tile, placed)
    strips = strips_of(sheet, 5, tile=(30, 40), columns=2)
    assert all(s.max() > 150 for s in strips)  # light text on the dark strip
    assert len({s.tobytes() for s in strips}) == 5  # each its own label
    assert (sheet[-(30 + strip):, 4 + 44:] == BACKGROUND).all()  # nothing where the sixth tile would be
    assert compose_sheet(tiles[:2], labels[:2], columns=4).shape[1] == 4 + 2 * 44  # no empty columns


@pytest.fixture
def photo(tmp_path):
    path = str(tmp_path / "in.png")
    write_image(path, textured_image(112, 128, seed=3))
    return path


def test_a_sheet_of_four_layers_has_four_labelled_tiles_that_differ(tmp_path, photo):
    out, single = tmp_path / "sheet.png", tmp_path / "mixed1.png"
    # two steps of the default recipe are faint on random weights: a stronger step tells the layers apart
    assert main(["sheet", photo, str(out), *FAST, "--strength", "4", "--layers", "mixed0,mixed1,mixed2,mixed3"]) == 0
    sheet = read_image(out)
    strip = label_height(128)
    assert sheet.shape == (4 + 112 + strip + 4, 4 + 4 * (128 + 4), 3)
    tiles = tiles_of(sheet, 4, tile=(112, 128), columns=4)
    for i in range(4):
        for j in range(i):
            assert np.abs(tiles[i].astype(int) - tiles[j]).mean() > 1, (i, j)
    strips = strips_of(sheet, 4, tile=(112, 128), columns=4)
    assert all(s.max() > 150 for s in strips) and len({s.tobytes() for s in strips}) == 4
    # a tile is what `image` makes with that layer and the same options
    assert main(["image", photo, str(single), *FAST, "--strength", "4", "--layers", "mixed1"]) == 0
    assert np.abs(tiles[1].astype(int) - read_image(single)).max() <= 1
    assert sorted(os.listdir(tmp_path)) == ["in.png", "mixed1.png", "sheet.png"]


def test_channel_tiles_each_grow_their_own_channel(inception):
    assert [e.label for e in parse_entries(channels="mixed2:3")] == ["mixed2:0", "mixed2:1", "mixed2:2"]
    assert len(parse_entries(channels="mixed2")) == 8
    # With these random weights mixed2's channel 0 is zero on every picture (a dead ReLU: no gradient to follow),
    # so the growth is measured on mixed1, whose first three channels all respond.
    frame = textured_image(96, 112, seed=1)
    settings = DreamSettings(octaves=1, iterations=6)
    sheet = SheetDreamer(inception, parse_entries(channels="mixed1:3"), settings)
    tiles = [r.frame for r in sheet.dream(frame)]
    dreamer, = sheet.dreamers  # the three channels share one compiled dream
    assert dreamer.trace_count == 1

    def energy(image: np.ndarray) -> np.ndarray:  # (3,) mean squared activation of channels 0..2
        act = crop_border(dreamer.extractor(inception.to_input(to_unit(image)[None]))["mixed1"], dreamer.recipe.border)[0, ..., :3]
        return tf.reduce_mean(tf.square(act), axis=[0, 1]).numpy()

    growth = np.stack([energy(t) / energy(frame) for t in tiles])  # growth[tile, channel]
    for c in range(3):
        assert growth[c, c] > 1 and growth[c, c] == growth[:, c].max(), growth
    # reweighting the shared dream gives what a dream on that channel alone gives
    alone = Dreamer(inception, replace(settings, layers="mixed1:1")).dream(frame).frame
    assert np.abs(tiles[1].astype(int) - alone).max() <= 1


def test_strength_tiles_share_one_dream_and_grow_with_the_strength(inception):
    frame = textured_image(96, 112, seed=1)
    entries = parse_entries(layers="mixed2", strengths="0.25,1,4")
    sheet = SheetDreamer(inception, entries, DreamSettings(layers="mixed2", octaves=1, iterations=4))
    assert [e.label for e in entries] == ["strength 0.25", "strength 1", "strength 4"]
    change = [np.abs(r.frame.astype(int) - frame).mean() for r in sheet.dream(frame)]
    assert change[0] < change[1] < change[2], change
    assert [d.trace_count for d in sheet.dreamers] == [1]


def test_default_tiles_are_the_block_layers_and_the_model_is_folded_once(inception):
    assert [e.label for e in block_entries(inception)] == [f"mixed{i}" for i in range(11)]
    # a saved model with no layer named like a known backbone's blocks: every layer is a block, too many to compare
    saved = replace(inception, name="cut.keras", block_pattern=r".*")
    with pytest.raises(SettingsError, match=r"cut.keras has \d+ layers to compare: name some with --layers"):
        block_entries(saved)
    sheet = SheetDreamer(inception, parse_entries(layers="mixed1,mixed2,mixed3"), DreamSettings())
    assert len(sheet.dreamers) == 3
    assert len({id(d.extractor.layers[1]) for d in sheet.dreamers}) == 1  # one folded network


def test_the_sheet_of_a_clip_dreams_its_frame_at_the_time_asked(tmp_path):
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, fps=12, size=(96, 80)) as writer:
        for t in range(24):  # two textures: the first second, then the second
            writer.write(textured_image(80, 96, seed=1 + t // 12))
    out = tmp_path / "sheet.png"
    argv = ["sheet", str(clip), str(out), "--weights", "none", "--layers", "mixed1", "--octaves", "1", "-q"]
    assert main([*argv, "--iterations", "0", "--at", "1.5"]) == 0  # no steps: the tile is the frame itself
    tile, = tiles_of(read_image(out), 1, tile=(80, 96), columns=4)
    with VideoReader(clip, start=1.5) as reader:
        expected = next(iter(reader))
    assert np.abs(tile.astype(int) - expected).max() <= 1
    with VideoReader(clip) as reader:
        first = next(iter(reader))
    assert np.abs(tile.astype(int) - first).mean() > 20
    # an instant inside the last frame's time on screen (1.96 s of a 2 s clip: frame 23, shown from 1.917 s)
    assert main([*argv, "--iterations", "0", "--at", "1.96"]) == 0
    tile, = tiles_of(read_image(out), 1, tile=(80, 96), columns=4)
    assert np.abs(tile.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("args, pattern", [
    (["--strengths", "1,0"], r"cannot read '0' in --strengths: give positive numbers"),
    (["--presets", "keras,dreamy"], r"unknown preset 'dreamy' in --presets: use some of keras, tutorial, book"),
    (["--presets", "keras", "--layers", "mixed2"], r"--presets sets each tile's objective: leave out --layers"),
    (["--channels", "mixed2:none"], r"cannot read --channels 'mixed2:none': write LAYER or LAYER:N"),
    (["--channels", "mixed2:999"], r"--channels mixed2:999 asks for 999 channels, but mixed2 has 288: give N of 288 "
                                   r"or fewer"),
    (["--channels", "mixed99:4"], r"unknown layer 'mixed99'"),
    (["--layers", "mixed2,mixed99"], r"unknown layer 'mixed99'"),
    (["--columns", "0"], r"--columns must be at least 1"),
    (["--at", "1"], r"--at picks a time in a clip, but .*in\.png is a still image"),
    (["--strengths", "1,2", "--presets", "keras"], r"not allowed with argument"),
    (["--output-is-text"], r"cannot write image .*sheet\.txt: unknown extension '\.txt'"),
])
def test_bad_sheet_options_fail_in_one_line_with_no_output(tmp_path, photo, capsys, args, pattern):
    out = tmp_path / ("sheet.txt" if args == ["--output-is-text"] else "sheet.png")
    args = [] if args == ["--output-is-text"] else args
    status = main(["sheet", photo, str(out), *FAST, *args])
    assert status == (2 if "--presets" in args and "--strengths" in args else 1)
    one_error_line(capsys.readouterr().err, pattern)
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


def test_an_instant_past_the_clip_is_refused(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, fps=12, size=(96, 80)) as writer:
        for _ in range(6):
            writer.write(textured_image(80, 96, seed=1))
    assert main(["sheet", str(clip), str(tmp_path / "sheet.png"), *FAST, "--at", "2"]) == 1
    one_error_line(capsys.readouterr().err, r"--at 2s is past the end of .*clip\.mp4, which is 0\.50s long")
