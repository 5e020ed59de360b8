"""Small valid media files built in code; an offline stand-in for langchain-tests' downloads."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import httpx

LANGCHAIN_TESTS_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/"
    "4d11d08b6b0e210bd456943f7a22febbd168b543/src/images/agentic-rag-output.png"
)
LANGCHAIN_TESTS_PDF_URL = "https://www.w3.org/WAI/ER/tests/xhtml/testfiles/resources/pdf/dummy.pdf"


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG of red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(text: str = "Dummy PDF file") -> bytes:
    """A valid one-page PDF showing ``text`` (with a correct cross-reference table)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def offline_get(files: Mapping[str, bytes]) -> Callable[..., httpx.Response]:
    """An ``httpx.get`` that serves ``files`` by URL and refuses every other URL.

    langchain-tests downloads its sample image and PDF with ``httpx.get``; there is no
    internet here, so the suite gets the same kinds of files (a PNG, a PDF) from memory.
    What the tests send on is then exactly what they would send with the real downloads:
    base64 of the bytes, or the image URL itself, which the service fetches (protocol
    notes §6.2) and the emulator does not.
    """

    def get(url: str, *_args: Any, **_kwargs: Any) -> httpx.Response:
        if url not in files:
            raise httpx.ConnectError(f"offline test: no stand-in for {url}")
        return httpx.Response(200, content=files[url], request=httpx.Request("GET", url))

    return get
