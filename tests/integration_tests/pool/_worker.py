"""A worker process for the Redis pool tests: one pooled ChatHailuo, driven by JSON lines.

Started as ``python -m tests.integration_tests.pool._worker``; the first stdin line is its
setup (model settings, accounts, pool URL), each further line a command:

- ``{"op": "turn", "ids": [...], "text": "..."}``: one turn of each conversation (abatch);
  replies ``{id: Answer}``.
- ``{"op": "hold"}``: start streaming a new chat in the background; replies
  ``{"account": ...}`` once its first text arrived (the test then kills this process).
- ``{"op": "exit"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.types import AuthResult
from tests.integration_tests.pool._pool import Conversations, dumps


async def _hold(model: ChatHailuo, ready: asyncio.Future[str]) -> None:
    """Stream one answer and never finish reading it."""
    async for chunk in model.astream("Hold this line, please."):
        if chunk.content and not ready.done():
            ready.set_result("")
        if chunk.response_metadata.get("account"):
            break
    await asyncio.Event().wait()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    setup: dict[str, Any] = json.loads(await reader.readline())
    accounts = [AuthResult(**a) for a in setup.pop("accounts")]
    model = ChatHailuo(**setup, accounts=accounts)
    conversations = Conversations(model)
    pool = model.pool
    assert pool is not None
    held: list[asyncio.Task[None]] = []
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "exit":
            break
        if command["op"] == "turn":
            answers = await conversations.turn(command["ids"], command["text"])
            reply: Any = {cid: a.to_json() for cid, a in answers.items()}
        elif command["op"] == "hold":
            ready: asyncio.Future[str] = loop.create_future()
            held.append(loop.create_task(_hold(model, ready)))
            await ready
            statuses = await pool.astatus()
            reply = {"busy": [s.account for s in statuses if s.streams]}
        else:
            reply = {"error": f"unknown op {command['op']!r}"}
        sys.stdout.write(dumps(reply) + "\n")
        sys.stdout.flush()
    for task in held:
        task.cancel()
    await model.aclose()


if __name__ == "__main__":
    asyncio.run(_main())
