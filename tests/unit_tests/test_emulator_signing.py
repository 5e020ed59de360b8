"""The emulator's own signature code against the protocol notes' test vectors."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_hailuo.emulator.signing import (
    AGENT_SIGNATURE_SALT,
    agent_browser_problem,
    agent_signature,
    agent_yy,
    encode_uri_component,
    md5_hex,
    v4_body_to_yy,
    v4_yy,
)

WEB_QUERY = (
    "device_platform=web&biz_id=3&app_id=3001&version_code=22201&unix=1790000000123"
    "&timezone_offset=28800&sys_language=en&lang=en&uuid=3f1c2a4e-0000-4000-8000-000000000001"
    "&device_id=12345678&os_name=Windows&browser_name=Chrome&device_memory=16&cpu_core_num=8"
    "&browser_language=en-US&browser_platform=Win32&user_id=987654321&screen_width=1920"
    "&screen_height=1080&token=eyJ.test.jwt&client=web&region=en"
)


def test_v4_vectors() -> None:
    form = {"characterID": "1", "msgContent": "hello world", "chatID": "0"}
    assert v4_body_to_yy(form) == (
        "c4ca4238a0b923820dcc509a6f75849b5eb63bbbe01eeed093cb22bb8f5acdc3"
        "cfcd208495d565ef66e7dff9f98764dad41d8cd98f00b204e9800998ecf8427e"
    )
    path = "/v4/api/chat/msg?device_platform=web&biz_id=2&app_id=3001"
    assert v4_yy(path, form, "1700000000000") == "6893d64988ecf45b1de1808b91ae855b"


def test_v4_line_breaks_are_not_signed() -> None:
    one = {"characterID": "1", "msgContent": "a\r\nb\nc\rd", "chatID": "0"}
    two = {"characterID": "1", "msgContent": "abcd", "chatID": "0"}
    assert v4_body_to_yy(one) == v4_body_to_yy(two)


def test_agent_mcode_vectors() -> None:
    target = (
        "/v1/api/user/info?device_platform=mcode&biz_id=3&app_id=3001&version_code=22201"
        "&unix=1790000000123&timezone_offset=28800&sys_language=zh&lang=zh&device_id=0"
        "&os_name=darwin&browser_name=mcode&user_id=0&client=mcode"
    )
    assert agent_yy(target, "", "1790000000123") == "ea384f50aae587ea2048557a2e1b30b1"
    assert agent_signature("1790000000", "") == "03015677c012162b07bc060014868ead"


def test_agent_web_vector() -> None:
    body = (
        '{"content":"hi","model":{"provider_id":"minimax","model_id":"MiniMax-M3","reasoning":true},'
        '"turn_id":"00000000-0000-4000-8000-000000000000","worktreeMode":false}'
    )
    target = f"/minimax-cloud/api/v1/session/123456789012345/message?{WEB_QUERY}"
    assert agent_signature("1790000000", body) == "6ff4acd05b58215d0f42f81d105da063"
    assert agent_yy(target, body, "1790000000123") == "5c25367fbacbeb83d95705d858c5c2be"
    absolute = "https://agent-stream.minimax.io" + target
    assert agent_yy(absolute, body, "1790000000123") == "e2ee4a453b15a16d8945e9b3c234c6bc"


def test_encode_uri_component_keeps_js_safe_characters() -> None:
    assert encode_uri_component("a*b(c)!~'-_.") == "a*b(c)!~'-_."
    assert encode_uri_component("/p?q=1&r=é ") == "%2Fp%3Fq%3D1%26r%3D%C3%A9%20"


def _browser_request(path: str, body: str, stream: str | None) -> dict[str, Any]:
    """The arguments of a request signed by §12.1, computed here with hashlib only."""
    axios = path.startswith("/v1/api/")
    query = "limit=5&device_platform=web&unix=1790000000000&user_id=7&screen_width=1&token=t"
    query += "" if axios else "&region=en"
    signed = query.replace("&user_id=7&", "&user_id=7&op_ticket=undefined&")
    body_yy = (body if axios else '"' + body.replace('"', '\\"') + '"') if body else "{}"
    yy_text = encode_uri_component(f"{stream or ''}{path}?{signed}") + "_" + body_yy
    headers = {
        "x-timestamp": "1790000000",
        "x-signature": md5_hex("1790000000" + AGENT_SIGNATURE_SALT + body),
        "yy": md5_hex(yy_text + md5_hex("1790000000000") + "ooui"),
    }
    return {
        "path": path,
        "raw_query": query,
        "body": body,
        "headers": headers,
        "stream_origin": stream,
    }


@pytest.mark.parametrize(
    ("path", "body", "stream"),
    [
        ("/minimax-cloud/api/v1/session/1/message", '{"content":"hi"}', "http://127.0.0.1:9"),
        ("/minimax-cloud/api/v1/agent/1/session", '{"model":"m"}', None),
        ("/minimax-cloud/api/v1/config", "", None),
        ("/v1/api/user/renewal", "{}", None),
    ],
)
def test_the_browser_recipe_passes_and_each_departure_is_named(
    path: str, body: str, stream: str | None
) -> None:
    good = _browser_request(path, body, stream)
    assert agent_browser_problem(**good) is None
    other_host = {**good, "stream_origin": None if stream else "http://127.0.0.1:9"}
    assert agent_browser_problem(**other_host) == "yy does not match the browser's recipe"
    ms = good["raw_query"].replace("unix=1790000000000", "unix=1790000000123")
    assert "whole seconds" in str(agent_browser_problem(**{**good, "raw_query": ms}))
    wired = good["raw_query"] + "&op_ticket=undefined"
    assert "op_ticket" in str(agent_browser_problem(**{**good, "raw_query": wired}))
    late = good["raw_query"].removeprefix("limit=5&") + "&limit=5"
    assert "before device_platform" in str(agent_browser_problem(**{**good, "raw_query": late}))
    region = good["raw_query"] + ("&region=en" if path.startswith("/v1/") else "")
    if path.startswith("/v1/"):
        assert "region" in str(agent_browser_problem(**{**good, "raw_query": region}))
