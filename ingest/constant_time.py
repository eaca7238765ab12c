"""Secret comparison whose time reveals neither the secret's content nor its length."""

from __future__ import annotations

import hashlib
import hmac


def same_secret(presented: str, expected: str) -> bool:
    """True when ``presented`` equals ``expected``; compares digests of one fixed length.

    ``hmac.compare_digest`` on the strings themselves returns at once when the lengths
    differ, which tells a caller how long the secret is.
    """
    return hmac.compare_digest(secret_digest(presented), secret_digest(expected))


def secret_digest(value: str) -> bytes:
    """A fixed-length stand-in for ``value``, for comparisons that must not reveal its length."""
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
