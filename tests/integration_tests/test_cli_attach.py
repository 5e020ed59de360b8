"""``hailuo chat --attach PATH``: files sent with the first message, as a user runs it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration_tests._media import png_bytes
from tests.integration_tests._subprocess import (
    env,
    hailuo,
    one_error_line,
)

__all__ = ["env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(60)


def test_chat_attaches_files_to_the_first_message(env: dict[str, str], tmp_path: Path) -> None:
    picture = tmp_path / "red.png"
    picture.write_bytes(png_bytes(6, 6))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"remember the milk\n")
    result = hailuo(
        "chat",
        "--emulator",
        "--attach",
        str(picture),
        "--attach",
        str(notes),
        env=env,
        stdin="What are these?\nAnd now?\n",
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()  # standard output holds the answers only
    for path in (picture, notes):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:12]
        assert f"{path.name} ({len(data)} bytes, sha256 {digest})" in first
    assert "Attachments" not in second  # only the first message carries them
    assert "error" not in result.stderr


def test_chat_with_an_unreadable_attachment_fails_with_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pdf"
    result = hailuo("chat", "--emulator", "--attach", str(missing), env=env, stdin="Hi\n")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "Cannot read the attachment" in line
    assert "missing.pdf" in line
    assert result.stdout == ""  # nothing was sent
    assert "hailuo> " not in result.stderr
