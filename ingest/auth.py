"""Shared-secret and HMAC checks on the raw body, in constant time; secrets are never logged."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from flask import Request

from ingest.constant_time import secret_digest

SIGNATURE_HEADER = "X-Webhook-Signature"


def token_ok(request: Request, tokens: Sequence[str]) -> bool:
    """True when ``?token=<t>`` or ``Authorization: Bearer <t>`` carries any of ``tokens``.

    Every presented value is compared with every configured token, with no early exit, as
    SHA-256 digests of one length: the time taken reveals neither which token matched nor
    anything of its content or length.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    candidates = []
    if scheme.lower() == "bearer" and presented:
        candidates.append(presented.strip())
    candidates.extend(request.args.getlist("token"))
    expected = [secret_digest(token) for token in tokens]
    matched = False
    for candidate in candidates:
        digest = secret_digest(candidate)
        for wanted in expected:
            matched |= hmac.compare_digest(digest, wanted)
    return matched


def signature_ok(request: Request, body: bytes, secrets: Sequence[str]) -> bool:
    """True when ``X-Webhook-Signature: sha256=<hex>`` matches the body under any secret."""
    header = request.headers.get(SIGNATURE_HEADER, "")
    algorithm, _, presented = header.partition("=")
    if algorithm.strip().lower() != "sha256" or not presented:
        return False
    presented_bytes = presented.strip().lower().encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        # No early exit: every secret is compared, so timing does not reveal which one matched.
        matched |= hmac.compare_digest(presented_bytes, expected)
    return matched


def sign(body: bytes, secret: str) -> str:
    """The header value a sender puts on ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
