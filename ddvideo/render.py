"""The render loop shared by video and zoom: a resumable work folder, a background encoder, atomic output."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .errors import DDVideoError, OutputError
from .media import VideoWriter, WorkLock, check_folder, check_not_source, check_writable, read_image, write_image
from .media.paths import PROBE_PREFIX

T = TypeVar("T")

# progress(index, total, loss): called once per frame, finished or resumed; total may be None
Progress = Callable[[int, "int | None", "float | None"], None]


@dataclass(frozen=True)
class OutputSettings:
    """How the result is encoded; the container comes from the output's extension."""

    crf: int = 18  # H.264/VP9 quality: lower is better and bigger
    audio: bool = True  # carry the source's audio, when there is one

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 63:
            raise OutputError(f"--crf must be between 0 and 63 (18 is visually lossless for H.264), got {self.crf}")


@dataclass(frozen=True)
class RunSettings:
    """Where finished frames are kept so a killed render can continue, and the seed of the whole run."""

    seed: int = 0
    work_dir: str | None = None  # default: OUTPUT.ddwork next to the output
    keep_work: bool = False  # keep the finished frames after a successful render


def default_work_dir(output: str) -> str:
    return os.path.abspath(output.rstrip("/\\")) + ".ddwork"


def check_paths(output: str, work_dir: str | None, *, sources: Sequence[str | None]) -> None:
    """Raise OutputError if the output or the work folder (None: the default one) could replace or remove a source,
    or each other, or if the work folder cannot be created or written."""
    work_dir = work_dir or default_work_dir(output)
    check_not_source(output, sources)
    check_not_source(work_dir, sources, what="work folder")
    work, out = (os.path.realpath(p.rstrip("/\\") or os.sep) for p in (work_dir, output))
    if work == out or Path(work).is_relative_to(out):
        raise OutputError(f"work folder {work_dir} is, or lies inside, the output {output}; "
                          "choose another --work-dir, or leave it out for OUTPUT.ddwork")
    check_folder(work_dir, what="work folder", fix="choose another --work-dir")


def settings_record(**parts: Any) -> dict:
    """The resolved settings of a render as plain JSON data (dataclasses expanded)."""
    return json.loads(json.dumps({k: asdict(v) if is_dataclass(v) else v for k, v in parts.items()}, default=str))


@dataclass(frozen=True)
class RenderSummary:
    """What a finished render did: frames written, how many were dreamed now, and where the time went."""

    output: str
    frames: int
    dreamed: int  # frames dreamed in this run (the rest were resumed from the work folder)
    seconds: float  # wall time of this run
    dream_seconds: float  # time spent inside the dream itself
    warnings: tuple[str, ...] = ()


def prefetch(items: Iterable[T], *, size: int = 4) -> Iterator[T]:
    """Run `items` (decoding, flow...) in a background thread, at most `size` ahead of the consumer."""
    buffer: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
        except BaseException as exc:  # re-raised in the consumer
            buffer.put((done, exc))
            return
        buffer.put((done, None))

    thread = threading.Thread(target=fill, name="ddvideo-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = buffer.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let the producer see `stop` rather than block on a full buffer
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass


def _frame_settings(record: dict) -> dict:
    """The part of a settings record that decides the frames: encoding options may change between runs."""
    return {key: value for key, value in record.items() if key != "output"}


def _differences(old: Any, new: Any, name: str = "") -> list[str]:
    """'name old -> new' for each setting that differs between two records (dotted names for nested ones)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in _differences(old.get(key), new.get(key), f"{name}.{key}" if name else str(key))]
    return [] if old == new else [f"{name} {json.dumps(old)} -> {json.dumps(new)}"]


STATE = "state.json"  # a render's own state beside its frames (FrameStore.remember)


def _write_json(path: str, data: dict) -> None:
    """Write `data` to `path` whole or not at all (through PATH.tmp, which FrameStore.remove also clears)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def kept_state(work_dir: str) -> dict:
    """What a render kept of its own state in its work folder (FrameStore.remember); {} if nothing."""
    try:
        with open(os.path.join(work_dir, STATE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class FrameStore:
    """A work folder of finished frames (000000.png ...) and the settings that made them."""

    def __init__(self, path: str, settings: dict):
        self.path = path
        record = os.path.join(path, "settings.json")
        try:
            os.makedirs(os.path.join(path, "frames"), exist_ok=True)
            previous = self._previous(record, settings)
            if previous != settings:  # new, empty, or only the encoding changed: these settings own it now
                _write_json(record, settings)
        except OSError as err:
            raise OutputError(f"cannot use the work folder {path}: {err.strerror or err}; "
                              "choose another --work-dir") from err

    def _previous(self, record: str, settings: dict) -> dict | None:
        """The settings the frames here were made with; refuse frames of other settings, or not made by ddvideo."""
        previous = None
        if os.path.exists(record):
            try:
                with open(record) as f:
                    previous = json.load(f)
            except (ValueError, UnicodeDecodeError):
                previous = []
            if not isinstance(previous, dict):
                raise OutputError(f"work folder {self.path} holds a settings.json that ddvideo did not write; "
                                  "choose another --work-dir")
        if previous is None and self.finished():  # settings.json is written before the first frame
            raise OutputError(f"work folder {self.path} holds frames ddvideo did not make (frames/000000.png ...); "
                              "choose another --work-dir, or move them away")
        if previous is not None and _frame_settings(previous) != _frame_settings(settings) and self.finished():
            changed = "; ".join(_differences(_frame_settings(previous), _frame_settings(settings)))
            raise DDVideoError(
                f"work folder {self.path} holds frames of a render with other settings ({changed}): "
                f"delete it to start over, or run with the settings it was made with"
            )
        return previous

    def frame_path(self, index: int) -> str:
        return os.path.join(self.path, "frames", f"{index:06d}.png")

    def finished(self) -> int:
        """How many frames, counting from 0 without a gap, are already finished."""
        count = 0
        while os.path.exists(self.frame_path(count)):
            count += 1
        return count

    def save(self, index: int, frame: np.ndarray) -> None:
        write_image(self.frame_path(index), frame, fast=True)  # atomic: a frame file is complete or absent

    def load(self, index: int) -> np.ndarray:
        return read_image(self.frame_path(index))

    def remember(self, name: str, value: Any) -> None:
        """Keep a value of the render's own state (JSON) that a resumed run needs and cannot recompute."""
        _write_json(os.path.join(self.path, STATE), {**self._state(), name: value})

    def recall(self, name: str) -> Any:
        """A value kept by `remember` in an earlier run, or None."""
        return self._state().get(name)

    def _state(self) -> dict:
        return kept_state(self.path)

    def remove(self, *, only_if_empty: bool = False) -> None:
        """Remove the frames and records made here, then the folders if that left them empty (never a user's files)."""
        count = self.finished()
        if only_if_empty and count:
            return
        frames = os.path.join(self.path, "frames")
        made_here = [self.frame_path(index) for index in range(count)] + [
            os.path.join(folder, name) for folder in (frames, self.path) for name in os.listdir(folder)
            # a frame being written, or a check that the folder takes files, when the render was killed
            if (name.startswith(".") and ".partial-" in name) or name.startswith(PROBE_PREFIX)
        ]
        for path in made_here:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        for name in ("settings.json", "settings.json.tmp", STATE, STATE + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.path, name))
        for folder in (os.path.join(self.path, "frames"), self.path):
            with contextlib.suppress(OSError):  # not empty: leave it
                os.rmdir(folder)


class Render:
    """Context manager for one resumable render: `emit` each new frame in order; the output appears on success.

    Frames already in the work folder are replayed to the encoder by a background thread while new ones are
    dreamed; each new frame is saved to the work folder by that thread, then encoded. A crash or kill loses at
    most the frames still queued; running the same render again continues after the last saved one. The work
    folder is locked (WorkLock) from entering the block until the output is in place and the folder removed: a
    second render of it, in any process, raises LockedError naming the holder and touches nothing.
    """

    def __init__(self, output: str, *, fps: float, size: tuple[int, int], settings: dict,
                 run: RunSettings = RunSettings(), out: OutputSettings = OutputSettings(),
                 audio_from: str | None = None, audio_start: float = 0.0, audio_end: float | None = None,
                 sources: tuple[str | None, ...] = (), total: int | None = None, progress: Progress | None = None,
                 queue_size: int = 8):
        work_dir = run.work_dir or default_work_dir(output)
        check_paths(output, work_dir, sources=(*sources, audio_from))
        check_writable(output)
        self.output = output
        self.total = total
        self.progress = progress
        self.settings = settings
        # the writer checks the output's format here, before the work folder is made, so a bad path leaves nothing
        self._writer = VideoWriter(output, fps=fps, size=size, crf=out.crf,
                                   audio_from=audio_from if out.audio else None,
                                   audio_start=audio_start, audio_end=audio_end)
        self.lock = WorkLock(work_dir, output=output)
        self.keep_work = run.keep_work
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="ddvideo-writer", daemon=True)

    def __enter__(self) -> "Render":
        # the lock first: nothing of the work folder or the output's temporaries is touched while another render
        # holds them, and it is let go only after the output is in place and the work folder removed
        self.lock.acquire()
        try:
            self.store = FrameStore(self.lock.folder, self.settings)
        except BaseException:
            self.lock.release()
            raise
        self.done = self.store.finished()  # frames that need no dreaming
        self._next = self.done
        try:
            self._writer.__enter__()
        except BaseException:
            self.store.remove(only_if_empty=True)
            self.lock.release()
            raise
        self._thread.start()
        return self

    @property
    def frames(self) -> int:
        """Frames handed over so far, resumed ones included."""
        return self._next

    def previous(self) -> np.ndarray | None:
        """The last finished frame (the state a resumed render continues from), or None at the start."""
        return self.store.load(self.done - 1) if self.done else None

    def load(self, index: int) -> np.ndarray:
        """Frame `index` finished by an earlier run (index < done), for renders whose later frames reuse earlier ones."""
        if not 0 <= index < self.done:
            raise IndexError(f"frame {index} was not finished before this run ({self.done} were)")
        return self.store.load(index)

    def emit(self, index: int, frame: np.ndarray, loss: float | None = None) -> None:
        """Hand over new frame `index` (the next one in order); returns once it is queued."""
        if index != self._next:
            raise RuntimeError(f"frames must be emitted in order: expected {self._next}, got {index}")
        self._next += 1
        self._raise_from_writer()
        self._queue.put((index, frame, loss))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._finish(exc_type, exc, tb)
        finally:
            self.lock.release()

    def _finish(self, exc_type, exc, tb) -> None:
        self._queue.put(None)
        self._thread.join()
        failed = exc_type is not None or self._error is not None
        if not failed and self._writer.frames_written == 0:
            self._error = OutputError(f"no frames were rendered for {self.output}: check the input and the frame range")
            failed = True
        if failed:
            self._writer.__exit__(exc_type or type(self._error), exc or self._error, tb)
            self.store.remove(only_if_empty=True)  # a render that failed before its first frame leaves nothing behind
        else:
            self._writer.__exit__(None, None, None)
            if not self.keep_work:
                self.store.remove()
        if exc_type is None and self._error is not None:
            raise self._error

    # -- background thread ------------------------------------------------------------------------
    def _drain(self) -> None:
        try:
            for index in range(self.done):
                self._writer.write(self.store.load(index))
                self._report(index, None)
            while (item := self._queue.get()) is not None:
                index, frame, loss = item
                self.store.save(index, frame)
                self._writer.write(frame)
                self._report(index, loss)
        except BaseException as exc:  # surfaced to the dreaming thread at the next emit or on exit
            self._error = exc
            while self._queue.get() is not None:  # unblock the producer until it stops
                pass

    def _report(self, index: int, loss: float | None) -> None:
        if self.progress is not None:
            self.progress(index, self.total, loss)

    def _raise_from_writer(self) -> None:
        if self._error is not None:
            raise self._error
