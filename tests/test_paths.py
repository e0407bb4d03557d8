"""Sources are never lost: an output or work folder that is, holds or lies inside an input is refused up front."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SMALL_LAYERS, one_error_line, textured_image
from ddvideo.cli import main
from ddvideo.errors import OutputError
from ddvideo.media import check_not_source, ffmpeg_exe, write_image
from ddvideo.media.paths import AtomicTarget

FAST = ["--weights", "none", "--layers", SMALL_LAYERS, "--octaves", "1", "--iterations", "1", "-q"]
DESTROYS = "writing it would destroy the source; choose another output path"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    clip = d / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=12:duration=0.5",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    photo = d / "photo.png"
    write_image(photo, textured_image(120, 140))
    return {"video": clip, "image": photo}


def placed(kind: str, how: str, sources: dict[str, Path], folder: Path) -> tuple[Path, Path, Path]:
    """(the source file, the input path given, the output path given) for one way of naming the input twice."""
    source = folder / sources[kind].name
    shutil.copy(sources[kind], source)
    other = folder / f"other{source.suffix}"
    if how == "same path":
        return source, source, source
    if how == "same path, spelt differently":
        return source, source, folder / "." / source.name
    if how == "symlink output":
        other.symlink_to(source)
        return source, source, other
    if how == "symlink input":
        other.symlink_to(source)
        return source, other, source
    os.link(source, other)  # hard link
    return source, source, other


@pytest.mark.parametrize("kind", ["video", "image"])
@pytest.mark.parametrize("how", ["same path", "same path, spelt differently", "symlink output", "symlink input",
                                 "hard link"])
def test_output_that_is_the_input_is_refused(sources, tmp_path: Path, capsys, kind: str, how: str) -> None:
    source, given, output = placed(kind, how, sources, tmp_path)
    before = source.read_bytes()
    assert main([kind, str(given), str(output), *FAST]) == 1
    line = one_error_line(capsys.readouterr().err, rf"^ddvideo: error: output .* is .*: {DESTROYS}$")
    if "link" in how:
        assert "link to the input" in line or "through a symbolic link" in line
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({source.name, output.name, given.name})


@pytest.mark.parametrize(
    ("argv", "written"),
    [
        (["sheet", "PHOTO", "PHOTO", "--layers", SMALL_LAYERS], "output"),  # a sheet over its own picture
        (["image", "OTHER", "PHOTO", "--guide", "PHOTO"], "output"),  # a dream over its guide
        (["zoom", "OTHER", "out.mp4", "--guide", "PHOTO", "--strength", "0:(1), 4:(2)", "--plot", "PHOTO"],
         "--plot"),  # a plot over its guide
        (["zoom", "PHOTO", "out.mp4", "--strength", "0:(1), 4:(2)", "--plot", "PHOTO"], "--plot"),
    ],
)
def test_no_output_replaces_any_file_the_command_reads(sources, tmp_path: Path, capsys, argv: list[str],
                                                       written: str) -> None:
    """The input, a guide and anything else a command reads stay as they were, whatever output names them."""
    photo, other = tmp_path / "photo.png", tmp_path / "other.png"
    shutil.copy(sources["image"], photo)
    shutil.copy(sources["image"], other)
    argv = [str(photo) if a == "PHOTO" else str(other) if a == "OTHER" else a for a in argv]
    argv = [str(tmp_path / a) if a == "out.mp4" else a for a in argv]
    assert main([*argv, *FAST]) == 1
    one_error_line(capsys.readouterr().err,
                   rf"^ddvideo: error: {written} .*photo\.png is the input file: writing it would destroy the source")
    assert photo.read_bytes() == other.read_bytes() == sources["image"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.png", "photo.png"]


def test_frame_folder_holding_the_input_is_refused(sources, tmp_path: Path, capsys) -> None:
    """A folder of frames is replaced as a whole: one that holds the start image would take it along."""
    frames = tmp_path / "frames"
    frames.mkdir()
    start = frames / "000000.png"  # named like a frame, so the folder looks like one the render may replace
    shutil.copy(sources["image"], start)
    before = start.read_bytes()
    assert main(["zoom", str(start), f"{frames}/", "--frames", "2", *FAST]) == 1
    one_error_line(capsys.readouterr().err, r"output .*frames/ holds the input .*000000\.png")
    assert start.read_bytes() == before and sorted(os.listdir(frames)) == ["000000.png"]


@pytest.mark.parametrize(
    ("work", "message"),
    [
        ("SOURCE", r"work folder .*clip\.mp4 is the input file"),
        ("SOURCE/work", r"work folder .*clip\.mp4/work lies inside the input .*clip\.mp4, which is a file"),
        ("FOLDER", r"work folder .* holds the input .*clip\.mp4"),
        ("OUTPUT", r"work folder .*out is, or lies inside, the output"),
    ],
)
def test_work_folder_over_the_input_or_output_is_refused(sources, tmp_path: Path, capsys, work: str,
                                                         message: str) -> None:
    source = tmp_path / "clip.mp4"
    shutil.copy(sources["video"], source)
    output = tmp_path / "out"
    work_dir = work.replace("SOURCE", str(source)).replace("FOLDER", str(tmp_path)).replace("OUTPUT", str(output))
    assert main(["video", str(source), f"{output}/", "--work-dir", work_dir, *FAST]) == 1
    one_error_line(capsys.readouterr().err, message)
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]
    assert source.read_bytes() == sources["video"].read_bytes()


def test_check_not_source_lets_other_paths_through(tmp_path: Path) -> None:
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x")
    check_not_source(tmp_path / "b.mp4", [source])
    check_not_source(tmp_path / "a.mp4.ddwork", [source], what="work folder")
    check_not_source(tmp_path / "sub" / "frames", [source, None])
    with pytest.raises(OutputError, match="is the input file"):
        check_not_source(tmp_path / "sub" / ".." / "a.mp4", [None, source])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("frames", r"work folder .*work holds frames ddvideo did not make \(frames/000000\.png \.\.\.\); "
                   r"choose another --work-dir"),
        ("record", r"work folder .*work holds a settings\.json that ddvideo did not write"),
        ("file", r"work folder .*work is a file, not a folder; choose another --work-dir"),
    ],
)
def test_work_folder_ddvideo_did_not_make_is_refused(sources, tmp_path: Path, capsys, make: str,
                                                     message: str) -> None:
    """A --work-dir that already holds someone's frames would be resumed from, then emptied: refuse it."""
    work = tmp_path / "work"
    if make == "file":
        work.write_text("notes\n")
    else:
        (work / "frames").mkdir(parents=True)
        (work / "frames" / "000000.png").write_bytes(sources["image"].read_bytes())
        if make == "record":
            (work / "settings.json").write_text("[1, 2]\n")
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} if work.is_dir() else work.read_bytes()
    assert main(["video", str(sources["video"]), str(tmp_path / "out.mp4"), "--work-dir", str(work), *FAST]) == 1
    one_error_line(capsys.readouterr().err, message)
    after = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} if work.is_dir() else work.read_bytes()
    assert after == before and not (tmp_path / "out.mp4").exists()


def test_a_temporary_whose_folder_was_replaced_by_a_file_is_let_go(tmp_path: Path) -> None:
    """Someone replaced the output folder by a file mid-render: cleaning up must not fail with a traceback."""
    (tmp_path / "out").mkdir()
    target = AtomicTarget(tmp_path / "out" / "clip.mp4")
    shutil.rmtree(tmp_path / "out")
    (tmp_path / "out").write_text("a file now")
    target.discard()  # NotADirectoryError, before
    assert (tmp_path / "out").read_text() == "a file now"
