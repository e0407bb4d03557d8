"""One render per work folder: an exclusive lock, held from a render's start to its end, that dies with its holder."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from ddvideo.errors import LockedError, OutputError

LOCK_NAME = "render.lock"  # inside the work folder: who holds it, refreshed while they do
HEARTBEAT_S = 10.0  # a holder rewrites its record this often
STALE_S = 120.0  # a record not refreshed for this long belongs to a holder that is gone
_RECORD_BYTES = 512  # records are padded to one size and written in one write, so a reader never sees half of one
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}  # storage that does not lock (NFS nolock)


@dataclass(frozen=True)
class Holder:
    """Who holds a work folder: process, machine, since when, and its last sign of life (seconds since the epoch)."""

    pid: int
    host: str
    since: str
    heartbeat: float
    token: str = ""

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}, since {self.since}"

    def alive(self) -> bool:
        """False when the record is stale: not refreshed for STALE_S, or its process on this machine is gone."""
        if self.host == socket.gethostname() and not _process_exists(self.pid):
            return False
        return time.time() - self.heartbeat < STALE_S


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _parse(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]), float(data["heartbeat"]),
                      str(data.get("token", "")))
    except (ValueError, KeyError, TypeError):
        return None


def _read_record(fd: int) -> Holder | None:
    """The holder written in an open lock file; a holder that has just taken it may not have written it yet."""
    for _ in range(20):
        holder = _parse(os.pread(fd, _RECORD_BYTES, 0).decode("utf-8", "replace").strip())
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


def _read_path(path: str) -> Holder | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_record(fd)
    finally:
        os.close(fd)


def _refused(folder: str, holder: Holder | None, output: str | None) -> LockedError:
    who = str(holder) if holder is not None else "another process"
    what = f"{output} is being rendered" if output else f"work folder {folder} is in use"
    held = f"; it holds the work folder {folder}" if output else ""
    return LockedError(f"{what} by {who}{held}: wait for it to finish, or stop it and run the same command again "
                       "to continue from its frames", holder)


class WorkLock:
    """An exclusive hold on a work folder: `fcntl.flock` on LOCK_NAME inside it, so the operating system drops it
    when the holder exits in any way (SIGKILL, reboot). Where the storage cannot lock (flock fails with ENOLCK or
    EOPNOTSUPP: NFS without a lock service), the lock file itself is the lock: created exclusively, its record's
    heartbeat refreshed every HEARTBEAT_S, taken over once it is STALE_S old or its process on this machine is gone.

    Either way the holder's record (pid, host, since) is in the file, for the message a second render gets, and a
    record of another machine refreshed within STALE_S refuses the lock even where flock succeeded: flock on a
    share mounted with local locks only excludes the processes of one machine.
    """

    def __init__(self, folder: str, *, output: str | None = None):
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.output = output
        self.kind: str | None = None  # "flock" or "heartbeat" once held
        self._fd: int | None = None
        self._record: dict = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- taking it ----------------------------------------------------------------------------------
    def acquire(self) -> WorkLock:
        """Create the folder if needed and take the lock; raise LockedError naming the holder if it is taken."""
        for _ in range(10):  # each retry follows a holder that removed the folder while we opened its lock file
            self._make_folder()
            try:
                fd, created = self._open()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise OutputError(f"work folder {self.folder} is not writable ({err.strerror}); "
                                  "choose another --work-dir") from err
            if self._take(fd, created):
                return self
        raise OutputError(f"cannot lock the work folder {self.folder}: it keeps being removed; "
                          "is another program cleaning it up?")

    def _take(self, fd: int, created: bool) -> bool:
        """Lock the open lock file `fd`: True once held, False to start over; LockedError while another holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            raise _refused(self.folder, holder, self.output) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            if created:  # made by this call: ours as a heartbeat lock file too
                self._hold(fd, "heartbeat")
                return True
            os.close(fd)
            return self._take_heartbeat_lock()
        if not _same_file(fd, self.path):  # its holder removed it after we opened it: a new one is needed
            os.close(fd)
            return False
        previous = _read_record(fd) if os.fstat(fd).st_size else None
        if previous is not None and previous.host != socket.gethostname() and previous.alive():
            os.close(fd)  # a share whose flock only sees this machine: the other's heartbeat refuses it
            raise _refused(self.folder, previous, self.output)
        self._hold(fd, "flock")
        return True

    def _open(self) -> tuple[int, bool]:
        """The lock file, opened for writing, and whether this call made it."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            return os.open(self.path, os.O_RDWR), False

    def _make_folder(self) -> None:
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as err:
            raise OutputError(f"work folder {self.folder} cannot be created ({err.strerror or err}); "
                              "choose another --work-dir") from err

    def _take_heartbeat_lock(self) -> bool:
        """The lock file as the lock: True once ours, False to try again; LockedError while a live holder has it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_path(self.path)
            if holder is not None and holder.alive():
                raise _refused(self.folder, holder, self.output) from None
            self._break(holder)
            return False
        self._hold(fd, "heartbeat")
        return True

    def _break(self, stale: Holder | None) -> None:
        """Remove a dead holder's lock file; if a live holder took it meanwhile, put theirs back."""
        aside = f"{self.path}.stale-{secrets.token_hex(4)}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        taken = _read_path(aside)
        if taken is not None and (stale is None or taken.token != stale.token):
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # fails if yet another holder made a new one: theirs stands
        with contextlib.suppress(OSError):
            os.remove(aside)

    def _hold(self, fd: int, kind: str) -> None:
        self._fd, self.kind = fd, kind
        self._record = {"pid": os.getpid(), "host": socket.gethostname(),
                        "since": time.strftime("%Y-%m-%d %H:%M:%S%z"), "token": secrets.token_hex(8), "lock": kind}
        self._write()
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="ddvideo-lock", daemon=True)
        self._beat.start()

    def _write(self) -> None:
        data = json.dumps({**self._record, "heartbeat": time.time()}).encode()
        os.pwrite(self._fd, data.ljust(_RECORD_BYTES), 0)
        os.fsync(self._fd)  # on a share, other machines see the write only once it reaches the server

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                self._write()

    # -- letting go ---------------------------------------------------------------------------------
    def release(self) -> None:
        """Remove the lock file, then the folder if that left it empty, and only then let go: a render that
        opened the file meanwhile finds it removed and starts over with a new one (never two holders at once)."""
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        with contextlib.suppress(OSError):  # not empty (kept frames, --keep-work): leave it
            os.rmdir(self.folder)
        os.close(self._fd)  # closing drops the flock
        self._fd = self.kind = None

    def __enter__(self) -> WorkLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def check_unlocked(folder: str, *, output: str | None = None) -> None:
    """Raise LockedError if a live render holds `folder`; creates nothing. For refusing early, before a model loads:
    the render itself takes the lock (WorkLock), which is what makes it exclusive."""
    path = os.path.join(os.path.abspath(folder), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (no render there yet), or one we cannot open: the render will say
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refused(os.path.abspath(folder), _read_record(fd), output) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                raise
            locks = False
        else:
            locks = True
        holder = _read_record(fd) if os.fstat(fd).st_size else None
        # with flock, a record of this machine that flock did not refuse is a dead holder's
        if holder is not None and holder.alive() and (not locks or holder.host != socket.gethostname()):
            raise _refused(os.path.abspath(folder), holder, output)
    finally:
        os.close(fd)  # drops the flock taken above, if any
