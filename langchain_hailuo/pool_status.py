"""``hailuo pool status``: the pool's accounts, what they are doing, and why any rests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from langchain_hailuo._config import default_accounts_dir, pool_specs_from_env
from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.agent.credits import read_credits
from langchain_hailuo.auth import prepare_credentials
from langchain_hailuo.errors import HailuoError
from langchain_hailuo.pool.backend import AccountStatus
from langchain_hailuo.pool.scheduler import AccountPool, format_time
from langchain_hailuo.pool.sources import AccountSpec, PoolAccount

__all__ = ["pool_status"]

logger = logging.getLogger(__name__)


def _specs(accounts_dir: str | None) -> Sequence[AccountSpec]:
    """The accounts to show: the folder given, else the environment, else the default folder."""
    if accounts_dir:
        return [Path(accounts_dir)]
    folder = default_accounts_dir()
    return pool_specs_from_env() or ([folder] if any(folder.glob("*.json")) else [])


def _print_table(statuses: list[AccountStatus], out: TextIO) -> None:
    """One line per account (never a token): why and until when it rests; then its credits."""
    print(f"{'account':<18} {'streams':>7} {'served':>7}  {'state':<38} last error", file=out)
    for s in statuses:
        state = "streaming" if s.streams else "ok"
        if s.cooling is not None:
            until = format_time(s.cooling_until)
            state = "auth: log in again" if s.cooling == "auth" else f"{s.cooling} until {until}"
        error = textwrap.shorten(s.last_error or "-", 60, placeholder="...")
        print(f"{s.account:<18} {s.streams:>7} {s.served:>7}  {state:<38} {error}", file=out)
    for s in statuses:
        print(f"credits  {s.account:<18} {s.credits or 'not read'}", file=out)


async def _read_credits(accounts: list[PoolAccount]) -> None:
    """Read each Agent account's plan and credits once (§7.3); a failure is only noted."""
    async with contextlib.aclosing(AgentClient()) as client:
        for account in accounts:
            try:
                auth = await account.auth()
                if auth.protocol in {None, "agent"}:
                    auth = await prepare_credentials(auth, "agent", account.manager)
                    settings = AgentSettings(base_url=auth.api_origin or AgentSettings().base_url)
                    auth = await client.bootstrap(auth, settings=settings)
                    await read_credits(client, auth, settings=settings)
            except HailuoError as exc:
                logger.info("credits of %s not read: %s", account.name, type(exc).__name__)


async def _status(accounts_dir: str | None, url: str | None, out: TextIO) -> int:
    """Print the table; 1 when there is no pool to show."""
    specs = _specs(accounts_dir)
    if not specs and url is None:
        print(
            "No pool: no accounts folder, HAILUO_TOKENS or HAILUO_ACCOUNTS_DIR. Add accounts "
            "with `hailuo login --add NAME`.",
            file=out,
        )
        return 1
    pool = AccountPool(specs, pool_url=url)
    try:
        if specs:
            await _read_credits(await pool.accounts())
        # Without accounts here: only what other processes registered in Redis.
        statuses = await (pool.astatus() if specs else pool.backend.status([]))
    finally:
        await pool.aclose()
    where = repr(pool.backend) if url else "this process only (set HAILUO_POOL_URL to share)"
    print(f"pool:     {where}\naccounts: {len(statuses)}", file=out)
    _print_table(statuses, out)
    return 0


def pool_status(accounts_dir: str | None, pool_url: str | None, out: TextIO) -> int:
    """Run ``hailuo pool status``: the folder given, else the environment's accounts."""
    return asyncio.run(_status(accounts_dir, pool_url or None, out))
