"""The deployment tests' CPU-priority helper (tests/cpu_priority.py) renices exactly
the other workers' processes, every thread of them, and only for the block."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

if not Path("/proc/self/task").is_dir():
    pytest.skip("needs Linux /proc", allow_module_level=True)

import cpu_priority  # noqa: E402

# a child with a second thread, so that per-thread renicing is visible
TWO_THREADS = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"


def _spawn():
    p = subprocess.Popen([sys.executable, "-c", TWO_THREADS])
    deadline = time.monotonic() + 20
    while len(cpu_priority._threads(p.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cpu_priority._threads(p.pid)) == 2
    return p


def _nices(pid):
    return {os.getpriority(os.PRIO_PROCESS, t) for t in cpu_priority._threads(pid)}


# In the deployments' group: a deployment on another worker would renice this
# worker's children mid-test (and, without privilege, leave the worker itself at
# NICE for good: CI stop 20 met this test with its base already at 15).
@pytest.mark.xdist_group("flower_deployments")
def test_siblings_are_reniced_thread_by_thread_and_not_this_tree(monkeypatch):
    # pretend this process is the xdist controller, child `me` the worker running the
    # deployment (with its own child), and child `other` another worker
    me, other = _spawn(), _spawn()
    mine = subprocess.Popen(["sleep", "60"])      # the controller side started it: a sibling too
    try:
        real = os.getpid()                         # (cpu_priority.os is this os)
        monkeypatch.setattr(cpu_priority.os, "getppid", lambda: real)
        monkeypatch.setattr(cpu_priority.os, "getpid", lambda: me.pid)
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        sib = cpu_priority.sibling_processes()
        assert other.pid in sib and mine.pid in sib
        assert me.pid not in sib and real not in sib
        base = _nices(other.pid)
        assert base == _nices(me.pid)
        target = min(19, max(base) + 2)            # above whatever this worker starts at
        assert max(base) < target
        with cpu_priority.siblings_yield_cpu(target) as n:
            assert n >= 3                              # other's 2 threads + sleep
            assert _nices(other.pid) == {target}
            assert _nices(mine.pid) == {target}
            assert _nices(me.pid) == base              # the deployment's side is untouched
        if os.geteuid() == 0:                          # lowering nice again needs privilege
            assert _nices(other.pid) == base
    finally:
        for p in (me, other, mine):
            p.kill()
            p.wait()


def test_outside_xdist_nothing_is_touched(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    with cpu_priority.siblings_yield_cpu() as n:
        assert n == 0


def test_ppid_parse_survives_spaces_and_parens_in_the_command_name(tmp_path):
    exe = tmp_path / "a b) c"
    exe.symlink_to("/bin/sleep")
    p = subprocess.Popen([str(exe), "30"])
    try:
        time.sleep(0.2)
        assert cpu_priority._ppid(str(p.pid)) == os.getpid()
    finally:
        p.kill()
        p.wait()
