"""Signing exactly as the production web bundle (§12.1): vectors derived from the recipe's
text with hashlib, and one test per detail of it (each fails if that detail is changed)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from langchain_hailuo.agent.signing import (
    QUERY_ORDER,
    QueryProfile,
    browser_unix_ms,
    build_query,
    dumps_body,
    encode_uri_component,
    identity_query_values,
    sign_request,
    signed_query,
    signing_target,
    url_search_params_encode,
    uses_fetch_wrapper,
    x_signature,
    x_timestamp,
    yy_body,
    yy_signature,
)
from tests.unit_tests.agent.conftest import SALT, make_auth, md5

NOW = 1790000000123

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
BROWSER_NOW = 1790000000000  # whole seconds x 1000, as Date.parse(new Date().toString())
BROWSER_QUERY = WEB_QUERY.replace("unix=1790000000123", f"unix={BROWSER_NOW}")
SIGNED_QUERY = BROWSER_QUERY.replace(
    "&user_id=987654321&", "&user_id=987654321&op_ticket=undefined&"
)
WEB_BODY = (
    '{"content":"hi","model":{"provider_id":"minimax","model_id":"MiniMax-M3","reasoning":true},'
    '"turn_id":"00000000-0000-4000-8000-000000000000","worktreeMode":false}'
)


def test_mcode_get_vector() -> None:
    assert x_timestamp(NOW) == "1790000000"
    assert x_signature("1790000000", "") == "03015677c012162b07bc060014868ead"
    # the §3.6 vector (an mcode GET: body part "{}") through the same yy formula
    assert yy_signature(MCODE_GET, "{}", NOW) == "ea384f50aae587ea2048557a2e1b30b1"


def test_mcode_post_vector() -> None:
    body = '{"workspace_id":7}'
    assert x_signature("1790000000", body) == "cdc435f7a98e23c841ecd445dfa82439"
    assert yy_signature(MCODE_POST, body, NOW) == "078fc5529cd0bee0e3f4b587421d726d"


def browser_yy(target: str, body_yy: str, unix: int) -> str:
    """§12.1's yy line, written out with hashlib and urllib only."""
    return md5(quote(target, safe="-_.!~*'()") + "_" + body_yy + md5(str(unix)) + "ooui")


# The web vector of §12.1, derived here from the recipe's text: POST of the message to the
# stream host; the signed query holds op_ticket=undefined; yy signs the absolute URL and the
# body JSON-quoted once more (JSON.stringify of the body text).
STREAM_ORIGIN = "https://agent-stream.minimax.io"
QUOTED_BODY = '"' + WEB_BODY.replace('"', '\\"') + '"'
WEB_YY = browser_yy(f"{STREAM_ORIGIN}{WEB_PATH}?{SIGNED_QUERY}", QUOTED_BODY, BROWSER_NOW)
WEB_X_SIGNATURE = md5("1790000000" + SALT + WEB_BODY)


def test_web_message_vector_from_the_recipe() -> None:
    url = f"{STREAM_ORIGIN}{WEB_PATH}?{BROWSER_QUERY}"
    assert sign_request(url, WEB_BODY, BROWSER_NOW, stream=True).headers() == {
        "x-timestamp": "1790000000",
        "x-signature": WEB_X_SIGNATURE,
        "yy": WEB_YY,
    }
    # x-signature is unchanged from §3.2 (raw body): the §3.6 vector still holds
    assert WEB_X_SIGNATURE == "6ff4acd05b58215d0f42f81d105da063"


def test_detail_the_fetch_wrapper_quotes_the_body_once_more() -> None:
    assert yy_body(WEB_BODY, fetch_wrapper=True) == QUOTED_BODY
    assert QUOTED_BODY.startswith('"{\\"content\\":\\"hi\\"')
    assert yy_body('{"a":"x\\ny"}', fetch_wrapper=True) == '"{\\"a\\":\\"x\\\\ny\\"}"'
    assert yy_body('{"a":"é"}', fetch_wrapper=True) == '"{\\"a\\":\\"é\\"}"'  # not \\u-escaped
    url = f"{STREAM_ORIGIN}{WEB_PATH}?{BROWSER_QUERY}"
    raw = browser_yy(f"{STREAM_ORIGIN}{WEB_PATH}?{SIGNED_QUERY}", WEB_BODY, BROWSER_NOW)
    assert sign_request(url, WEB_BODY, BROWSER_NOW, stream=True).yy != raw


def test_detail_axios_calls_sign_the_raw_body_or_braces() -> None:
    body = '{"workspace_id":7}'
    assert yy_body(body, fetch_wrapper=False) == body
    assert yy_body("", fetch_wrapper=False) == "{}"
    assert yy_body("", fetch_wrapper=True) == "{}"  # a GET or a POST without data
    path = "/matrix/api/v1/commerce/get_membership_info"
    query = BROWSER_QUERY.removesuffix("&region=en")
    url = f"https://agent.minimax.io{path}?{query}"
    signed = query.replace("&user_id=987654321&", "&user_id=987654321&op_ticket=undefined&")
    expected = browser_yy(f"{path}?{signed}", body, BROWSER_NOW)
    assert sign_request(url, body, BROWSER_NOW, stream=False).yy == expected


def test_detail_which_calls_use_the_fetch_wrapper() -> None:
    assert not uses_fetch_wrapper("/v1/api/user/info")
    assert not uses_fetch_wrapper("/v1/api/user/renewal")
    assert not uses_fetch_wrapper("/matrix/api/v1/commerce/get_membership_info")
    assert uses_fetch_wrapper("/minimax-cloud/api/v1/config")
    assert uses_fetch_wrapper("/archon/api/v1/agent/1/session")


def test_detail_op_ticket_is_signed_after_user_id_never_sent() -> None:
    assert signed_query(BROWSER_QUERY) == SIGNED_QUERY
    assert "op_ticket" not in build_query({"op_ticket": "x", "user_id": "1"})
    # without user_id (user/info before the id is known) it still precedes screen_width
    assert signed_query("lang=en&screen_width=1") == "lang=en&op_ticket=undefined&screen_width=1"
    assert signed_query("a=1") == "a=1&op_ticket=undefined"
    url = f"https://agent.minimax.io/p?{BROWSER_QUERY}"
    assert signing_target(url, absolute=False) == f"/p?{SIGNED_QUERY}"


def test_detail_only_the_stream_host_signs_the_absolute_url() -> None:
    control = f"https://agent.minimax.io{WEB_PATH}?{BROWSER_QUERY}"
    stream = f"{STREAM_ORIGIN}{WEB_PATH}?{BROWSER_QUERY}"
    relative = browser_yy(f"{WEB_PATH}?{SIGNED_QUERY}", QUOTED_BODY, BROWSER_NOW)
    assert sign_request(control, WEB_BODY, BROWSER_NOW, stream=False).yy == relative
    assert sign_request(stream, WEB_BODY, BROWSER_NOW, stream=True).yy == WEB_YY


def test_detail_unix_is_whole_seconds_and_feeds_both_headers() -> None:
    assert browser_unix_ms(NOW) == BROWSER_NOW
    assert str(browser_unix_ms(1790000000999)).endswith("000")
    sig = sign_request(f"{STREAM_ORIGIN}/p?unix={BROWSER_NOW}", "", BROWSER_NOW, stream=True)
    assert sig.x_timestamp == "1790000000"
    assert sig.yy == browser_yy(
        f"{STREAM_ORIGIN}/p?unix={BROWSER_NOW}&op_ticket=undefined", "{}", BROWSER_NOW
    )


def test_detail_region_only_on_agent_api_calls() -> None:
    auth = make_auth(real_user_id="1")
    agent = identity_query_values(auth, BROWSER_NOW, QueryProfile(), fetch_wrapper=True)
    axios = identity_query_values(auth, BROWSER_NOW, QueryProfile(), fetch_wrapper=False)
    assert build_query(agent).endswith("&client=web&region=en")
    assert build_query(axios).endswith("&client=web")


def test_detail_caller_params_come_before_device_platform() -> None:
    query = build_query({"device_platform": "web", "unix": "1"}, [("limit", "100"), ("a b", "c d")])
    assert query == "limit=100&a+b=c+d&device_platform=web&unix=1"


def test_detail_spaces_are_plus() -> None:
    query = build_query({"browser_platform": "Linux x86_64"})
    assert query == "browser_platform=Linux+x86_64"


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


def test_query_order_has_22_wire_parameters_and_drops_empty_values() -> None:
    assert len(QUERY_ORDER) == 23  # with op_ticket, which is only signed
    assert len(set(QUERY_ORDER)) == 23
    assert QUERY_ORDER[QUERY_ORDER.index("user_id") + 1] == "op_ticket"
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


def test_signing_target_takes_the_url_text_verbatim() -> None:
    url = "https://h.example:8443/a/b?x=%7E+1&y=2#frag"
    signed = "x=%7E+1&y=2&op_ticket=undefined"
    assert signing_target(url, absolute=False) == f"/a/b?{signed}"
    assert signing_target(url, absolute=True) == f"https://h.example:8443/a/b?{signed}"


@pytest.mark.parametrize("body", ["", '{"a":"ü"}'])
def test_sign_request_matches_independent_hashlib(body: str) -> None:
    url = "https://agent.minimax.io/p?unix=1790000000000&token=t"
    sig = sign_request(url, body, BROWSER_NOW, stream=False)
    assert sig.x_signature == md5("1790000000" + SALT + body)
    body_yy = '"' + body.replace('"', '\\"') + '"' if body else "{}"
    expected_yy = md5(
        quote("/p?unix=1790000000000&op_ticket=undefined&token=t", safe="-_.!~*'()")
        + "_"
        + body_yy
        + md5(str(BROWSER_NOW))
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
