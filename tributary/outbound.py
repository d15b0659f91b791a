"""The rule for every call the server makes to a place a request named (an embedding endpoint, an image URL):
only places the operator listed (`settings.OutboundPlace`), never followed through a redirect (it could lead to
an address nobody checked), and never to a loopback, link-local or private address unless the operator allowed
it for that place. Before each call the host is resolved and checked (the connection resolves the name again: a
name whose answer changes between the two is not caught)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping

import httpx

from tributary.settings import OutboundPlace


class Refused(Exception):
    """The call may not be made; the message says why, and is safe to show to a client."""


async def check_address(host: str, place: OutboundPlace, where: str) -> None:
    """Refuse a host that resolves to an internal address unless `place` allows it; `where` names the place."""
    if place.allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {where} ({type(exc).__name__})") from None
    for *_, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise Refused(
                f"{where} resolves to a loopback, link-local or private address; "
                "the operator allows that with its allow_private setting"
            )


def place_of(url: str, places: Mapping[str, OutboundPlace]) -> OutboundPlace | None:
    """The listed place `url` is under (the same scheme and host, a path below the place's path), or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if parsed.scheme not in ("http", "https") or parsed.userinfo:
        return None
    for place in places.values():
        base = httpx.URL(place.url)
        prefix = base.path if base.path.endswith("/") else base.path + "/"
        if (
            (parsed.scheme, parsed.host, parsed.port) == (base.scheme, base.host, base.port)
            and (parsed.path == base.path or parsed.path.startswith(prefix))
            and ".." not in parsed.path.split("/")
        ):
            return place
    return None
