"""Free loopback ports for a local Flower deployment (a SuperLink needs a run of them).

A SuperLink listens on a base port P and the next ones (Fleet, Control, ServerAppIo
APIs), and each SuperNode's ClientAppIo API takes one more, so a local deployment of
n sites needs P..P+n free at once. Binding is the only reliable check: another process
may hold a port without it showing anywhere else.
"""

from __future__ import annotations

import socket

__all__ = ["free_base_port"]


def free_base_port(n: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """A base port P with P..P+n all free on ``host`` (each one checked by binding).

    The ports are released before returning, so another process could take one in
    between; callers start their servers right away and retry on a bind error.
    """
    for _ in range(tries):
        with socket.socket() as s:
            s.bind((host, 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n + 1):
                t = socket.socket()
                socks.append(t)
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                t.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError(f"no run of {n + 1} free ports found on {host} after {tries} tries")
