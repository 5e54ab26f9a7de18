"""Who may reach an RTSP output (``rtsp://@:PORT/path``): the address it listens on and an optional login.

The server listens on 127.0.0.1 (this machine only) unless the output URI names an address
(``rtsp://0.0.0.0:8554/seg``: every interface) or ``--rtsp-host`` does. With a user
(``--rtsp-user`` or ``FORNET_RTSP_USER``) clients must log in with RTSP basic authentication; the
password comes from the environment (``FORNET_RTSP_PASSWORD``) or a file (``--rtsp-password-file``),
never from the command line, where every user of the machine sees it in ``ps``. Basic
authentication sends the password readable by anyone on the network path: across untrusted
networks, tunnel the stream (SSH, WireGuard) as well.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fornet.runtime.video.errors import SinkError

#: Where the server listens when neither the URI nor ``--rtsp-host`` names an address.
DEFAULT_HOST = "127.0.0.1"
USER_ENV = "FORNET_RTSP_USER"
PASSWORD_ENV = "FORNET_RTSP_PASSWORD"


def check_host(host: str, what: str) -> str:
    """``host`` as an address to listen on (``localhost`` is 127.0.0.1); :class:`SinkError` for a name.

    A server listens on addresses of its own machine, so only an IP address is taken.
    """
    if host == "localhost":
        return DEFAULT_HOST
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise SinkError(f"{what} {host!r} is not an IP address: an RTSP output listens on an address of this "
                        f"machine ({DEFAULT_HOST}: this machine only, the default; 0.0.0.0: every interface)") from None


@dataclass(frozen=True)
class RtspAccess:
    """The listening address and login of RTSP outputs (see the module docstring).

    Attributes:
        host: address when the output URI names none (``None``: 127.0.0.1).
        user: login user (``None``: ``FORNET_RTSP_USER``, else no login).
        password_file: a file holding the password (``None``: ``FORNET_RTSP_PASSWORD``).
        password: the password itself, for Python callers (never shown in ``repr``).
    """

    host: str | None = None
    user: str | None = None
    password_file: Path | None = None
    password: str | None = field(default=None, repr=False)

    def bind_host(self, uri_host: str) -> str:
        """The address to listen on: the URI's (``uri_host``, may be empty), else :attr:`host`, else 127.0.0.1."""
        named = check_host(uri_host, "the RTSP output address") if uri_host else None
        flag = check_host(self.host, "--rtsp-host") if self.host else None
        if named and flag and named != flag:
            raise SinkError(f"the RTSP output URI names address {named} and --rtsp-host {flag}; give one of them")
        return named or flag or DEFAULT_HOST

    def login(self, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
        """``(user, password)`` when a user is set, else ``None``.

        Raises:
            SinkError: a user without a password (or the reverse), an unreadable or empty password
                file, or a user name with ``:``.
        """
        user = self.user or environ.get(USER_ENV) or None
        password = self.password or self._password_from_file() or environ.get(PASSWORD_ENV) or None
        if user is None:
            if password is not None:
                raise SinkError(f"an RTSP password is set ({PASSWORD_ENV} or --rtsp-password-file) but no user: pass "
                                f"--rtsp-user USER or set {USER_ENV}")
            return None
        if ":" in user:
            raise SinkError(f"the RTSP user {user!r} holds ':', which basic authentication cannot carry; choose "
                            "another name")
        if password is None:
            raise SinkError(f"the RTSP user {user!r} needs a password: set {PASSWORD_ENV} or pass "
                            "--rtsp-password-file FILE (never on the command line, where ps shows it)")
        return user, password

    def _password_from_file(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            password = self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SinkError(f"cannot read the RTSP password file {self.password_file} ({exc}); fix the path or its "
                            "permissions") from exc
        if not password:
            raise SinkError(f"the RTSP password file {self.password_file} is empty; write the password into it")
        return password
