"""`python -m sandbox --host 127.0.0.1 --port 8765 [--faults FILE] [--state FILE] [--seed N] [--realism friendly]`
(the same as `pipeline sandbox serve`)."""

from __future__ import annotations

import argparse

from sandbox.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Serve the local stand-in for x.com."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--faults", default=None, help="JSON file: {fault_name: {p: probability, ...}, seed?: int}"
    )
    parser.add_argument(
        "--state", default=None, help="SQLite file to keep state across restarts (default: memory)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--realism",
        choices=("realistic", "friendly"),
        default="realistic",
        help="realistic (default): pages like x.com's; friendly: plain server-rendered pages for unit tests",
    )
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        faults_file=args.faults,
        state_file=args.state,
        seed=args.seed,
        realism=args.realism,
    )


if __name__ == "__main__":
    main()
