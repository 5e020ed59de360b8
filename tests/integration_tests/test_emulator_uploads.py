"""The emulator's upload pipeline, driven with raw requests: what it checks and answers."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from langchain_hailuo.emulator import Emulator
from tests.integration_tests._emulator_client import PREFIX, agent_call

pytestmark = pytest.mark.timeout(30)

FILE = b"col1,col2\n1,2\n"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def prepare(
    http: aiohttp.ClientSession, emu: Emulator, **changes: Any
) -> tuple[int, dict[str, Any]]:
    body = {"purpose": 1, "file_name": "t.csv", "mime_type": "text/csv", "size_bytes": len(FILE)}
    body.update(changes)
    account = emu.default_account
    status, text, _ = await agent_call(
        http, emu.agent_url, "POST", f"{PREFIX}/uploads/prepare", account, body=body
    )
    return status, json.loads(text)


async def post_form(
    http: aiohttp.ClientSession,
    url: str,
    fields: list[tuple[str, str]],
    *,
    data: bytes = FILE,
    content_type: str = "text/csv",
    file_last: bool = True,
) -> tuple[int, str]:
    form = aiohttp.FormData(quote_fields=False)
    if not file_last:
        form.add_field("file", data, filename="t.csv", content_type=content_type)
    for name, value in fields:
        form.add_field(name, value)
    if file_last:
        form.add_field("file", data, filename="t.csv", content_type=content_type)
    async with http.post(url, data=form) as response:
        return response.status, await response.text()


async def test_prepare_then_upload_answers_204_and_pins_size_and_type(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    status, body = await prepare(http, hailuo_emulator)
    assert status == 200
    assert body["base_resp"]["status_code"] == 0
    instruction = body["upload_instruction"]
    assert instruction["method"] == "POST"
    assert instruction["url"].startswith(hailuo_emulator.storage_url)
    fields = list(instruction["form_fields"].items())
    assert [name for name, _ in fields] == ["OSSAccessKeyId", "key", "policy", "Signature"]
    policy = json.loads(base64.b64decode(instruction["form_fields"]["policy"]))
    assert ["content-length-range", len(FILE), len(FILE)] in policy["conditions"]
    assert ["eq", "$content-type", "text/csv"] in policy["conditions"]
    status, text = await post_form(http, instruction["url"], fields)
    assert (status, text) == (204, "")
    [stored] = hailuo_emulator.uploads
    assert (stored.object_key, stored.size) == (body["object_key"], len(FILE))
    assert stored.sha256 == hashlib.sha256(FILE).hexdigest()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"purpose": 2}, "purpose must be 1"),
        ({"purpose": True}, "purpose must be 1"),
        ({"file_name": ""}, "file_name is required"),
        ({"size_bytes": "14"}, "size_bytes must be"),
        ({"size_bytes": 100 * 1024 * 1024 + 1}, "file too large"),
    ],
)
async def test_prepare_refuses_bad_bodies(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, changes: dict[str, Any], message: str
) -> None:
    status, body = await prepare(http, hailuo_emulator, **changes)
    assert status == 200
    assert body["base_resp"]["status_code"] != 0
    assert body["base_resp"]["status_msg"].startswith(message)


async def test_prepare_is_signed(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    status, _, _ = await agent_call(
        http,
        hailuo_emulator.agent_url,
        "POST",
        f"{PREFIX}/uploads/prepare",
        account,
        body={"purpose": 1, "file_name": "t", "mime_type": "text/plain", "size_bytes": 1},
        signature="0" * 32,
    )
    assert status == 400


async def test_the_refused_prepare_fault(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    hailuo_emulator.fault("upload_refused", message="quota of files reached")
    _, body = await prepare(http, hailuo_emulator)
    assert body["base_resp"] == {"status_code": 1402, "status_msg": "quota of files reached"}


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("file first", 400, "InvalidArgument"),
        ("fields reordered", 400, "InvalidArgument"),
        ("bad signature", 403, "SignatureDoesNotMatch"),
        ("wrong size", 400, "EntityTooLarge"),
        ("wrong type", 403, "AccessDenied"),
        ("fault", 403, "AccessDenied"),
    ],
)
async def test_storage_refusals(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, case: str, status: int, code: str
) -> None:
    _, body = await prepare(http, hailuo_emulator)
    instruction = body["upload_instruction"]
    fields = list(instruction["form_fields"].items())
    kwargs: dict[str, Any] = {}
    if case == "file first":
        kwargs["file_last"] = False
    elif case == "fields reordered":
        fields.reverse()
    elif case == "bad signature":
        fields[3] = ("Signature", "AAAA")
    elif case == "wrong size":
        kwargs["data"] = FILE + b"x"
    elif case == "wrong type":
        kwargs["content_type"] = "text/plain"
    else:
        hailuo_emulator.fault("storage_403")
    got, text = await post_form(http, instruction["url"], fields, **kwargs)
    assert got == status
    assert f"<Code>{code}</Code>" in text
    assert hailuo_emulator.uploads == []


async def test_a_turn_must_name_stored_objects_of_its_own_account(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    from tests.integration_tests._emulator_client import agent_bootstrap

    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    entry = {
        "meta": {"attachment_type": "file", "file_name": "t.csv", "mime_type": "text/csv"},
        "cloud": {"object_key": "never-uploaded"},
    }
    status, text, _ = await agent_call(
        http,
        hailuo_emulator.agent_stream_url,
        "POST",
        f"{PREFIX}/session/{session_id}/message",
        account,
        body={"content": " ", "attachments": [entry], "turn_id": "t1", "worktreeMode": False},
        headers={"accept": "text/event-stream"},
        absolute_yy=True,  # the stream host signs the absolute URL
    )
    assert status == 400
    assert json.loads(text)["base_resp"]["status_msg"] == "attachment not found: never-uploaded"
