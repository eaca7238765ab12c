"""Secret comparison whose time reveals neither the secret's content nor its length."""

from __future__ import annotations

import hashlib
import hmac


def same_secret(presented: str, expected: str) -> bool:
    """True when ``presented`` equals ``expected``; compares digests of one fixed length.

    ``hmac.compare_digest`` on the strings themselves returns at once when the lengths
    differ, which tells a caller how long the secret is.
    """
    return hmac.compare_digest(_digest(presented), _digest(expected))


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
