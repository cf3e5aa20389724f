"""Secrets out of everything wattprint shows or stores: messages, records, logs, caches."""

from __future__ import annotations

from collections.abc import Iterable


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by '***' (secrets shorter than 4 characters are not searched)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """`url` with its credentials' password hidden (`postgresql://me:***@host/db`); credentials that cannot be
    told apart (an '@' inside them, a bare token) are hidden whole. Everything up to the last '@' before the
    query counts as credentials, so a password holding '/' or '@' is hidden too; a file path has none."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.split("?", 1)[0].rfind("@")
    if at < 0 or rest.startswith("/"):  # no credentials, or a file path (sqlite:///...)
        return url
    credentials, host = rest[:at], rest[at + 1 :]
    user, colon, _password = credentials.partition(":")
    shown = f"{user}:***" if colon and "@" not in credentials and "/" not in user else "***"
    return f"{scheme}{sep}{shown}@{host}"
