"""An emulator in a process of its own, for the benchmarks that run clients in subprocesses.

Prints one JSON line (its origin and the accounts' credentials) and serves until its
standard input closes. The v4 ``unix`` freshness and reuse check is off
(``unix_window=None``): gpt4free's provider sends the same ``unix`` on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from langchain_hailuo.emulator import Emulator, EmulatorAccount


async def serve(
    accounts: int, chunk_size: int, first_byte_delay: float, chunk_delay: float = 0.0
) -> None:
    """Serve until standard input closes."""
    users = [EmulatorAccount(name=f"user{i}") for i in range(accounts)]
    async with Emulator(
        accounts=users, chunk_size=chunk_size, chunk_delay=chunk_delay, unix_window=None
    ) as emulator:
        if first_byte_delay > 0:
            emulator.fault("slow_first_byte", times=-1, delay=first_byte_delay)
        credentials = [{"token": u.token, "uuid": u.uuid, "device_id": u.device_id} for u in users]
        agent = emulator.model_kwargs(protocol="agent")
        print(
            json.dumps({"url": emulator.url, "accounts": credentials, "agent": agent}), flush=True
        )
        await asyncio.to_thread(sys.stdin.read)


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=8, help="UTF-8 bytes per snapshot")
    parser.add_argument("--first-byte-delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between frames")
    args = parser.parse_args()
    asyncio.run(serve(args.accounts, args.chunk_size, args.first_byte_delay, args.chunk_delay))


if __name__ == "__main__":
    main()
