"""The yy signature and the fingerprint query (protocol notes v4 §1.3, v4 §2.2)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from langchain_hailuo import _jsencode
from langchain_hailuo.types import AuthResult
from langchain_hailuo.v4 import crypt
from langchain_hailuo.v4.crypt import (
    API_PATH,
    browser_name_from_user_agent,
    build_fingerprint_query,
    encode_uri_component,
    generate_yy_header,
    get_body_to_yy,
    os_name_from_user_agent,
    platform_from_user_agent,
    url_search_params,
)
from tests.unit_tests.v4.conftest import md5

HELLO_BODY = (
    "c4ca4238a0b923820dcc509a6f75849b"
    "5eb63bbbe01eeed093cb22bb8f5acdc3"
    "cfcd208495d565ef66e7dff9f98764da"
    "d41d8cd98f00b204e9800998ecf8427e"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"
)

EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/136.0.0.0 Safari/537.36 Edg/136.0.0.0"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


# --------------------------------------------------------------------------- doc vectors


def test_body_to_yy_hello_world_vector() -> None:
    body = get_body_to_yy({"characterID": "1", "msgContent": "hello world", "chatID": "0"})
    assert body == HELLO_BODY


def test_yy_hello_world_vector() -> None:
    path = "/v4/api/chat/msg?device_platform=web&biz_id=2&app_id=3001"
    assert generate_yy_header(path, HELLO_BODY, 1700000000000) == (
        "6893d64988ecf45b1de1808b91ae855b"
    )
    assert generate_yy_header(path, HELLO_BODY, "1700000000000") == (
        "6893d64988ecf45b1de1808b91ae855b"
    )


def test_api_path() -> None:
    assert API_PATH == "/v4/api/chat/msg"


# --------------------------------------------------------------------------- bodyToYy


@pytest.mark.parametrize("content", ["hello\n world", "hello\r\n world", "hel\rlo \n\nworld\r"])
def test_line_breaks_are_removed_before_hashing(content: str) -> None:
    body = get_body_to_yy({"characterID": "1", "msgContent": content, "chatID": "0"})
    assert body == HELLO_BODY


def test_form_field_is_hashed_when_present() -> None:
    form = {"characterID": "1", "msgContent": "hello world", "chatID": "0", "form": "[]"}
    assert get_body_to_yy(form) == HELLO_BODY[:96] + md5("[]")


def test_integer_fields_and_unicode() -> None:
    body = get_body_to_yy(
        {"characterID": 1, "msgContent": "héllo 你好", "chatID": 242830597915504644}
    )
    assert body == md5("1") + md5("héllo 你好") + md5("242830597915504644") + md5("")


def test_missing_fields_hash_as_empty() -> None:
    assert get_body_to_yy({}) == md5("") * 4


# --------------------------------------------------------------------------- encodings


def test_encode_uri_component_matches_javascript() -> None:
    # encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) and escapes the rest.
    assert encode_uri_component("-_.!~*'()") == "-_.!~*'()"
    assert encode_uri_component("/v4?a=b&c=d+e%20") == "%2Fv4%3Fa%3Db%26c%3Dd%2Be%2520"
    assert encode_uri_component("é 你") == "%C3%A9%20%E4%BD%A0"


def test_yy_uses_encode_uri_component_semantics() -> None:
    path = "/v4/api/chat/msg?os_name=Chrome+OS&x=(a)!*'~"
    expected_encoded = "%2Fv4%2Fapi%2Fchat%2Fmsg%3Fos_name%3DChrome%2BOS%26x%3D(a)!*'~"
    expected = md5(f"{expected_encoded}_{HELLO_BODY}{md5('1')}ooui")
    assert generate_yy_header(path, HELLO_BODY, 1) == expected


def test_url_search_params_encoding() -> None:
    # application/x-www-form-urlencoded: space -> '+', keep *-._ and alphanumerics.
    pairs = [("a b", "c d"), ("x", "*-._~!'()/?&=+%"), ("u", "é你")]
    assert url_search_params(pairs) == (
        "a+b=c+d&x=*-._%7E%21%27%28%29%2F%3F%26%3D%2B%25&u=%C3%A9%E4%BD%A0"
    )


# --------------------------------------------------------------------------- fingerprint


def full_auth(**extra: str) -> AuthResult:
    values = {
        "token": "tok",
        "uuid": "8c5f1e0a-1b2c-4d3e-9f00-0123456789ab",
        "device_id": "301234567890123456",
        "user_agent": CHROME_MAC,
        "os_name": "macOS",
        "browser_name": "chrome",
        "cpu_core_num": "10",
        "browser_language": "en-GB",
        "browser_platform": "MacIntel",
        "screen_width": "1512",
        "screen_height": "982",
    }
    values.update(extra)
    return AuthResult.model_validate(values)


def test_fingerprint_query_order_and_values() -> None:
    query = build_fingerprint_query(full_auth(), 1700000000123)
    assert query == (
        "device_platform=web&biz_id=2&app_id=3001&version_code=22201&lang=en"
        "&uuid=8c5f1e0a-1b2c-4d3e-9f00-0123456789ab&device_id=301234567890123456"
        "&os_name=macOS&browser_name=chrome&cpu_core_num=10&browser_language=en-GB"
        "&browser_platform=MacIntel&screen_width=1512&screen_height=982&unix=1700000000123"
    )


def test_fingerprint_query_overrides() -> None:
    query = build_fingerprint_query(
        full_auth(lang="fr"), 5, version_code="22300", biz_id="9", app_id="77"
    )
    params = dict(parse_qsl(query))
    assert (params["version_code"], params["biz_id"], params["app_id"]) == ("22300", "9", "77")
    assert params["lang"] == "fr"
    assert dict(parse_qsl(build_fingerprint_query(full_auth(lang="fr"), 5, lang="de")))["lang"] == (
        "de"
    )


def test_fingerprint_query_uses_url_search_params_encoding() -> None:
    query = build_fingerprint_query(
        full_auth(os_name="Chrome OS", browser_platform="Linux x86_64", uuid="a~b/c"), 1
    )
    assert "&os_name=Chrome+OS&" in query
    assert "&browser_platform=Linux+x86_64&" in query
    assert "&uuid=a%7Eb%2Fc&" in query


def test_missing_device_keys_are_omitted_never_null() -> None:
    auth = AuthResult(token="tok")
    query = build_fingerprint_query(auth, 42)
    names = [name for name, _ in parse_qsl(query)]
    assert "uuid" not in names
    assert "device_id" not in names
    assert "null" not in query
    assert "undefined" not in query
    assert names == [
        "device_platform",
        "biz_id",
        "app_id",
        "version_code",
        "lang",
        "os_name",
        "browser_name",
        "cpu_core_num",
        "browser_language",
        "browser_platform",
        "screen_width",
        "screen_height",
        "unix",
    ]


def test_seed_null_device_keys_are_dropped() -> None:
    # The seed's stored path_and_query may hold the text "null" for a missing key.
    auth = AuthResult.model_validate(
        {"token": "tok", "path_and_query": f"{API_PATH}?uuid=null&device_id=123&unix=1"}
    )
    query = build_fingerprint_query(auth, 2)
    assert "null" not in query
    assert "&device_id=123&" in query
    assert query.endswith("&unix=2")


def test_defaults_follow_the_user_agent() -> None:
    params = dict(
        parse_qsl(build_fingerprint_query(AuthResult(token="t", user_agent=CHROME_MAC), 1))
    )
    assert params["os_name"] == "macOS"
    assert params["browser_name"] == "chrome"
    assert params["browser_platform"] == "MacIntel"
    assert params["cpu_core_num"] == "8"
    assert params["browser_language"] == "en-US"
    assert (params["screen_width"], params["screen_height"]) == ("1920", "1080")
    default = dict(parse_qsl(build_fingerprint_query(AuthResult(token="t"), 1)))
    assert (default["os_name"], default["browser_platform"]) == ("Windows", "Win32")


def test_fresh_unix_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([1_700_000_000_000_000_000, 1_700_000_000_250_000_000])
    monkeypatch.setattr(_jsencode.time, "time_ns", lambda: next(times))
    first = dict(parse_qsl(build_fingerprint_query(full_auth())))["unix"]
    second = dict(parse_qsl(build_fingerprint_query(full_auth())))["unix"]
    assert (first, second) == ("1700000000000", "1700000000250")


@pytest.mark.parametrize(
    ("ua", "browser", "os_name", "platform"),
    [
        (CHROME_MAC, "chrome", "macOS", "MacIntel"),
        (crypt.DEFAULT_USER_AGENT, "chrome", "Windows", "Win32"),
        (
            EDGE_WINDOWS,
            "edge",
            "Windows",
            "Win32",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "firefox",
            "Linux",
            "Linux x86_64",
        ),
        (
            SAFARI_IPHONE,
            "safari",
            "iOS",
            "iPhone",
        ),
        ("curl/8.0", "unknown", "Unknown", "unknown"),
    ],
)
def test_user_agent_parsing(ua: str, browser: str, os_name: str, platform: str) -> None:
    assert browser_name_from_user_agent(ua) == browser
    assert os_name_from_user_agent(ua) == os_name
    assert platform_from_user_agent(ua) == platform
