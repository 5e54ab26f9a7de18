"""Credentials out of everything shown: :func:`mask_credentials`.

A camera or stream URL may carry a password (``rtsp://admin:secret@cam/live``), and libraries
repeat the URL in their own error texts. Every message, log line, record and report that shows a
source passes through this one function, which keeps the user name (it helps to find a wrong
login) and replaces the password with ``***``.
"""

from __future__ import annotations

import re

#: ``scheme://`` and the authority after it (up to the path, query, fragment or white space).
_AUTHORITY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s]*)")
MASK = "***"


def _mask(match: re.Match[str]) -> str:
    userinfo, at, host = match["authority"].rpartition("@")
    if not at or ":" not in userinfo:
        return match[0]
    user = userinfo.partition(":")[0]
    return f"{match['scheme']}{user}:{MASK}@{host}"


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    ``rtsp://admin:S3cret@cam:554/live`` becomes ``rtsp://admin:***@cam:554/live`` wherever it stands in
    the text (a password may contain ``@`` or ``:``; the last ``@`` of the authority ends it).
    """
    return _AUTHORITY.sub(_mask, text)
