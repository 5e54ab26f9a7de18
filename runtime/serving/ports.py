"""Port checks before a server starts: a busy port is a clear error up front, not a server log line."""

from __future__ import annotations

import errno
import socket

from fornet.runtime.serving.errors import ServingError


def require_free_ports(host: str, ports: dict[str, int]) -> None:
    """Raise :class:`ServingError` naming the first of ``ports`` (``{"--http-port": 8000}``) in use on ``host``.

    The probe binds the way servers do, with ``SO_REUSEADDR``: a port that something listens on is in use,
    one that only closed connections still name (TIME_WAIT, just after a server stopped) is free.
    """
    for option, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ServingError(f"port {port} on {host} is in use (another server?); choose a free one "
                                       f"with {option}, or stop what holds it") from exc
                raise ServingError(f"cannot listen on {host}:{port} ({exc.strerror}); check --host and "
                                   f"{option}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` right now (for tests and examples)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
