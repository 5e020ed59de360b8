"""Files and images end to end: ChatHailuo -> prepare -> object storage -> the turn.

The emulator's unscripted answer names each attachment with the byte count and SHA-256
prefix the storage received, so these tests prove the exact bytes arrived; its upload
list counts uploads. Every failure test checks that no turn was sent.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hailuo import (
    HailuoAttachmentError,
    HailuoUnsupportedContentError,
    HailuoUploadError,
)
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import mark, model_for
from tests.integration_tests._media import png_bytes


def described(name: str, data: bytes) -> str:
    """How the emulator's answer names an uploaded file."""
    return f"{name} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]})"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def turns_since(emu: Emulator, start: int) -> list[dict[str, Any]]:
    """The bodies of the Agent turns posted since ``start``."""
    return [r.body for r in emu.requests_to("chat")[start:] if r.protocol == "agent"]


def test_a_binary_file_a_png_and_text_in_one_message(emulator: Emulator) -> None:
    blob = os.urandom(5 * 1024 * 1024)
    png = png_bytes()
    model = model_for(emulator, "agent")
    start, uploads = mark(emulator), len(emulator.uploads)
    data_file = {
        "type": "file",
        "base64": b64(blob),
        "mime_type": "application/octet-stream",
        "filename": "data.bin",
    }
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What is in these?"},
            data_file,
            {"type": "image", "base64": b64(png), "mime_type": "image/png"},
        ]
    )
    answer = model.invoke([message])
    assert described("data.bin", blob) in answer.text
    assert described("image.png", png) in answer.text
    assert answer.text.startswith("You said: What is in these?")
    [turn] = turns_since(emulator, start)
    assert turn["content"] == "What is in these?"
    assert [entry["meta"] for entry in turn["attachments"]] == [
        {
            "attachment_type": "file",
            "file_name": "data.bin",
            "mime_type": "application/octet-stream",
            "size_bytes": len(blob),
        },
        {
            "attachment_type": "file",
            "file_name": "image.png",
            "mime_type": "image/png",
            "size_bytes": len(png),
        },
    ]
    assert len(emulator.uploads) == uploads + 2
    # The same file in a later turn of the chat: referenced again, not uploaded again.
    again = HumanMessage(content=[{"type": "text", "text": "And this one?"}, data_file])
    second = model.invoke([message, answer, again])
    assert described("data.bin", blob) in second.text
    assert second.response_metadata["chat_id"] == answer.response_metadata["chat_id"]
    later = turns_since(emulator, start)[1]
    assert later["content"] == "And this one?"
    assert len(later["attachments"]) == 1  # the continued chat sends only the new message
    assert len(emulator.uploads) == uploads + 2


def test_a_new_chat_with_the_history_reuses_earlier_uploads(emulator: Emulator) -> None:
    png = png_bytes(5, 5)
    model = model_for(emulator, "agent", use_previous_chat_id=False)
    first = HumanMessage(content=[{"type": "image", "base64": b64(png), "mime_type": "image/png"}])
    uploads = len(emulator.uploads)
    answer = model.invoke([first])
    assert len(emulator.uploads) == uploads + 1
    start = mark(emulator)
    model.invoke([first, answer, HumanMessage("Describe it again.")])
    [turn] = turns_since(emulator, start)  # a new session: the history folded, files again
    assert len(turn["attachments"]) == 1
    assert len(emulator.uploads) == uploads + 1


def test_a_file_only_message_sends_a_single_space(emulator: Emulator, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_bytes(b"# Notes\n")
    model = model_for(emulator, "agent")
    start = mark(emulator)
    answer = model.invoke([HumanMessage(content=[{"type": "file", "url": notes.as_uri()}])])
    [turn] = turns_since(emulator, start)
    assert turn["content"] == " "
    assert turn["attachments"][0]["meta"]["mime_type"] == "text/markdown"
    assert described("notes.md", b"# Notes\n") in answer.text


def test_an_image_url_is_passed_by_url(emulator: Emulator) -> None:
    url = "https://example.com/pictures/cat.png"
    model = model_for(emulator, "agent")
    start, uploads = mark(emulator), len(emulator.uploads)
    answer = model.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "What animal?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ]
            )
        ]
    )
    [turn] = turns_since(emulator, start)
    assert turn["attachments"] == [{"type": "image", "url": url, "name": "cat.png"}]
    assert f"image {url} (by URL)" in answer.text
    assert len(emulator.uploads) == uploads


def test_an_openai_data_url_image_is_uploaded(emulator: Emulator) -> None:
    png = png_bytes(7, 1)
    model = model_for(emulator, "agent")
    url = f"data:image/png;base64,{b64(png)}"
    answer = model.invoke(
        [HumanMessage(content=[{"type": "image_url", "image_url": {"url": url}}])]
    )
    assert described("image.png", png) in answer.text


def test_the_prepare_call_is_signed_and_the_storage_gets_no_token(emulator: Emulator) -> None:
    model = model_for(emulator, "agent")
    blob = os.urandom(1000)
    model.invoke(
        [HumanMessage(content=[{"type": "file", "base64": b64(blob), "mime_type": "text/csv"}])]
    )
    prepare = emulator.requests_to("upload_prepare")[-1]
    assert prepare.body == {
        "purpose": 1,
        "file_name": "upload.csv",
        "mime_type": "text/csv",
        "size_bytes": 1000,
    }
    assert prepare.headers["token"] == "<token>"
    assert "x-signature" in prepare.headers
    storage = emulator.requests_to("storage")[-1]
    assert "token" not in storage.headers
    assert "x-signature" not in storage.headers
    assert storage.headers["content-type"].startswith("multipart/form-data")


# --------------------------------------------------------------------------- failures


def _no_turn(emu: Emulator, start: int) -> None:
    assert turns_since(emu, start) == []


def test_an_unreadable_path_fails_before_anything_is_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    model = model_for(emulator, "agent")
    start, requests = mark(emulator), len(emulator.requests)
    missing = (tmp_path / "missing.pdf").as_uri()
    with pytest.raises(HailuoAttachmentError, match="Cannot read the attachment"):
        model.invoke([HumanMessage(content=[{"type": "file", "url": missing}])])
    _no_turn(emulator, start)
    assert len(emulator.requests) == requests


def test_an_unsupported_block_fails_before_anything_is_sent(emulator: Emulator) -> None:
    model = model_for(emulator, "agent")
    start, requests = mark(emulator), len(emulator.requests)
    audio = {"type": "audio", "base64": b64(b"RIFF"), "mime_type": "audio/wav"}
    with pytest.raises(HailuoUnsupportedContentError, match="'audio'"):
        model.invoke([HumanMessage(content=[{"type": "text", "text": "Hear this"}, audio])])
    _no_turn(emulator, start)
    assert len(emulator.requests) == requests


def test_a_file_over_the_limit_fails_before_anything_is_sent(emulator: Emulator) -> None:
    model = model_for(emulator, "agent", max_attachment_bytes=1024)
    start, requests = mark(emulator), len(emulator.requests)
    block = {"type": "file", "base64": b64(b"x" * 1025), "mime_type": "text/plain"}
    with pytest.raises(HailuoAttachmentError, match="1025 bytes, over the attachment limit"):
        model.invoke([HumanMessage(content=[block])])
    _no_turn(emulator, start)
    assert len(emulator.requests) == requests


def test_a_refused_prepare_raises_its_status_msg(emulator: Emulator) -> None:
    model = model_for(emulator, "agent")
    emulator.fault("upload_refused", message="file type not allowed")
    start, uploads = mark(emulator), len(emulator.uploads)
    block = {"type": "file", "base64": b64(b"MZ\x90\x00"), "mime_type": "application/x-msdos"}
    with pytest.raises(HailuoUploadError, match="file type not allowed") as info:
        model.invoke([HumanMessage(content=[{"type": "text", "text": "Run it"}, block])])
    assert info.value.server_message == "file type not allowed"
    _no_turn(emulator, start)
    assert len(emulator.uploads) == uploads


def test_a_storage_error_names_status_and_message_without_policy_or_signature(
    emulator: Emulator,
) -> None:
    model = model_for(emulator, "agent")
    emulator.fault("storage_403", message="The bucket you access does not belong to you.")
    start, uploads = mark(emulator), len(emulator.uploads)
    block = {"type": "file", "base64": b64(os.urandom(64)), "mime_type": "application/pdf"}
    with pytest.raises(HailuoUploadError) as info:
        model.invoke([HumanMessage(content=[block])])
    error = info.value
    assert error.status == 403
    assert "HTTP 403" in error.message
    assert "AccessDenied The bucket you access does not belong to you." in error.message
    prepared = emulator.requests_to("upload_prepare")[-1]
    assert prepared.account is not None
    for word in ("policy", "Signature", "OSSAccessKeyId"):
        assert word not in error.message
    _no_turn(emulator, start)
    assert len(emulator.uploads) == uploads


def test_a_storage_signature_error_never_echoes_the_policy(emulator: Emulator) -> None:
    """OSS quotes StringToSign / SignatureProvided on a signature error; we do not."""
    from langchain_hailuo._attachments import Attachment
    from langchain_hailuo.agent.upload import UploadTicket, storage_error

    del emulator
    ticket = UploadTicket(
        "key-1",
        "http://127.0.0.1:1/bucket",
        (
            ("OSSAccessKeyId", "LTAIabcdef12345678"),
            ("policy", "eyJwb2xpY3kiOjF9LONG"),
            ("Signature", "c2lnbmF0dXJlLXZhbHVl"),
        ),
    )
    body = (
        "<Error><Code>SignatureDoesNotMatch</Code><Message>bad signature c2lnbmF0dXJlLXZhbHVl"
        "</Message><StringToSign>eyJwb2xpY3kiOjF9LONG</StringToSign>"
        "<SignatureProvided>c2lnbmF0dXJlLXZhbHVl</SignatureProvided></Error>"
    )
    error = storage_error(403, body, ticket, Attachment("file", "a.pdf", "application/pdf", b"1"))
    assert "SignatureDoesNotMatch" in error.message
    for secret in ("eyJwb2xpY3kiOjF9LONG", "c2lnbmF0dXJlLXZhbHVl", "LTAIabcdef12345678"):
        assert secret not in error.message
        assert secret not in error.server_message


def test_a_turn_naming_a_refused_upload_raises_and_the_next_try_uploads_again(
    emulator: Emulator,
) -> None:
    png = png_bytes(9, 9)
    block = {"type": "image", "base64": b64(png), "mime_type": "image/png"}
    model = model_for(emulator, "agent", use_previous_chat_id=False)
    emulator.fault("attachment_refused")
    start, uploads = mark(emulator), len(emulator.uploads)
    with pytest.raises(HailuoUploadError, match="attachment not found") as info:
        model.invoke([HumanMessage(content=[{"type": "text", "text": "Hue?"}, block])])
    assert info.value.status == 400
    assert info.value.partial_text == ""
    assert len(emulator.requests_to("chat")[start:]) == 1  # refused, not answered, not resent
    assert len(emulator.uploads) == uploads + 1
    answer = model.invoke([HumanMessage(content=[{"type": "text", "text": "Hue?"}, block])])
    assert len(emulator.uploads) == uploads + 2  # the refused upload was forgotten
    assert described("image.png", png) in answer.text


def test_an_expired_earlier_upload_is_uploaded_again_and_the_turn_resent_once(
    emulator: Emulator,
) -> None:
    blob = os.urandom(3000)
    block = {"type": "file", "base64": b64(blob), "mime_type": "application/pdf"}
    model = model_for(emulator, "agent", use_previous_chat_id=False)
    uploads = len(emulator.uploads)
    model.invoke([HumanMessage(content=[block])])
    emulator.expire_uploads()  # the remembered object key is no longer usable
    start = mark(emulator)
    answer = model.invoke([HumanMessage(content=[block])])
    assert described("upload.pdf", blob) in answer.text
    assert len(emulator.uploads) == uploads + 2
    refused, answered = emulator.requests_to("chat")[start:]
    assert refused.body["attachments"] != answered.body["attachments"]  # a new object key
    assert refused.body["turn_id"] != answered.body["turn_id"]


def test_a_turn_refused_again_after_a_fresh_upload_raises(emulator: Emulator) -> None:
    blob = os.urandom(3001)
    block = {"type": "file", "base64": b64(blob), "mime_type": "application/pdf"}
    model = model_for(emulator, "agent", use_previous_chat_id=False)
    model.invoke([HumanMessage(content=[block])])
    emulator.fault("attachment_refused", times=2)
    start = mark(emulator)
    with pytest.raises(HailuoUploadError, match="not answered"):
        model.invoke([HumanMessage(content=[block])])
    assert len(emulator.requests_to("chat")[start:]) == 2  # the reused key, then a fresh one


def test_v4_refuses_files_naming_the_agent_protocol(emulator: Emulator) -> None:
    model = model_for(emulator, "v4")
    start, requests = mark(emulator), len(emulator.requests)
    block = {"type": "image", "base64": b64(png_bytes()), "mime_type": "image/png"}
    with pytest.raises(HailuoUnsupportedContentError, match="protocol='agent'"):
        model.invoke([HumanMessage(content=[{"type": "text", "text": "See"}, block])])
    assert mark(emulator) == start
    assert len(emulator.requests) == requests


def test_a_tool_result_image_goes_through_the_same_path(emulator: Emulator) -> None:
    png = png_bytes(4, 4)
    model = model_for(emulator, "agent")
    from langchain_core.messages import ToolMessage

    def random_image() -> str:
        """Return a random image."""
        return ""

    start = mark(emulator)
    answer = model.bind_tools([random_image]).invoke(
        [
            HumanMessage("Describe the tool's picture."),
            AIMessage(
                [],
                tool_calls=[{"type": "tool_call", "id": "1", "name": "random_image", "args": {}}],
            ),
            ToolMessage(
                content=[{"type": "image", "base64": b64(png), "mime_type": "image/png"}],
                tool_call_id="1",
                name="random_image",
            ),
        ]
    )
    [turn] = turns_since(emulator, start)
    assert b64(png) not in turn["content"]
    assert len(turn["attachments"]) == 1
    assert described("image.png", png) in answer.text


def test_uploads_belong_to_the_account_that_sends_the_turn() -> None:
    from langchain_hailuo.emulator import EmulatorAccount
    from langchain_hailuo.emulator.pytest_plugin import serving

    png = png_bytes(2, 2)
    block = {"type": "image", "base64": b64(png), "mime_type": "image/png"}
    with serving(Emulator(accounts=[EmulatorAccount("alice"), EmulatorAccount("bob")])) as emu:
        for name in ("alice", "bob"):
            model = ChatHailuo(**emu.model_kwargs(account=name))
            answer = model.invoke([HumanMessage(content=[block])])
            assert described("image.png", png) in answer.text
        assert [stored.account for stored in emu.uploads] == ["alice", "bob"]
        prepares = emu.requests_to("upload_prepare")
        turns = emu.requests_to("chat")
        assert [r.account for r in prepares] == [r.account for r in turns] == ["alice", "bob"]


async def test_concurrent_turns_with_the_same_file_upload_it_once(emulator: Emulator) -> None:
    import asyncio

    blob = os.urandom(4096)
    block = {"type": "file", "base64": b64(blob), "mime_type": "application/zip"}
    model = model_for(emulator, "agent", max_concurrency=3, use_previous_chat_id=False)
    uploads = len(emulator.uploads)
    answers = await asyncio.gather(
        *(model.ainvoke([HumanMessage(content=[f"copy {n}", block])]) for n in range(3))
    )
    assert all(described("upload.zip", blob) in a.text for a in answers)
    assert len(emulator.uploads) == uploads + 1


def test_two_models_of_one_account_share_their_uploads(emulator: Emulator) -> None:
    blob = os.urandom(2048)
    block = {"type": "file", "base64": b64(blob), "mime_type": "application/pdf"}
    uploads = len(emulator.uploads)
    for _ in range(2):
        answer = model_for(emulator, "agent").invoke([HumanMessage(content=[block])])
        assert described("upload.pdf", blob) in answer.text
    assert len(emulator.uploads) == uploads + 1


def test_a_tool_result_image_in_a_continued_chat(emulator: Emulator) -> None:
    from langchain_core.messages import ToolMessage

    from tests.integration_tests.test_tools_emulator import call_block

    def snapshot(camera: str) -> str:
        """Take a picture with a camera."""
        return camera

    png = png_bytes(8, 3)
    model = model_for(emulator, "agent").bind_tools([snapshot])
    emulator.script("Taking one.\n" + call_block("snapshot", {"camera": "front"}))
    question = HumanMessage("What does the front camera see?")
    called = model.invoke([question])
    [call] = called.tool_calls
    result = ToolMessage(
        content=[
            {"type": "text", "text": "front camera"},
            {"type": "image", "base64": b64(png), "mime_type": "image/png"},
        ],
        tool_call_id=call["id"],
    )
    start = mark(emulator)
    answer = model.invoke([question, called, result])
    [turn] = turns_since(emulator, start)
    assert answer.response_metadata["chat_id"] == called.response_metadata["chat_id"]
    assert "front camera" in turn["content"]
    assert b64(png) not in turn["content"]
    assert [entry["meta"]["file_name"] for entry in turn["attachments"]] == ["image.png"]
    # (the echo answer quotes the tool instructions, so the tools parser cuts its text)
    stored = emulator.uploads[-1]
    assert (stored.size, stored.sha256) == (len(png), hashlib.sha256(png).hexdigest())
    assert turn["attachments"][0]["cloud"]["object_key"] == stored.object_key


def test_an_upload_store_can_be_passed_in(emulator: Emulator) -> None:
    from langchain_hailuo.agent.upload import MemoryUploadStore

    store = MemoryUploadStore()
    kwargs = emulator.model_kwargs()
    kwargs["provider_settings"] = {**kwargs.get("provider_settings", {}), "upload_store": store}
    block = {"type": "file", "base64": b64(os.urandom(100)), "mime_type": "text/plain"}
    ChatHailuo(**kwargs).invoke([HumanMessage(content=[block])])
    assert len(store) == 1
