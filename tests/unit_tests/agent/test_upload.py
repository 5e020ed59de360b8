"""The Agent upload pipeline's wire shapes: prepare body and answer, turn entries, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aioresponses import aioresponses

from langchain_hailuo._attachments import Attachment
from langchain_hailuo.agent.client import ModelChoice
from langchain_hailuo.agent.upload import (
    MemoryUploadStore,
    UploadKey,
    UploadTicket,
    cloud_entry,
    is_refused_turn,
    parse_prepare_answer,
    prepare_payload,
    storage_error,
    url_entry,
)
from langchain_hailuo.errors import (
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoServerError,
    HailuoSessionBusyError,
)
from langchain_hailuo.types import FinishReason
from tests.unit_tests.agent.conftest import (
    AGENT_ID,
    REAL_USER_ID,
    SESSION_ID,
    chunk,
    make_auth,
    make_client,
    mock_turn,
    sent,
    sse,
)

NOTES = Attachment("file", "notes.md", "text/markdown", data=b"hello")
INSTRUCTION = {
    "method": "post",
    "url": "https://bucket.oss-us-east-1.aliyuncs.com",
    "form_fields": {"OSSAccessKeyId": "LTAI1", "key": "k", "policy": "cG9s", "Signature": "c2ln"},
}


def test_prepare_body_as_captured() -> None:
    assert prepare_payload(NOTES) == {
        "purpose": 1,
        "file_name": "notes.md",
        "mime_type": "text/markdown",
        "size_bytes": 5,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"object_key": "9484b529", "upload_instruction": INSTRUCTION},
        {"data": {"object_key": "9484b529", "upload_instruction": INSTRUCTION}},
    ],
    ids=["root", "data"],
)
def test_prepare_answer_at_the_root_or_under_data(body: dict[str, Any]) -> None:
    ticket = parse_prepare_answer(body, origin="https://agent.minimax.io")
    assert ticket.object_key == "9484b529"
    assert ticket.url == INSTRUCTION["url"]
    assert [name for name, _ in ticket.form_fields] == [
        "OSSAccessKeyId",
        "key",
        "policy",
        "Signature",
    ]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"upload_instruction": INSTRUCTION}, "without object_key"),
        ({"object_key": "k", "upload_instruction": {**INSTRUCTION, "method": "PUT"}}, "by PUT"),
        ({"object_key": "k", "upload_instruction": {**INSTRUCTION, "url": ""}}, "no URL"),
        (
            {
                "object_key": "k",
                "upload_instruction": {**INSTRUCTION, "form_fields": {"file": "x"}},
            },
            "named 'file'",
        ),
    ],
)
def test_unusable_prepare_answers(body: dict[str, Any], match: str) -> None:
    with pytest.raises(HailuoProtocolError, match=match):
        parse_prepare_answer(body, origin="https://agent.minimax.io")


def test_turn_entries() -> None:
    assert cloud_entry(NOTES, "9484b529") == {
        "meta": {
            "attachment_type": "file",
            "file_name": "notes.md",
            "mime_type": "text/markdown",
            "size_bytes": 5,
        },
        "cloud": {"object_key": "9484b529"},
    }
    image = Attachment("image", "cat.png", "image/png", url="https://x/cat.png")
    assert url_entry(image) == {"type": "image", "url": "https://x/cat.png", "name": "cat.png"}


def test_storage_error_quotes_code_and_message_only() -> None:
    ticket = UploadTicket(
        "k", "https://bucket", (("policy", "eyJleHBpcmF0aW9uIjo"), ("Signature", "c2lnbmF0dXJl"))
    )
    body = (
        "<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired."
        "</Message><StringToSign>eyJleHBpcmF0aW9uIjo</StringToSign><HostId>h</HostId></Error>"
    )
    error = storage_error(403, body, ticket, NOTES)
    assert error.status == 403
    assert error.server_message == "AccessDenied Request has expired."
    assert "eyJleHBpcmF0aW9uIjo" not in error.message
    assert "notes.md" in error.message
    assert not error.retryable
    assert storage_error(503, "", ticket, NOTES).retryable


def test_which_turn_errors_mean_a_refused_attachment() -> None:
    assert is_refused_turn(HailuoServerError("bad", status=400))
    assert is_refused_turn(HailuoServerError("gone", status=404))
    assert not is_refused_turn(HailuoServerError("down", status=503))
    assert not is_refused_turn(HailuoServerError("frame"))
    assert not is_refused_turn(HailuoSessionBusyError("busy", status=409))
    assert not is_refused_turn(HailuoQuotaError("quota", status=400))


def test_memory_store() -> None:
    store = MemoryUploadStore()
    key = UploadKey("acc", "https://agent.minimax.io", "abc", "text/plain")
    assert store.get(key) is None
    store.put(key, "obj")
    assert store.get(key) == "obj"
    assert len(store) == 1
    store.discard(key)
    store.discard(key)
    assert store.get(key) is None


def test_memory_store_forgets_the_least_recently_used() -> None:
    store = MemoryUploadStore(max_entries=2)
    keys = [UploadKey("acc", "site", str(n), "text/plain") for n in range(3)]
    store.put(keys[0], "a")
    store.put(keys[1], "b")
    assert store.get(keys[0]) == "a"  # now the most recently used
    store.put(keys[2], "c")
    assert (store.get(keys[0]), store.get(keys[1]), store.get(keys[2])) == ("a", None, "c")


@pytest.mark.parametrize(("text", "sent_text"), [("", " "), ("  ", " "), ("Read it", "Read it")])
async def test_the_turn_body_carries_attachments_in_the_builder_order(
    mocked: aioresponses, text: str, sent_text: str
) -> None:
    mock_turn(mocked, sse(chunk("ok"), chunk(finish=True)))
    client = make_client()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    entries = [cloud_entry(NOTES, "9484b529")]
    async with client.send_message(
        auth, SESSION_ID, text, ModelChoice("MiniMax-M3"), attachments=entries
    ) as turn:
        assert [e async for group in turn.events() for e in group] == ["ok", FinishReason("stop")]
    [(_, _, kwargs)] = sent(mocked)
    data = json.loads(kwargs["data"])
    assert list(data) == ["content", "attachments", "model", "turn_id", "worktreeMode"]
    assert data["content"] == sent_text
    assert data["attachments"] == entries
