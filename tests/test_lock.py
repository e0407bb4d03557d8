"""The work folder's lock: one holder at a time, a message naming it, gone with its holder; the heartbeat fallback."""

import errno
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ddvideo.errors import LockedError
from ddvideo.media import lock as lock_module
from ddvideo.media.lock import LOCK_NAME, WorkLock, check_unlocked


def record(folder: Path) -> dict:
    return json.loads((folder / LOCK_NAME).read_text())


def test_a_held_folder_is_refused_with_its_holder(tmp_path: Path) -> None:
    work = tmp_path / "out.mp4.ddwork"
    with WorkLock(str(work), output="out.mp4") as held:
        assert held.kind == "flock"
        assert record(work)["pid"] == os.getpid() and record(work)["host"] == socket.gethostname()
        pattern = rf"out\.mp4 is being rendered by process {os.getpid()} on {socket.gethostname()}, since .*: wait"
        with pytest.raises(LockedError, match=pattern) as refused:
            WorkLock(str(work), output="out.mp4").acquire()
        assert refused.value.holder.pid == os.getpid()
        with pytest.raises(LockedError, match=pattern):
            check_unlocked(str(work), output="out.mp4")
    assert not work.exists()  # the lock file and the folder it alone was in are gone
    check_unlocked(str(work))
    assert not work.exists()  # looking makes nothing


def test_release_keeps_a_folder_with_frames(tmp_path: Path) -> None:
    work = tmp_path / "w"
    with WorkLock(str(work)):
        (work / "frames").mkdir()
    assert sorted(p.name for p in work.iterdir()) == ["frames"]


def test_a_lock_file_removed_under_a_waiter_is_not_shared(tmp_path: Path, monkeypatch) -> None:
    """The holder removes the lock file and the folder as it ends; a render that opened the file just before took
    the lock on a removed file: it must see that and start over, so that it cannot hold it beside a third one."""
    work = tmp_path / "w"
    first = WorkLock(str(work)).acquire()
    real_flock = lock_module.fcntl.flock
    calls = []

    def flock_after_the_holder_ends(fd, operation):
        calls.append(fd)
        if len(calls) == 1:
            first.release()  # between the second render's open and its flock
        return real_flock(fd, operation)

    monkeypatch.setattr(lock_module.fcntl, "flock", flock_after_the_holder_ends)
    second = WorkLock(str(work)).acquire()
    assert len(calls) == 2  # the first try found its file removed
    assert os.path.samestat(os.fstat(second._fd), os.stat(work / LOCK_NAME))
    monkeypatch.setattr(lock_module.fcntl, "flock", real_flock)
    with pytest.raises(LockedError):
        WorkLock(str(work)).acquire()
    second.release()


def test_a_live_holder_on_another_machine_is_refused_where_flock_is_local(tmp_path: Path) -> None:
    """flock on a share mounted with local locks only does not see other machines: their fresh record counts."""
    work = tmp_path / "w"
    work.mkdir()
    other = {"pid": 1, "host": "render-node-7", "since": "2026-01-01 10:00:00+0000", "heartbeat": time.time()}
    (work / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(LockedError, match="process 1 on render-node-7"):
        WorkLock(str(work)).acquire()
    with pytest.raises(LockedError, match="render-node-7"):
        check_unlocked(str(work))
    (work / LOCK_NAME).write_text(json.dumps({**other, "heartbeat": time.time() - lock_module.STALE_S - 1}))
    WorkLock(str(work)).acquire().release()  # its holder stopped refreshing it: gone


@pytest.fixture
def no_flock(monkeypatch):
    """Storage whose flock fails as NFS without a lock service does."""
    def flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", flock)
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)


def test_without_flock_the_lock_file_is_the_lock(tmp_path: Path, no_flock) -> None:
    work = tmp_path / "w"
    held = WorkLock(str(work)).acquire()
    assert held.kind == "heartbeat"
    with pytest.raises(LockedError, match=f"process {os.getpid()} on {socket.gethostname()}"):
        WorkLock(str(work)).acquire()
    with pytest.raises(LockedError):
        check_unlocked(str(work))
    beat = record(work)["heartbeat"]
    while record(work)["heartbeat"] == beat:  # the holder refreshes it while it holds it
        time.sleep(0.01)
    held.release()
    assert not work.exists()
    WorkLock(str(work)).acquire().release()


@pytest.mark.parametrize("stale", ["dead process here", "silent elsewhere"])
def test_without_flock_a_dead_holder_is_taken_over(tmp_path: Path, no_flock, stale: str) -> None:
    work = tmp_path / "w"
    work.mkdir()
    if stale == "dead process here":  # killed on this machine: no need to wait for its heartbeat to age
        gone = subprocess.Popen(["true"])
        gone.wait()  # its id is no process's now
        left = {"pid": gone.pid, "host": socket.gethostname(), "heartbeat": time.time()}
    else:
        left = {"pid": 1, "host": "render-node-7", "heartbeat": time.time() - lock_module.STALE_S - 1}
    (work / LOCK_NAME).write_text(json.dumps({**left, "since": "2026-01-01 10:00:00+0000", "token": "old"}))
    check_unlocked(str(work))
    with WorkLock(str(work)) as held:
        assert record(work)["pid"] == os.getpid() and held.kind == "heartbeat"
    assert not work.exists()
