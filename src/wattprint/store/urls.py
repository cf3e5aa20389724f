"""Store URLs: parsing (postgresql:// and postgres:// mean psycopg), showing them without the password, and
driver messages on one line without it."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from wattprint.errors import WattprintInputError
from wattprint.redact import redact_url

DB_FIELD = "WATTPRINT_DB"
ACCEPTED_URLS = (
    "an SQLAlchemy URL such as sqlite:///path/to/wattprint.db or postgresql+psycopg://user@host:5432/db "
    "(postgresql:// and postgres:// use psycopg)"
)


def one_line(text: str, secret: str | None) -> str:
    """A driver message on one line, with the password (if any) blanked out."""
    text = " ".join(str(text).split())
    text = text.split("(Background on this error at:")[0].strip()
    if secret:
        text = text.replace(secret, "***")
    return text[:300]


def exc_text(exc: BaseException, secret: str | None) -> str:
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return one_line(str(inner) or type(inner).__name__, secret)


def parse_url(raw: str) -> URL:
    """Parse a store URL; postgresql:// and postgres:// map to the psycopg (3) driver."""
    if not isinstance(raw, str) or not raw.strip():
        raise WattprintInputError(DB_FIELD, f"empty database URL; expected {ACCEPTED_URLS}")
    text = raw.strip()
    try:
        url = make_url(text)
    except (ArgumentError, ValueError, TypeError):
        hint = "" if "://" in text else " (a file path needs the sqlite:/// prefix)"
        raise WattprintInputError(
            DB_FIELD, f"cannot parse {redact_url(text)!r} as a database URL{hint}; expected {ACCEPTED_URLS}"
        ) from None
    if url.host and "@" in url.host:
        raise WattprintInputError(
            DB_FIELD,
            f"cannot parse {redact_url(text)!r}: an '@' in the user name or password must be written %40; "
            f"expected {ACCEPTED_URLS}",
        )
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        url = url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return url


def describe_url(url: URL) -> str:
    """The URL as text with its password hidden, for messages."""
    return url.render_as_string(hide_password=True)
