"""Signing: the §3.6 vectors, the query, JSON bodies and the yy target modes."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from langchain_hailuo.agent.signing import (
    QUERY_ORDER,
    QueryProfile,
    build_query,
    dumps_body,
    encode_uri_component,
    identity_query_values,
    sign_request,
    signing_target,
    url_search_params_encode,
    x_signature,
    x_timestamp,
    yy_signature,
    yy_uses_absolute_target,
)
from tests.unit_tests.agent.conftest import make_auth

NOW = 1790000000123
SALT = "I*7Cf%WZ#S&%1RlZJ&C2"

MCODE_GET = (
    "/v1/api/user/info?device_platform=mcode&biz_id=3&app_id=3001&version_code=22201"
    "&unix=1790000000123&timezone_offset=28800&sys_language=zh&lang=zh&device_id=0"
    "&os_name=darwin&browser_name=mcode&user_id=0&client=mcode"
)
MCODE_POST = (
    "/matrix/api/v1/commerce/get_membership_info?device_platform=mcode&biz_id=3&app_id=3001"
    "&version_code=22201&unix=1790000000123&timezone_offset=0&sys_language=en&lang=en"
    "&device_id=0&os_name=linux&browser_name=mcode&user_id=u-42&client=mcode"
)
WEB_PATH = "/minimax-cloud/api/v1/session/123456789012345/message"
WEB_QUERY = (
    "device_platform=web&biz_id=3&app_id=3001&version_code=22201&unix=1790000000123"
    "&timezone_offset=28800&sys_language=en&lang=en&uuid=3f1c2a4e-0000-4000-8000-000000000001"
    "&device_id=12345678&os_name=Windows&browser_name=Chrome&device_memory=16&cpu_core_num=8"
    "&browser_language=en-US&browser_platform=Win32&user_id=987654321&screen_width=1920"
    "&screen_height=1080&token=eyJ.test.jwt&client=web&region=en"
)
WEB_BODY = (
    '{"content":"hi","model":{"provider_id":"minimax","model_id":"MiniMax-M3","reasoning":true},'
    '"turn_id":"00000000-0000-4000-8000-000000000000","worktreeMode":false}'
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def test_mcode_get_vector() -> None:
    assert x_timestamp(NOW) == "1790000000"
    assert x_signature("1790000000", "") == "03015677c012162b07bc060014868ead"
    assert yy_signature(MCODE_GET, "", NOW) == "ea384f50aae587ea2048557a2e1b30b1"


def test_mcode_post_vector() -> None:
    body = '{"workspace_id":7}'
    assert x_signature("1790000000", body) == "cdc435f7a98e23c841ecd445dfa82439"
    assert yy_signature(MCODE_POST, body, NOW) == "078fc5529cd0bee0e3f4b587421d726d"


def test_web_vector_relative_and_absolute() -> None:
    relative = f"{WEB_PATH}?{WEB_QUERY}"
    assert x_signature("1790000000", WEB_BODY) == "6ff4acd05b58215d0f42f81d105da063"
    assert yy_signature(relative, WEB_BODY, NOW) == "5c25367fbacbeb83d95705d858c5c2be"
    absolute = "https://agent-stream.minimax.io" + relative
    assert yy_signature(absolute, WEB_BODY, NOW) == "e2ee4a453b15a16d8945e9b3c234c6bc"
    sig = sign_request(absolute, WEB_BODY, NOW, absolute=False)
    assert sig.headers() == {
        "x-timestamp": "1790000000",
        "x-signature": "6ff4acd05b58215d0f42f81d105da063",
        "yy": "5c25367fbacbeb83d95705d858c5c2be",
    }
    assert sign_request(absolute, WEB_BODY, NOW, absolute=True).yy == (
        "e2ee4a453b15a16d8945e9b3c234c6bc"
    )


def test_web_vector_query_is_built_from_the_identity() -> None:
    auth = make_auth(
        token="eyJ.test.jwt",
        real_user_id="987654321",
        os_name="Windows",
        browser_name="Chrome",
        device_memory="16",
        cpu_core_num="8",
        browser_language="en-US",
        browser_platform="Win32",
        screen_width="1920",
        screen_height="1080",
    )
    values = identity_query_values(auth, NOW, QueryProfile(timezone_offset="0"))
    assert build_query(values) == WEB_QUERY


def test_query_order_has_22_parameters_and_drops_empty_values() -> None:
    assert len(QUERY_ORDER) == 22
    assert len(set(QUERY_ORDER)) == 22
    query = build_query({"region": "en", "unix": "1", "uuid": "", "token": None, "x": "y"})
    assert query == "unix=1&region=en"


def test_url_search_params_encoding() -> None:
    assert url_search_params_encode("a b~*-._!'()/,") == "a+b%7E*-._%21%27%28%29%2F%2C"
    assert url_search_params_encode("é") == "%C3%A9"


def test_encode_uri_component_matches_javascript() -> None:
    assert encode_uri_component("/p?a=1&b=a b~!*'()") == "%2Fp%3Fa%3D1%26b%3Da%20b~!*'()"


def test_dumps_body_is_compact_and_keeps_non_ascii() -> None:
    text = dumps_body({"content": "héllo 你好", "n": [1, 2], "ok": False})
    assert text == '{"content":"héllo 你好","n":[1,2],"ok":false}'


def test_yy_target_modes() -> None:
    assert yy_uses_absolute_target("split", stream=True)
    assert not yy_uses_absolute_target("split", stream=False)
    assert yy_uses_absolute_target("absolute", stream=False)
    assert not yy_uses_absolute_target("relative", stream=True)


def test_signing_target_takes_the_url_text_verbatim() -> None:
    url = "https://h.example:8443/a/b?x=%7E+1&y=2#frag"
    assert signing_target(url, absolute=False) == "/a/b?x=%7E+1&y=2"
    assert signing_target(url, absolute=True) == "https://h.example:8443/a/b?x=%7E+1&y=2"


@pytest.mark.parametrize("body", ["", '{"a":"ü"}'])
def test_sign_request_matches_independent_hashlib(body: str) -> None:
    url = "https://agent.minimax.io/p?unix=1790000000123&token=t"
    sig = sign_request(url, body, NOW, absolute=False)
    assert sig.x_signature == md5("1790000000" + SALT + body)
    expected_yy = md5(
        quote("/p?unix=1790000000123&token=t", safe="-_.!~*'()")
        + "_"
        + (body or "{}")
        + md5(str(NOW))
        + "ooui"
    )
    assert sig.yy == expected_yy


def test_identity_defaults_and_user_id_override() -> None:
    auth = make_auth(real_user_id="77")
    values = identity_query_values(auth, NOW, QueryProfile(region="cn", lang="zh"), user_id="")
    assert values["user_id"] == ""
    assert values["region"] == "cn"
    assert values["lang"] == values["sys_language"] == "zh"
    assert values["os_name"] == "Windows"
    assert values["screen_width"] == "1920"
    assert "user_id=" not in build_query(values)
