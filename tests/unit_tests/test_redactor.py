"""An account's scrubber removes its token and cookies from server text in every form a
server may echo them in, and leaves other text alone."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

import pytest

from langchain_hailuo._http import Redactor
from langchain_hailuo.types import AuthResult

# Characters that each encoding changes, so every form differs from the raw token.
TOKEN = 'tok/en+with "quotes" & <tags> é=1'
COOKIE = "cookie-value/42+x"

FORMS = {
    "raw": TOKEN,
    "percent": quote(TOKEN, safe=""),
    "plus": quote_plus(TOKEN),
    "json": json.dumps(TOKEN)[1:-1],
    "json-ascii-off": json.dumps(TOKEN, ensure_ascii=False)[1:-1],
    "html": html.escape(TOKEN),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_the_token_is_scrubbed(form: str) -> None:
    redact = Redactor([TOKEN])
    assert redact(f"before {FORMS[form]} after") == "before *** after"


def test_every_occurrence_and_the_cookies_of_an_account_are_scrubbed() -> None:
    auth = AuthResult(token=TOKEN, cookies={"sid": COOKIE})
    redact = Redactor.of(auth)
    text = f"{TOKEN}|{quote(COOKIE, safe='')}|{TOKEN}|{COOKIE}"
    assert redact(text) == "***|***|***|***"


def test_a_secret_inside_a_longer_one_leaves_no_piece_of_the_longer() -> None:
    short, long = "abcdefgh", "abcdefgh-and-more"
    assert Redactor([short, long])(f"x {long} y {short} z") == "x *** y *** z"


def test_short_values_and_unrelated_text_are_left_alone() -> None:
    redact = Redactor(["abc", TOKEN])  # shorter than 6 characters: too common to scrub
    assert redact("abc is a fine title") == "abc is a fine title"


def test_anything_shaped_like_a_jwt_is_scrubbed_even_when_not_the_accounts() -> None:
    other = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert other not in Redactor([TOKEN])(f"leaked {other}")
