"""`python -m clickstream.stack.chserver --path DIR --port P`: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from clickstream.stack.chserver.protocol import ClickHouseHTTPServer, Engine


def main(argv: list[str] | None = None) -> int:
    """Open the data directory, listen, and serve until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m clickstream.stack.chserver")
    parser.add_argument("--path", required=True, help="the data directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8123, help="the HTTP port")
    args = parser.parse_args(argv)
    try:
        server = ClickHouseHTTPServer((args.host, args.port), None)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        server.engine = Engine(args.path)
    except Exception as exc:  # noqa: BLE001  (chdb: directory locked by another process, ...)
        server.server_close()
        print(f"error: cannot open {args.path}: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.log(
        f"chdb {server.engine.version} serving {args.path} on http://{args.host}:{args.port}"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.engine.close()
    server.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
