"""Workers survive what a hostile operator or the kernel does to them (issue 14, item 12): a served build's file
truncated in place does not kill a worker (builds are read into memory by default), and a worker that dies is
started again by the supervisor, one worker included."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from .service_helpers import free_port, serve, service_root, wait_ready
from .test_service_defaults import worker_pids

pytestmark = pytest.mark.slow


def answers(http: httpx.Client) -> list[int]:
    """Statuses of a related and a more-like-this request."""
    return [http.get("/v1/articles/demo-001/related", params={"k": 5}).status_code,
            http.post("/v1/more-like-this", json={"ids": ["demo-040"], "k": 5}).status_code]


def test_truncating_a_served_file_in_place_kills_no_worker(demo_root, tmp_path):
    """vectors.npy, vectors.faiss and the related table truncated to nothing under a running service: every
    request still answers 200 from the same worker (a memory-mapped file once killed it with SIGBUS)."""
    root = service_root(demo_root, tmp_path)
    port = free_port()
    process = serve(root, port, 1)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, tmp_path / "server.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert answers(http) == [200, 200]
            worker = worker_pids(process.pid)[0]
            current = Path(os.path.realpath(root / "current"))
            for name in ("vectors.npy", "vectors.faiss", "related_rows.npy", "related_scores.npy"):
                (current / name).chmod(0o644)
                os.truncate(current / name, 0)
            for _ in range(50):
                assert answers(http) == [200, 200]
            assert worker_pids(process.pid) == [worker]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_killed_worker_is_started_again(demo_root, tmp_path):
    """SIGKILL of the only worker: the supervisor starts a new one and the service answers again."""
    root = service_root(demo_root, tmp_path)
    port = free_port()
    process = serve(root, port, 1)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, tmp_path / "server.log")
        first = worker_pids(process.pid)
        assert first != [process.pid]  # a supervisor with a worker process under it
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            pids = worker_pids(process.pid)
            if pids and pids != first and pids != [process.pid]:
                break
            time.sleep(0.2)
        wait_ready(base, process, tmp_path / "server.log")
        with httpx.Client(base_url=base, timeout=10) as http:
            assert answers(http) == [200, 200]
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
