"""Webhooks: the final job status POSTed to the client's URL, signed, retried with backoff.

Signed the Standard Webhooks way (https://www.standardwebhooks.com): headers ``webhook-id``
(one id per message, the same on every retry), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The key is the
app's webhook secret (env ``RYLA_WEBHOOK_SECRET``, from a Modal Secret): a ``whsec_<base64>``
secret is base64-decoded, any other is used as its UTF-8 bytes. Receivers check it with
:func:`verify`, which also refuses timestamps outside a replay window (5 minutes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from .urls import UrlError, check_url, request

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
REPLAY_WINDOW = 300  # seconds a receiver accepts between the timestamp and its clock
log = logging.getLogger("ryla.webhooks")


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(body: bytes, secret: str, msg_id: str | None = None) -> dict[str, str]:
    msg_id = msg_id or "msg_" + secrets.token_urlsafe(16)
    timestamp = int(time.time())
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(msg_id, timestamp, body, secret),
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = REPLAY_WINDOW,
    now: float | None = None,
) -> bool:
    """For receivers: is this delivery signed with ``secret`` and recent (replay window)?

    ``headers``: the request's headers (any mapping; names looked up in lower case)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lower.get(ID_HEADER, ""), lower.get(TIMESTAMP_HEADER, "")
    if not msg_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = sign(msg_id, int(stamp), body, secret)
    given = lower.get(SIGNATURE_HEADER, "").split()
    return any(hmac.compare_digest(expected.encode(), g.encode()) for g in given)


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """The same rules as URL inputs (:mod:`.urls`); raises :class:`UrlError`."""
    try:
        async with asyncio.timeout(10):
            await check_url(url, allow_private=allow_private)
    except TimeoutError:
        raise UrlError("the webhook host did not resolve within 10s") from None


async def deliver(
    url: str,
    payload: dict[str, Any],
    secret: str,
    *,
    allow_private: bool = False,
    attempts: int = 5,
    backoff: float = 0.5,
    timeout: float = 15.0,
) -> bool:
    """POST ``payload``; retry on network errors and 5xx (0.5 s, 1 s, 2 s, ...). True if a 2xx.

    Each attempt re-checks the URL and connects to the checked address; one message id for all
    attempts, a fresh timestamp and signature on each."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    msg_id = "msg_" + secrets.token_urlsafe(16)
    for attempt in range(attempts):
        headers = {"Content-Type": "application/json", **signed_headers(body, secret, msg_id)}
        try:
            answer = await request(
                "POST",
                url,
                allow_private=allow_private,
                timeout=timeout,
                max_bytes=64 * 1024,
                content=body,
                headers=headers,
            )
            if answer.status < 300:
                return True
            if answer.status < 500:
                log.warning("webhook %s answered %s; not retried", url, answer.status)
                return False
        except UrlError as exc:
            log.warning("webhook %s attempt %d failed: %s", url, attempt + 1, exc)
        await asyncio.sleep(backoff * 2**attempt)
    return False
