"""Webhooks: the final job status POSTed to the client's URL, signed, retried with backoff.

The signature header is ``X-Ryla-Signature: sha256=<hex>``, an HMAC-SHA256 over the exact body
bytes with the app's webhook secret (env ``RYLA_WEBHOOK_SECRET``, from a Modal Secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import httpx

from .media import MediaError, check_public_url

SIGNATURE_HEADER = "X-Ryla-Signature"
log = logging.getLogger("ryla.webhooks")


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    """For receivers: does ``signature`` (the header's value) match ``body``?"""
    return hmac.compare_digest(sign(body, secret), signature)


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """The same rules as URL inputs: http(s) only, no private, loopback or link-local hosts."""
    await check_public_url(url, allow_private=allow_private)


async def deliver(
    url: str,
    payload: dict[str, Any],
    secret: str,
    *,
    allow_private: bool = False,
    attempts: int = 5,
    backoff: float = 0.5,
) -> bool:
    """POST ``payload``; retry on network errors and 5xx (0.5 s, 1 s, 2 s, ...). True if a 2xx."""
    try:
        await check_webhook_url(url, allow_private=allow_private)
    except MediaError as exc:
        log.warning("webhook %s refused: %s", url, exc)
        return False
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)}
    async with httpx.AsyncClient(timeout=15, trust_env=False, follow_redirects=False) as http:
        for attempt in range(attempts):
            try:
                response = await http.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    return True
                if response.status_code < 500:
                    log.warning("webhook %s answered %s; not retried", url, response.status_code)
                    return False
            except httpx.TransportError as exc:
                log.warning("webhook %s attempt %d failed: %s", url, attempt + 1, exc)
            await asyncio.sleep(backoff * 2**attempt)
    return False
