"""Secrets out of everything wattprint shows or stores: messages, records, logs, caches."""

from __future__ import annotations

import re
from collections.abc import Iterable


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by '***' (secrets shorter than 4 characters are not searched)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


_SECRET_QUERY = re.compile(r"(?i)([?&;](?:password|passwd|pwd|secret|token|api_?key|key)=)[^&;#]*")


def redact_url(url: str) -> str:
    """`url` with its secrets hidden: the password of its credentials (`postgresql://me:***@host/db`) and
    query values such as `?password=`. Everything up to the last '@' counts as credentials, so a password
    holding '/', '?', '#' or '@' is hidden too (credentials that cannot be told apart are hidden whole; a
    query holding an '@' hides more than it must, never less). A file path (sqlite:///...) has none."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest = _SECRET_QUERY.sub(r"\1***", rest)
    at = rest.rfind("@")
    if at < 0 or rest.startswith("/"):
        return f"{scheme}{sep}{rest}"
    credentials, host = rest[:at], rest[at + 1 :]
    user, colon, _password = credentials.partition(":")
    plain_user = colon and not any(c in credentials for c in "@/?#")
    shown = f"{user}:***" if plain_user else "***"
    return f"{scheme}{sep}{shown}@{host}"
