"""Address guard: resolve a host once per run, refuse non-global addresses, pin the allowed ones."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Callable, Iterable

Resolver = Callable[[str, int], Iterable[str]]


class BlockedAddress(Exception):
    """Raised by the address guard: the target resolves only to refused addresses."""


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = sockaddr[0].split("%", 1)[0]
        if ip not in out:
            out.append(ip)
    return out


class AddressGuard:
    """Resolves a host once per run, keeps only allowed addresses and pins them for the connect.

    ``resolver(host, port) -> iterable of IP strings`` (default ``socket.getaddrinfo``)."""

    def __init__(self, allow_networks: Iterable[str] = (), resolver: Resolver | None = None):
        self._allow = [ipaddress.ip_network(c, strict=False) for c in allow_networks]
        self._resolver = resolver or _default_resolver
        self._pins: dict[tuple[str, int], list[str]] = {}
        self._lock = threading.Lock()

    def address_allowed(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self._allow if net.version == addr.version):
            return True
        if (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified):
            return False
        return addr.is_global

    def resolve(self, host: str, port: int) -> list[str]:
        """Allowed addresses of ``host`` (pinned for the run). Raises ``BlockedAddress`` or ``OSError``."""
        host = host.strip("[]").lower()
        key = (host, port)
        with self._lock:
            pinned = self._pins.get(key)
        if pinned is not None:
            return pinned
        try:
            ips = [str(ipaddress.ip_address(host))]
        except ValueError:
            ips = [str(ipaddress.ip_address(ip)) for ip in self._resolver(host, port)]
        if not ips:
            raise OSError(f"no address for {host}")
        allowed = [ip for ip in ips if self.address_allowed(ip)]
        if not allowed:
            raise BlockedAddress(f"{host} resolves to refused address {ips[0]} (not in allow_networks)")
        with self._lock:
            self._pins.setdefault(key, allowed)
            return self._pins[key]
