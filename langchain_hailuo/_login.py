"""Logging in with a token copied from a browser: the bootstrap that makes it usable.

:func:`token_login` sits above both the credentials (:mod:`langchain_hailuo.auth`, which
stores and renews them and knows no protocol client) and the protocol clients it asks to
register a device (v4) or learn the account (Agent). The browser login's settings live in
:mod:`langchain_hailuo._config`, the browser login itself in :mod:`langchain_hailuo.auth`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from langchain_hailuo._routing import DEFAULT_BASE_URL, resolve_protocol
from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.auth import AuthManager, token_text
from langchain_hailuo.errors import HailuoConfigurationError, HailuoTokenExpiredError
from langchain_hailuo.types import AuthResult
from langchain_hailuo.v4.client import V4Client

__all__ = ["token_login"]


async def token_login(
    token: str | SecretStr,
    *,
    base_url: str = DEFAULT_BASE_URL,
    protocol: str = "auto",
    stream_url: str | None = None,
    auth_file: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> AuthResult:
    """Log in with a token copied from a browser (no browser here): bootstrap and save."""
    # The login for servers and containers (``hailuo login --token``). The device pair is made up
    # once (or, on v4, registered) and kept; on the Agent protocol the identity is learnt over HTTP
    # as the web app does (``/v1/api/user/info`` -> ``realUserID``, ``/config`` -> models, the agent
    # list -> agent id), which also proves the token works. The result is saved to the auth file
    # (atomically, 0600).
    raw = token_text(token)
    if raw is None:
        raise HailuoConfigurationError(
            "No token was given: paste the value of localStorage `_token` from a browser "
            "where you are logged in."
        )
    chosen = resolve_protocol(base_url, protocol)
    auth = AuthResult(
        token=SecretStr(raw),
        protocol=chosen,
        api_origin=base_url.rstrip("/"),
        stream_origin=stream_url.rstrip("/") if stream_url else None,
    )
    if auth.is_expired(skew=0):
        raise HailuoTokenExpiredError(
            f"The token ({auth.account_fingerprint}) has already expired; log in to the site "
            "in a browser and copy a fresh `_token`. Then run `hailuo login --token` again."
        )
    manager = AuthManager(auth_file=auth_file, base_url=base_url, env=env)
    if chosen == "agent":
        client = AgentClient(
            AgentSettings(base_url=auth.api_origin or base_url, stream_url=stream_url)
        )
        try:
            auth = await manager.device_for(auth, "agent")
            auth = await client.bootstrap(auth)
        finally:
            await client.aclose()
    else:
        v4 = V4Client()
        register = functools.partial(v4.register_device, base_url=auth.api_origin or base_url)
        try:
            auth = await manager.device_for(auth, "v4", register=register)
        finally:
            await v4.aclose()
    await asyncio.to_thread(manager.store.save, auth)
    return auth
