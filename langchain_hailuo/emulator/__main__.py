"""``python -m langchain_hailuo.emulator``: run the emulator in the foreground."""

from __future__ import annotations

import argparse

from langchain_hailuo.emulator.app import run_forever


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run until Ctrl+C.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m langchain_hailuo.emulator", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port of the v4 origin (0: a free one)")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.05, help="seconds between stream frames"
    )
    parser.add_argument(
        "--first-byte-delay",
        type=float,
        default=0.0,
        help="seconds before an Agent answer's first byte (production: about 0.4)",
    )
    parser.add_argument(
        "--redirect-status", type=int, default=301, help="status of the redirecting origins"
    )
    args = parser.parse_args(argv)
    run_forever(
        args.host,
        args.port,
        chunk_delay=args.chunk_delay,
        first_byte_delay=args.first_byte_delay,
        redirect_status=args.redirect_status,
    )


if __name__ == "__main__":
    main()
