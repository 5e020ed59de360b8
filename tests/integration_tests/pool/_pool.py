"""What the pool tests share: emulator accounts, a pooled model, conversations run in turns."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import SecretStr

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.emulator.core import EmulatorAccount, make_token
from langchain_hailuo.pool import AccountPool
from langchain_hailuo.pool.redis_backend import SHARE_GRACE, RedisBackend
from langchain_hailuo.types import AuthResult
from tests.integration_tests._waiting import await_until

ACCOUNTS = 6


def pool_accounts(count: int = ACCOUNTS) -> list[EmulatorAccount]:
    """``count`` emulator accounts named ``p0``, ``p1``..."""
    return [EmulatorAccount(name=f"p{i}") for i in range(count)]


def auths_of(emu: Emulator, names: list[str] | None = None) -> list[AuthResult]:
    """The emulator's accounts as logins (``names``: only these, in this order)."""
    out = []
    for name in names or list(emu.accounts):
        kwargs = emu.model_kwargs(account=name)
        out.append(
            AuthResult(token=kwargs["token"], uuid=kwargs["uuid"], device_id=kwargs["device_id"])
        )
    return out


def pool_kwargs(emu: Emulator) -> dict[str, Any]:
    """ChatHailuo settings for the emulator, without the one-account credentials."""
    kwargs = emu.model_kwargs(protocol="agent")
    for key in ("token", "uuid", "device_id"):
        kwargs.pop(key)
    return kwargs


def pool_model(emu: Emulator, **kwargs: Any) -> ChatHailuo:
    """A ChatHailuo over every emulator account (``kwargs`` override its settings)."""
    return ChatHailuo(**{**pool_kwargs(emu), "accounts": auths_of(emu), **kwargs})


def fingerprints(emu: Emulator) -> dict[str, str]:
    """Account fingerprint -> emulator account name."""
    return {
        a.account_fingerprint: name for a, name in zip(auths_of(emu), emu.accounts, strict=True)
    }


@dataclass
class Answer:
    """One turn's outcome: the chat and account it went to, or the error it raised."""

    chat_id: str | None = None
    account: str | None = None
    content: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON for a worker's reply."""
        return self.__dict__.copy()


class Conversations:
    """Conversations that advance one turn at a time, all turns of a round in one ``abatch``."""

    def __init__(self, model: ChatHailuo) -> None:
        """Hold histories by conversation id."""
        self.model = model
        self.histories: dict[str, list[BaseMessage]] = {}

    async def turn(self, ids: list[str], text: str) -> dict[str, Answer]:
        """Send ``text`` (with the id) as the next user turn of each conversation."""
        for cid in ids:
            self.histories.setdefault(cid, []).append(HumanMessage(f"{text} ({cid})"))
        results = await self.model.abatch(
            [self.histories[cid] for cid in ids], return_exceptions=True
        )
        out: dict[str, Answer] = {}
        for cid, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                self.histories[cid].pop()
                out[cid] = Answer(error=f"{type(result).__name__}: {result}")
                continue
            assert isinstance(result, AIMessage)
            self.histories[cid].append(result)
            meta = result.response_metadata
            out[cid] = Answer(meta.get("chat_id"), meta.get("account"), str(result.content))
        return out


def answer_of(data: dict[str, Any]) -> Answer:
    """An :class:`Answer` from a worker's JSON."""
    return Answer(**data)


def dumps(data: Any) -> str:
    """One JSON line."""
    return json.dumps(data, separators=(",", ":"))


def process_pool(
    url: str, *users: str, share_grace: float = SHARE_GRACE, **kwargs: Any
) -> AccountPool:
    """A Redis pool of tokens for ``users``, with a backend of its own: another process's."""
    tokens = [
        make_token(user_id=u, device_id="3" * 18, name=u, expires_at=time.time() + 3600)
        for u in users
    ]
    pool = AccountPool([SecretStr(t) for t in tokens], pool_url=url, **kwargs)
    pool.backend = RedisBackend(url, share_grace=share_grace)
    return pool


def redis_of(pool: AccountPool) -> RedisBackend:
    """The pool's Redis backend."""
    backend = pool.backend
    assert isinstance(backend, RedisBackend)
    return backend


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Wait (yielding to the loop) until ``condition`` holds; fail after ``seconds``."""
    await await_until(condition, "the pool state the test waits for", seconds)
