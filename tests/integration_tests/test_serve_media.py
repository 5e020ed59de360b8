"""``hailuo serve``: images and files in requests, and stop sequences, with the real SDKs.

Media parts go through ``ChatHailuo``'s attachment path: the emulator's storage records
each upload (its bytes' SHA-256), and its unscripted answer names each attachment it got.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import anthropic
import openai
import pytest

from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import frames_apart, mark
from tests.integration_tests._media import pdf_bytes, png_bytes
from tests.integration_tests._serve import (
    MODEL,
    anthropic_client,
    openai_client,
    served_by,
)

pytestmark = pytest.mark.timeout(60)


served = served_by(max_body_bytes=512 * 1024)
oai = openai_client  # the shared fixture, by this module's name
claude = anthropic_client  # the shared fixture, by this module's name


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uploaded_since(emulator: Emulator, start: int) -> list[tuple[str, str]]:
    """(file name, SHA-256) of each upload the emulator's storage received since ``start``."""
    return [(u.file_name, u.sha256) for u in emulator.uploads[start:]]


def turn_attachments(emulator: Emulator, start: int) -> list[list[dict[str, Any]]]:
    """The attachment entries of each Agent turn posted since ``start``."""
    return [
        list(r.body.get("attachments") or [])
        for r in emulator.requests_to("chat")[start:]
        if r.protocol == "agent"
    ]


# --------------------------------------------------------------------------- OpenAI


def test_openai_image_and_file_parts_are_uploaded(oai: openai.OpenAI, emulator: Emulator) -> None:
    png, pdf = png_bytes(), pdf_bytes()
    start, uploads = mark(emulator), len(emulator.uploads)
    content: Any = [
        {"type": "text", "text": "What are these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(png)}"}},
        {
            "type": "file",
            "file": {
                "filename": "report.pdf",
                "file_data": f"data:application/pdf;base64,{b64(pdf)}",
            },
        },
    ]
    reply = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    assert sorted(uploaded_since(emulator, uploads)) == sorted(
        [("image.png", sha(png)), ("report.pdf", sha(pdf))]
    )
    [attachments] = turn_attachments(emulator, start)
    assert len(attachments) == 2
    assert "report.pdf" in (reply.choices[0].message.content or "")


def test_openai_continued_chat_with_an_image_sends_only_the_new_message(
    oai: openai.OpenAI, emulator: Emulator
) -> None:
    png = png_bytes(5, 5)
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(png)}"}}
    history: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "Look"}, image]},
    ]
    start, uploads = mark(emulator), len(emulator.uploads)
    first = oai.chat.completions.create(model=MODEL, messages=history)
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And now?"},
    ]
    oai.chat.completions.create(model=MODEL, messages=history)
    turns = emulator.requests_to("chat")[start:]
    assert len(turns) == 2
    assert turns[0].path == turns[1].path  # one emulator chat
    assert turns[1].body["content"] == "And now?"
    assert len(emulator.uploads) == uploads + 1  # the image went up once


def test_openai_refuses_a_file_url_and_an_audio_part_with_400(
    oai: openai.OpenAI, emulator: Emulator
) -> None:
    start = mark(emulator)
    local: Any = [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": local}])
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error"
    assert "'file' URL" in body["message"]
    assert body["param"] == "messages[0].content[0]"
    audio: Any = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": audio}])
    assert "'input_audio' part" in str(refused.value.body)
    file_id: Any = [{"type": "file", "file": {"file_id": "file-abc"}}]
    with pytest.raises(openai.BadRequestError) as by_id:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": file_id}])
    assert "file ids" in str(by_id.value.body)
    assert mark(emulator) == start  # nothing was sent


def test_openai_image_over_the_request_limit_gets_413(oai: openai.OpenAI) -> None:
    big = b64(b"\x00" * (600 * 1024))
    content: Any = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{big}"}}]
    with pytest.raises(openai.APIStatusError) as caught:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "request_too_large"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_image_and_document_blocks_are_uploaded(
    claude: anthropic.Anthropic, emulator: Emulator
) -> None:
    png, pdf = png_bytes(4, 4), pdf_bytes("Other")
    start, uploads = mark(emulator), len(emulator.uploads)
    content: Any = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": b64(png)},
        },
        {
            "type": "document",
            "title": "paper.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": b64(pdf)},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
        },
        {"type": "text", "text": "Summarise these."},
    ]
    reply = claude.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": content}]
    )
    got = uploaded_since(emulator, uploads)
    assert ("paper.pdf", sha(pdf)) in got
    assert ("image.png", sha(png)) in got
    assert (next(n for n, _ in got if n.endswith(".txt")), sha(b"notes")) in got
    [attachments] = turn_attachments(emulator, start)
    assert len(attachments) == 3
    assert reply.stop_reason == "end_turn"
    assert reply.stop_sequence is None


def test_anthropic_refuses_a_document_by_url_with_400(
    claude: anthropic.Anthropic, emulator: Emulator
) -> None:
    start = mark(emulator)
    content: Any = [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": content}]
        )
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'url' source" in body["error"]["message"]
    assert mark(emulator) == start


# --------------------------------------------------------------------------- stop sequences


def test_anthropic_stop_sequence_is_reported(
    claude: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.script(ScriptedReply("Counting: one, two, STOP three"))
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=50,
        stop_sequences=["NEVER", "STOP"],
        messages=[{"role": "user", "content": "Count"}],
    )
    assert reply.stop_reason == "stop_sequence"
    assert reply.stop_sequence == "STOP"
    assert [b.text for b in reply.content if b.type == "text"] == ["Counting: one, two, "]


def test_anthropic_streamed_stop_sequence_is_reported(
    claude: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.script(ScriptedReply("alpha beta END gamma"))
    with (
        frames_apart(emulator, 0.01),
        claude.messages.stream(
            model=MODEL,
            max_tokens=50,
            stop_sequences=["END"],
            messages=[{"role": "user", "content": "Go"}],
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == "END"
    assert "gamma" not in "".join(b.text for b in final.content if b.type == "text")


def test_anthropic_answer_without_its_stop_sequence_ends_its_turn(
    claude: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.script(ScriptedReply("nothing to cut"))
    reply = claude.messages.create(
        model=MODEL,
        max_tokens=50,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "Say it"}],
    )
    assert reply.stop_reason == "end_turn"
    assert reply.stop_sequence is None


def test_openai_stop_ends_with_finish_reason_stop(oai: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script(ScriptedReply("one two three"))
    reply = oai.chat.completions.create(
        model=MODEL, stop=["two"], messages=[{"role": "user", "content": "Count"}]
    )
    assert reply.choices[0].message.content == "one "
    assert reply.choices[0].finish_reason == "stop"
    emulator.script(ScriptedReply("one two three"))
    stream = oai.chat.completions.create(
        model=MODEL, stop="three", stream=True, messages=[{"role": "user", "content": "Count"}]
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
