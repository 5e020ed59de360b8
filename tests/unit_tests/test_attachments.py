"""Content blocks -> attachments: every block form LangChain users send, and every refusal."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_hailuo._attachments import (
    Attachment,
    carry_attachments,
    detach_media,
    path_block,
    read_path,
    split_content,
    with_attachments,
)
from langchain_hailuo._messages import history_hash, to_message_dicts
from langchain_hailuo._tool_turns import TurnTools
from langchain_hailuo._turns import RenderedCall, plan
from langchain_hailuo.errors import HailuoAttachmentError, HailuoUnsupportedContentError
from langchain_hailuo.types import MessageDict

DATA = b"\x89PNG\r\n\x1a\n-not-really-a-png-\x00\xff"
B64 = base64.b64encode(DATA).decode("ascii")


def only(content: list[Any], **kwargs: Any) -> Attachment:
    rest, found = split_content(content, **kwargs)
    assert rest == []
    [attachment] = found
    return attachment


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "base64": B64, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": B64, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
        {"type": "image_url", "image_url": f"data:image/png;base64,{B64}"},
    ],
    ids=["v1", "v0", "openai", "openai-bare-url"],
)
def test_image_bytes_in_every_form(block: dict[str, Any]) -> None:
    attachment = only([block])
    assert attachment.kind == "image"
    assert attachment.data == DATA
    assert attachment.mime_type == "image/png"
    assert attachment.name == "image.png"
    assert attachment.size == len(DATA)
    assert attachment.sha256 == hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": B64, "mime_type": "application/pdf", "filename": "a.pdf"},
        {
            "type": "file",
            "base64": B64,
            "mime_type": "application/pdf",
            "extras": {"filename": "a.pdf"},
        },
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{B64}"},
        },
        {"type": "file", "file": {"filename": "a.pdf", "file_data": B64}},
    ],
    ids=["v1", "v1-extras", "openai-data-url", "openai-raw-base64"],
)
def test_files_in_every_form(block: dict[str, Any]) -> None:
    attachment = only([block])
    assert (attachment.kind, attachment.name, attachment.mime_type) == (
        "file",
        "a.pdf",
        "application/pdf",
    )
    assert attachment.data == DATA


def test_text_plain_block_and_url_images() -> None:
    text = only([{"type": "text-plain", "text": "hello", "mime_type": "text/markdown"}])
    assert (text.data, text.mime_type, text.name) == (b"hello", "text/markdown", "upload.md")
    url = "https://example.com/img/cat.jpg?size=2"
    image = only([{"type": "image", "url": url}])
    assert (image.url, image.data, image.name, image.mime_type) == (
        url,
        None,
        "cat.jpg",
        "image/jpeg",
    )
    assert only([{"type": "image_url", "image_url": {"url": url}}]).url == url


def test_text_stays_and_order_is_kept() -> None:
    content = [
        "a",
        {"type": "text", "text": "b"},
        {"type": "file", "base64": B64, "mime_type": "text/csv"},
        {"type": "image", "base64": B64, "mime_type": "image/gif"},
    ]
    rest, found = split_content(content)
    assert rest == ["a", {"type": "text", "text": "b"}]
    assert [a.name for a in found] == ["upload.csv", "image.gif"]
    assert split_content("plain") == (["plain"], [])


def test_a_file_url_reads_the_local_file(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(DATA)
    attachment = only([{"type": "file", "url": path.as_uri()}])
    assert (attachment.name, attachment.mime_type, attachment.data) == (
        "report.pdf",
        "application/pdf",
        DATA,
    )
    assert read_path(path).sha256 == hashlib.sha256(DATA).hexdigest()
    block = path_block(path)
    assert block == {
        "type": "file",
        "base64": B64,
        "mime_type": "application/pdf",
        "filename": "report.pdf",
    }


@pytest.mark.parametrize(
    ("block", "error", "match"),
    [
        (
            {"type": "audio", "base64": B64, "mime_type": "audio/wav"},
            HailuoUnsupportedContentError,
            "'audio'",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": B64}},
            HailuoUnsupportedContentError,
            "'input_audio'",
        ),
        ({"type": "video", "url": "https://x/v.mp4"}, HailuoUnsupportedContentError, "'video'"),
        ({"type": "image", "file_id": "file-123"}, HailuoUnsupportedContentError, "file id"),
        (
            {"type": "file", "file": {"file_id": "file-1"}},
            HailuoUnsupportedContentError,
            "OpenAI file id",
        ),
        (
            {"type": "file", "url": "https://x/a.pdf"},
            HailuoUnsupportedContentError,
            "uploaded bytes",
        ),
        ({"type": "image", "base64": "not base64!"}, HailuoAttachmentError, "not valid base64"),
        ({"type": "image"}, HailuoAttachmentError, "holds no data"),
        ({"type": "image", "url": "ftp://x/y.png"}, HailuoAttachmentError, "'ftp'"),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64"}},
            HailuoAttachmentError,
            "data: URL",
        ),
        (
            {"type": "file", "url": "file://other-host/etc/passwd"},
            HailuoAttachmentError,
            "another host",
        ),
    ],
)
def test_refusals(block: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        split_content([block])


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(HailuoAttachmentError, match="Cannot read the attachment"):
        read_path(tmp_path / "missing.bin")
    with pytest.raises(HailuoAttachmentError, match="not a regular file"):
        read_path(tmp_path)


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    with pytest.raises(HailuoAttachmentError, match="11 bytes, over the attachment limit of 10"):
        read_path(big, max_bytes=10)
    with pytest.raises(HailuoAttachmentError, match="max_attachment_bytes"):
        split_content([{"type": "file", "base64": B64, "mime_type": "text/plain"}], max_bytes=3)
    assert only([{"type": "file", "base64": B64, "mime_type": "text/plain"}], max_bytes=len(DATA))


def test_an_attachment_holds_data_or_a_url() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Attachment("image", "a.png", "image/png")
    with pytest.raises(ValueError, match="exactly one"):
        Attachment("image", "a.png", "image/png", data=b"1", url="https://x/a.png")


def test_repr_never_shows_the_bytes() -> None:
    attachment = Attachment("file", "a.bin", "application/octet-stream", data=b"secret-bytes")
    assert "secret" not in repr(attachment)
    assert "size=12" in repr(attachment)


# --------------------------------------------------------------------------- messages


def test_detach_media_takes_files_from_user_and_tool_messages_only() -> None:
    image = {"type": "image", "base64": B64, "mime_type": "image/png"}
    messages = [
        SystemMessage("Be brief."),
        HumanMessage(content=[{"type": "text", "text": "Look"}, image]),
        AIMessage("Sure."),
        ToolMessage(content=[image], tool_call_id="1"),
    ]
    stripped, media = detach_media(messages)
    assert [len(files) for files in media] == [0, 1, 0, 1]
    assert stripped[1].content == [{"type": "text", "text": "Look"}]
    assert stripped[3].content == []
    assert stripped[0] is messages[0]
    assert messages[1].content[1] == image  # the caller's messages are not changed


def test_a_file_only_message_is_something_to_send() -> None:
    image = {"type": "image", "base64": B64, "mime_type": "image/png"}
    stripped, media = detach_media([HumanMessage(content=[image])])
    dicts = to_message_dicts(stripped, media=media)
    assert dicts[0]["content"] == ""
    assert [a.data for a in dicts[0]["attachments"]] == [DATA]
    call = RenderedCall(stripped, dicts, {})
    request = plan(call, tools=TurnTools.from_kwargs({}), account="acc", protocol="agent")
    assert request.messages == dicts


def test_history_hash_notices_a_changed_file_only_when_files_are_there() -> None:
    plain: list[MessageDict] = [{"role": "user", "content": "Hi"}]
    with_file = with_attachments(plain, [[Attachment("file", "a", "text/plain", data=b"1")]])
    other_file = with_attachments(plain, [[Attachment("file", "a", "text/plain", data=b"2")]])
    assert history_hash(plain) != history_hash(with_file) != history_hash(other_file)
    assert history_hash(plain) == history_hash([{"role": "user", "content": "Hi"}])


def test_carry_attachments_puts_folded_files_on_the_last_user_message() -> None:
    first = Attachment("file", "a", "text/plain", data=b"1")
    second = Attachment("image", "b", "image/png", data=b"2")
    sources: list[MessageDict] = [
        {"role": "user", "content": "q", "attachments": [first]},
        {"role": "assistant", "content": "calling"},
        {"role": "user", "content": "<tool_result/>", "attachments": [second]},
    ]
    folded = carry_attachments([{"role": "user", "content": "all in one"}], sources)
    assert folded == [{"role": "user", "content": "all in one", "attachments": [first, second]}]
    untouched: list[MessageDict] = [{"role": "user", "content": "x"}]
    assert carry_attachments(untouched, untouched) == untouched
