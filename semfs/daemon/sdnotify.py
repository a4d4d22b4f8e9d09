"""Tell systemd how the daemon is doing (the sd_notify protocol of a `Type=notify` unit):
READY=1 once the mount is up, so units ordered after it find the files there."""

from __future__ import annotations

import contextlib
import os
import socket


def notify(*fields: str) -> bool:
    """Send `fields` ("READY=1", "STATUS=...") to $NOTIFY_SOCKET; False when not run by
    systemd. The protocol is one datagram of newline-separated fields; an address that
    starts with @ is in the abstract namespace."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(fields).encode(), address)
        return True
    return False
