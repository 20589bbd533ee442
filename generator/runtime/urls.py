"""Outbound HTTP to client-given URLs (media inputs, webhooks), safely.

- Every URL is parsed strictly: http(s) only, no credentials, a port in 1..65535, a host that
  is an IP literal or a valid DNS name (labels of 1-63 letters, digits, hyphens; 253 at most).
  Anything else is a :class:`UrlError` whose message is safe to show the client (a 422).
- Unless the app allows it, every address the host resolves to must be public; the connection
  then goes to the address that was checked (Host header and TLS SNI keep the name), so a DNS
  answer that changes between check and connect (rebinding) cannot reach a private address.
- Redirects are followed up to ``MAX_REDIRECTS`` hops, each hop checked the same way.
- One overall deadline per call, and a byte cap on what is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
_REDIRECTS = {301, 302, 303, 307, 308}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class UrlError(ValueError):
    """A URL that cannot be used, or a fetch that failed; the message is safe to show."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    scheme: str
    host: str  # the name as the client gave it (IDNA-encoded), for Host and SNI
    port: int
    path: str  # path and query
    address: str  # the IP that was checked

    @property
    def connect_url(self) -> str:
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{ip}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    @property
    def extensions(self) -> dict[str, str]:
        return {"sni_hostname": self.host} if self.scheme == "https" else {}


def parse_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path_and_query)`` of a well-formed http(s) URL, else UrlError."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise UrlError(f"not a URL of at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UrlError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        hostname = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"malformed URL: {exc}") from None
    if scheme not in ("http", "https"):
        raise UrlError("only http(s) URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise UrlError("URLs with credentials (user@host) are not accepted")
    if not hostname:
        raise UrlError("the URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    elif not 1 <= port <= 65535:
        raise UrlError(f"port {port} is out of range 1-65535")
    host = _check_host(hostname)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port, path


def _check_host(hostname: str) -> str:
    try:
        ipaddress.ip_address(hostname)
        return hostname
    except ValueError:
        pass
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlError(f"host '{hostname}' is not a valid host name") from None
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise UrlError(f"host '{hostname}' is not a valid host name")
    return name


async def check_url(url: str, *, allow_private: bool) -> Target:
    """Parse ``url`` and resolve its host; unless allowed, refuse non-public addresses."""
    scheme, host, port, path = parse_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UrlError(f"cannot resolve host '{host}'") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise UrlError(f"cannot resolve host '{host}'")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise UrlError(f"URL host '{host}' is a private, loopback or link-local address")
    return Target(scheme, host, port, path, addresses[0])


_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def is_public(address: str) -> bool:
    """A global unicast address; an IPv6 one that carries an IPv4 address (mapped, 6to4,
    Teredo, NAT64, IPv4-compatible) counts as that IPv4 address too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if any(ip in net for net in _NAT64) or ip in _IPV4_COMPATIBLE:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates += [v4 for v4 in embedded if v4 is not None]
    return all(c.is_global and not c.is_multicast for c in candidates)


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    url: str  # after redirects


async def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    timeout: float,
    max_bytes: int,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """One request with redirects (each hop checked), an overall deadline and a byte cap.

    A POST follows only 307/308 (which keep the method and body)."""
    try:
        async with asyncio.timeout(timeout):
            return await _request(method, url, allow_private, max_bytes, content, headers or {})
    except TimeoutError:
        raise UrlError(f"the URL did not answer completely within {timeout:g}s") from None


async def _request(
    method: str,
    url: str,
    allow_private: bool,
    max_bytes: int,
    content: bytes | None,
    headers: dict[str, str],
) -> Fetched:
    import httpx  # here: build-time commands import this module without fetching anything

    async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=None) as http:
        for _ in range(MAX_REDIRECTS + 1):
            target = await check_url(url, allow_private=allow_private)
            try:
                async with http.stream(
                    method,
                    target.connect_url,
                    content=content,
                    headers={**headers, "Host": target.host_header},
                    extensions=target.extensions,
                ) as response:
                    location = response.headers.get("location")
                    follows = {307, 308} if method != "GET" else _REDIRECTS
                    if response.status_code in follows and location:
                        url = urljoin(url, location)
                        continue
                    body = await _read_capped(response, max_bytes)
                    return Fetched(response.status_code, body, url)
            except httpx.HTTPError as exc:
                raise UrlError(f"fetching the URL failed: {type(exc).__name__}") from None
        raise UrlError(f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UrlError(f"larger than the {max_bytes} byte limit")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise UrlError(f"larger than the {max_bytes} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
