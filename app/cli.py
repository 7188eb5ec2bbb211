"""The ``exhaust`` command line. Errors print ``error [CODE]: message`` and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.errors import ExhaustError
from app.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exhaust", description="Exhaust dataset service")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a worker (stream processors + HTTP API)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error"])
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        if args.command == "worker":
            from app.service import run_worker

            run_worker(settings, loglevel=args.loglevel)
    except ExhaustError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
