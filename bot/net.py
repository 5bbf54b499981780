"""Addresses: whether a host is this machine (loopback), where plain connections are fine."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """"localhost" or an address on this machine's loopback (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
