"""The rebuild lock: one holder at a time, its PID on file, a dead holder's lock taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from recommender.build.lock import RebuildLock, pid_alive
from recommender.errors import RebuildLockedError


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    """While one lock is held, another acquire raises RebuildLockedError naming the holder; after release it works."""
    first = RebuildLock(tmp_path).acquire()
    assert json.loads(first.path.read_text())["pid"] == os.getpid()
    with pytest.raises(RebuildLockedError, match=f"another rebuild is running .*pid {os.getpid()}"):
        RebuildLock(tmp_path).acquire()
    first.release()
    assert first.path.read_text() == ""
    with RebuildLock(tmp_path) as again:
        assert again.stale_holder is None


def test_lock_held_by_another_process_is_refused(tmp_path):
    """A lock held by a live child process blocks this one."""
    code = ("import sys, time; from recommender.build.lock import RebuildLock; RebuildLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(RebuildLockedError, match=f"pid {child.pid}"):
            RebuildLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    with RebuildLock(tmp_path) as lock:  # the kernel dropped the dead child's flock
        assert lock.stale_holder["pid"] == child.pid and lock.stale_holder["alive"] is False


def test_stale_lock_file_from_a_dead_process_is_taken_over(tmp_path):
    """A lock file naming a process that no longer runs does not block; the takeover is recorded."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pid_alive(dead.pid)
    (tmp_path / ".rebuild.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                         "started_at": "2026-11-27T02:00:00Z"}))
    with RebuildLock(tmp_path) as lock:
        assert lock.stale_holder == {"pid": dead.pid, "host": socket.gethostname(),
                                     "started_at": "2026-11-27T02:00:00Z", "alive": False}
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
