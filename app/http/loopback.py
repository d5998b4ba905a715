"""Loopback addresses: where only this machine can reach a server, or a page was asked for."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) or `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_header_is_loopback(value: str | None) -> bool:
    """A `Host` header (`127.0.0.1:8000`, `[::1]:8000`, `localhost`) naming a loopback host.

    A page fetched under any other name may come from a DNS-rebinding attack: a site whose
    name resolves to 127.0.0.1 could otherwise read the page as its own origin."""
    if not value:
        return False
    try:
        hostname = urlsplit(f"//{value}").hostname
    except ValueError:
        return False
    return hostname is not None and is_loopback(hostname)
