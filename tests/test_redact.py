"""One redaction for every place that shows or stores text that may hold a secret."""

from __future__ import annotations

import pytest

from wattprint.redact import redact, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:s3cret@db.example/runs", "postgresql://me:***@db.example/runs"),
        (
            "postgresql+psycopg://me:s3cret@db:5432/runs?sslmode=require",
            "postgresql+psycopg://me:***@db:5432/runs?sslmode=require",
        ),
        ("postgresql://me:pa/ss@host/db", "postgresql://***@host/db"),  # an unescaped '/' in the password
        ("postgresql://me:pa?ss@host/db", "postgresql://***@host/db"),  # SQLAlchemy takes this one as it is
        ("postgresql://me:se?cr@et@host/db", "postgresql://***@host/db"),
        (
            "postgresql://host/db?user=me&password=s3cret&sslmode=require",
            "postgresql://host/db?user=me&password=***&sslmode=require",
        ),
        ("postgresql://me:p@ss@host/db", "postgresql://***@host/db"),  # an unescaped '@': hidden whole
        ("https://TOKEN@host/p", "https://***@host/p"),  # a bare token
        ("me:pw@host", "me:***@host"),
        ("postgresql://host/db", "postgresql://host/db"),
        ("sqlite:///path/with@sign.db", "sqlite:///path/with@sign.db"),
        ("postgresql://u:p@h/db?note=a@b", "postgresql://***@b"),  # more hidden than needed, never less
    ],
)
def test_redact_url_hides_the_password_and_nothing_else(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_replaces_every_secret_of_four_characters_or_more() -> None:
    assert redact("key abcd1234 and abcd1234 again, id 42", ["abcd1234", None, "42"]) == "key *** and *** again, id 42"
