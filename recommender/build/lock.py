"""One rebuild at a time per indexes root: a PID lock file held with flock, stale locks taken over."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import RebuildLockedError

LOCK_FILE = ".rebuild.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RebuildLock:
    """An exclusive lock on ``root/.rebuild.lock`` that records its holder's PID, host and start time.

    The kernel releases a ``flock`` when its holder dies, so a lock file left by a killed rebuild never blocks
    the next one: ``acquire`` takes it over and records the dead holder in ``stale_holder`` (for the log).
    The PID in the file is what an operator sees; the flock is what makes the check race-free (no PID reuse
    or check-then-write window).
    """

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self.stale_holder: dict[str, Any] | None = None
        self._fd: int | None = None

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says about its (last) holder, or None when empty or unreadable."""
        try:
            text = self.path.read_text().strip()
            return json.loads(text) if text else None
        except (OSError, json.JSONDecodeError):
            return None

    def acquire(self) -> RebuildLock:
        """Take the lock or raise ``RebuildLockedError`` naming the running holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder() or {}
            raise RebuildLockedError(
                f"another rebuild is running on {self.path.parent} (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('started_at', '?')}); wait for it to finish. "
                f"A lock left by a dead process is taken over automatically") from None
        previous = self.holder()
        if previous and previous.get("pid") and previous.get("pid") != os.getpid():
            # The file names a holder but nobody holds the flock: that process died mid-rebuild.
            self.stale_holder = {**previous, "alive": pid_alive(int(previous["pid"]))
                                 if previous.get("host") == socket.gethostname() else None}
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the file and drop the lock (the file stays: unlinking it would race with a waiting opener)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RebuildLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
