"""Run an emulator in its own process for the cross-client benchmarks.

Prints one JSON line (origin and accounts) and serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from langchain_hailuo.emulator import Emulator, EmulatorAccount


async def _serve(args: argparse.Namespace) -> None:
    accounts = [EmulatorAccount(name=f"user{i}") for i in range(args.accounts)]
    emulator = Emulator(
        accounts=accounts, chunk_size=args.chunk_size, unix_window=None, chunk_delay=0.0
    )
    async with emulator:
        if args.first_byte_delay:
            emulator.fault("slow_first_byte", times=-1, delay=args.first_byte_delay)
        info = {
            "url": emulator.url,
            "accounts": [
                {"token": a.token, "uuid": a.uuid, "device_id": a.device_id} for a in accounts
            ],
        }
        print(json.dumps(info), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
