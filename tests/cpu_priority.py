"""While a real Flower deployment runs, the suite's other xdist workers yield the CPU.

A loopback deployment is 6–8 processes (SuperLink, SuperNodes, their SuperExecs and
ClientApps) whose tasks must keep to Flower's fixed deadlines: a launched ClientApp has
30 s from being claimed to its first heartbeat and 60 s between heartbeats afterwards,
or its reply becomes "ClientApp stopped responding". The deployments themselves run
one at a time on one xdist worker (their xdist_group; stop 19's CI lost two of them
because under pytest 9.2 that grouping had never worked and three ran at once, see
test_xdist_grouping.py), but CI runs 3 workers on 2 cores and the other two keep XLA
compiling on every core. Renicing those workers and everything they started, thread
by thread (Linux nice is per thread), to 15 for the deployment's
duration gives the deployment about 30x their CPU share when both want it, and costs
them nothing when they don't. Restored afterwards where permitted (lowering nice needs
privilege; a non-root run leaves them at 15, which only orders them after others).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

NICE = 15


def _ppid(pid: str) -> int | None:
    try:   # the command name (field 2) may hold spaces or ')': parse after the last ')'
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _tree(root: int, kids: dict[int, list[int]]) -> set[int]:
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(kids.get(p, []))
    return out


def sibling_processes() -> set[int]:
    """Processes under this worker's parent (the xdist controller) that are neither
    the controller nor this worker nor anything this worker started."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (pp := _ppid(d)) is not None:
            kids.setdefault(pp, []).append(int(d))
    parent, me = os.getppid(), os.getpid()
    return _tree(parent, kids) - _tree(me, kids) - {parent}


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


@contextlib.contextmanager
def siblings_yield_cpu(nice: int = NICE):
    """Renice the other xdist workers' threads to ``nice`` for the block; a no-op
    outside xdist or without /proc. Yields the number of threads reniced."""
    if "PYTEST_XDIST_WORKER" not in os.environ or not Path("/proc/self/task").is_dir():
        yield 0
        return
    changed: list[tuple[int, int]] = []
    for pid in sibling_processes():
        for tid in _threads(pid):
            try:
                old = os.getpriority(os.PRIO_PROCESS, tid)
                if old < nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                    changed.append((tid, old))
            except OSError:          # exited meanwhile, or not ours
                pass
    try:
        yield len(changed)
    finally:
        for tid, old in changed:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, old)
            except OSError:          # exited, or restoring needs privilege
                pass
