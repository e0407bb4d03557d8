"""Output paths: checks before long work, atomic outputs that replace their path only when complete, frame folders."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ddvideo.errors import InputError, OutputError

PathLike = str | os.PathLike

FRAME_NAME = "{:06d}.png"  # frame folders: 000000.png, 000001.png, ... (sorted order = frame order)
_FRAME_FILE = re.compile(r"^\d{6}\.png$")
PROBE_PREFIX = ".ddvideo-probe-"  # a file made and removed at once, to learn whether a folder takes files


def check_writable(path: PathLike, *, creatable: bool = False) -> None:
    """Raise OutputError unless the folder that will hold `path` exists and is writable; call it before long work.

    With `creatable`, missing folders are fine if they can be made (the caller makes them, e.g. with os.makedirs,
    before writing).
    """
    folder = Path(os.path.abspath(os.fspath(path))).parent
    if not creatable and not folder.exists():
        raise OutputError(f"output folder does not exist: {folder}; create it first or choose another output path")
    check_folder(folder, what="output folder", fix="choose another output path")


def check_folder(folder: PathLike, *, what: str, fix: str) -> None:
    """Raise OutputError, naming `what` and `fix`, unless `folder` is a writable folder or can be created."""
    folder = Path(os.path.abspath(os.fspath(folder)))
    top = folder  # the nearest folder above it that exists: where it would be made
    while not top.exists() and not top.is_symlink() and top.parent != top:
        top = top.parent
    if not top.is_dir():
        if top == folder:
            raise OutputError(f"{what} {folder} is a file, not a folder; {fix}")
        raise OutputError(f"{what} {folder} cannot be created: {top} is a file; {fix}")
    why = _cannot_write(top)
    if why and top == folder:
        raise OutputError(f"{what} {folder} is not writable ({why}); fix its permissions or {fix}")
    if why:
        raise OutputError(f"{what} {folder} cannot be created: {top} is not writable ({why}); {fix}")


def _cannot_write(folder: Path) -> str | None:
    """Why no file can be made in `folder`, or None. A file is made and removed, because permission bits (os.access)
    say nothing of read-only mounts or /proc, and root passes them all."""
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except FileNotFoundError:  # the folder exists, so it is a system folder that takes no files (/proc)
        return "no files can be made there"
    except OSError as err:
        return err.strerror or str(err)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(name)
    return None


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
                              f"choose a place for the {what} that does not hold the input")
        elif target.is_relative_to(real):
            raise OutputError(f"{what} {path} lies inside the input {source}, which is a file; "
                              f"choose another {what} path")
        else:
            continue
        raise OutputError(f"{what} {path} is {how}: writing it would destroy the source; choose another {what} path")


class AtomicTarget:
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
            with contextlib.suppress(OSError):  # gone, or its folder replaced under it: nothing left to clean
                self.tmp.unlink()


def remove_stale_partials(path: Path) -> None:
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
    target = AtomicTarget(path, folder=folder)
    try:
        yield target.tmp
    except BaseException:
        target.discard()
        raise
    target.commit()


def check_frame_folder(path: Path) -> None:
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
    check_frame_folder(path)
    shutil.rmtree(path)


def existing_input(path: PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise InputError(f"input not found: {p}; check the path")
    if not p.is_file():
        raise InputError(f"input is not a file: {p}; give a video or image file")
    return p
