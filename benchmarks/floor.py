"""The raw aiohttp floor of both protocols: the least code that gets an answer's deltas.

Section 9's targets are ratios to these clients. Each keeps one ``aiohttp.ClientSession``,
signs its requests with the package's pure signing helpers (the emulator checks signatures,
as the service does), POSTs, and reads the body with ``iter_any`` and a line split of its
own (a v4 snapshot line outgrows aiohttp's ``readline`` limit), decoding each ``data:`` line
with ``json.loads``. No retries, no typed errors, no timeouts, no LangChain: what any client
must do at least.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from langchain_hailuo import AuthResult
from langchain_hailuo.agent.client import AgentClient, AgentSettings, ModelChoice, parse_session_id
from langchain_hailuo.agent.signing import dumps_body
from langchain_hailuo.chat_models import DEFAULT_MODEL
from langchain_hailuo.v4.client import V4Client, build_form

_AGENT_CHUNK = 6


async def lines_of(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body's ``\\n``-separated lines, in linear time whatever their length."""
    buffer = bytearray()
    async for chunk in resp.content.iter_any():
        scan = len(buffer)
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", scan)) >= 0:
            yield bytes(buffer[start:end])
            start = scan = end + 1
        del buffer[:start]
    if buffer:
        yield bytes(buffer)


def v4_deltas() -> Callable[[bytes], str | None]:
    """A line -> new-text function for one v4 answer (snapshots are cumulative)."""
    emitted = 0

    def delta(line: bytes) -> str | None:
        nonlocal emitted
        if not line.startswith(b"data:"):
            return None
        result = json.loads(line[5:])["data"].get("messageResult")
        if not result or len(result["content"]) <= emitted:
            return None
        text = result["content"][emitted:]
        emitted = len(result["content"])
        return text

    return delta


class V4Floor:
    """One v4 chat call per answer: the signed multipart POST, the snapshots sliced."""

    def __init__(self, url: str, auth: AuthResult) -> None:
        """Aim at the emulator's ``url`` with the account ``auth``."""
        self._url, self._auth, self._client = url, auth, V4Client()
        self._session: aiohttp.ClientSession | None = None

    async def answer(self, prompt: str) -> int:
        """Stream one answer to ``prompt``; the number of text deltas."""
        self._session = self._session or aiohttp.ClientSession()
        form = build_form(msg_content=prompt)
        url = self._client.chat_url(self._auth, self._url)
        data = aiohttp.FormData(default_to_multipart=True)
        for name, value in form.items():
            data.add_field(name, value)
        headers = self._client.headers_for(self._auth, url, form)
        count, delta = 0, v4_deltas()
        async with self._session.post(url, data=data, headers=headers) as resp:
            resp.raise_for_status()
            async for line in lines_of(resp):
                count += delta(line) is not None
        return count

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()


class AgentFloor:
    """One Agent turn per answer: create a session, POST the message, read type-6 chunks.

    The account's boot (``user/info``, ``config``, ``agent``) runs once, as the provider's
    does, through :class:`AgentClient` (not timed after the first answer).
    """

    def __init__(self, kwargs: dict[str, Any]) -> None:
        """Aim at the emulator from its ``model_kwargs(protocol="agent")``."""
        self._settings = AgentSettings(base_url=kwargs["base_url"], stream_url=kwargs["stream_url"])
        self._client = AgentClient(settings=self._settings)
        self._auth = AuthResult(
            token=kwargs["token"], uuid=kwargs["uuid"], device_id=kwargs["device_id"]
        )
        self._booted = False
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, origin: str, path: str, payload: Any, *, stream: bool) -> Any:
        """A signed JSON POST (the response, to be used as a context manager)."""
        assert self._session is not None
        body = dumps_body(payload)
        url = self._client.build_url(self._auth, origin, path, self._client.next_unix())
        headers = self._client.headers_for(self._auth, url, body, stream=stream)
        return self._session.post(url, data=body.encode("utf-8"), headers=headers)

    async def answer(self, prompt: str) -> int:
        """Stream one answer to ``prompt`` in a new session; the number of text deltas."""
        if not self._booted:
            self._auth = await self._client.bootstrap(self._auth)
            self._booted = True
        self._session = self._session or aiohttp.ClientSession()
        settings = self._settings
        model = ModelChoice(DEFAULT_MODEL).payload(settings.provider_id)
        path = settings.prefixed(settings.session_path.format(agent_id=self._auth.agent_id))
        async with await self._post(
            settings.control_origin, path, {"model": model}, stream=False
        ) as resp:
            resp.raise_for_status()
            session_id = parse_session_id(await resp.json(content_type=None))
        path = settings.prefixed(settings.message_path.format(session_id=session_id))
        message = {
            "content": prompt,
            "model": model,
            "turn_id": str(uuid.uuid4()),
            "worktreeMode": False,
        }
        parts: list[str] = []
        emitted = 0
        async with await self._post(settings.stream_origin, path, message, stream=True) as resp:
            resp.raise_for_status()
            async for line in lines_of(resp):
                if not line.startswith(b"data:"):
                    continue
                frame = json.loads(line[5:])
                if frame.get("type") != _AGENT_CHUNK:
                    continue
                text = frame["agent_message_chunk"]["msg_content"]
                if not text or (len(text) == emitted and text == "".join(parts)):
                    continue  # the whole answer is re-sent as a last chunk: dropped
                parts.append(text)
                emitted += len(text)
        return len(parts)

    async def aclose(self) -> None:
        """Close both sessions."""
        if self._session is not None:
            await self._session.close()
        await self._client.aclose()
