"""Start-up of the dashboard: open the store read-only, bind the socket, print the address, serve until stopped."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from colfill._lazy import require

if TYPE_CHECKING:
    from colfill.ui.queries import Reader

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    from colfill.errors import InvalidArgument, Unreachable

    if not 0 <= port <= 65535:
        raise InvalidArgument(f"--port {port} must be 0..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidArgument(f"--host {host!r} is not an address of this machine: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise Unreachable(f"cannot listen on {host}:{port}: {exc.strerror}. Hint: pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def open_reader(data_dir: Path, db: str | None) -> Reader:
    """The reader for `--db` (None: the data dir's lake), read-only whatever the kind."""
    from colfill.stores.lake import is_catalogue
    from colfill.target import resolve
    from colfill.ui.duck import DuckFileReader, LakeReader

    target = resolve(db, data_dir)
    if target.path is None:
        from colfill.ui.pg import PgReader

        return PgReader(target.url)
    if target.kind == "lake":
        return LakeReader(target.path)
    return LakeReader(target.path.parent) if is_catalogue(target.path) else DuckFileReader(target.path)


def serve(data_dir: Path, db: str | None, redis_url: str | None, host: str, port: int,
          announce: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard until SIGINT/SIGTERM (uvicorn shuts down cleanly, then the signal is re-raised)."""
    for module in ("starlette", "uvicorn"):
        require(module, "ui")
    import uvicorn

    from colfill.ui.app import allowed_hosts, create_app
    from colfill.ui.dashboard import BUNDLES, Dashboard, vendor_bundle
    from colfill.ui.live import LiveHub

    for name in BUNDLES:  # the charting bundles must be there before we say we are up
        vendor_bundle(name)
    reader = open_reader(data_dir, db)
    hub = LiveHub(redis_url) if redis_url else None
    if hub is not None and not hub.ping():
        from colfill.errors import Unreachable

        raise Unreachable(f"cannot reach Redis at {hub.describe()}. Hint: start redis-server, or leave out --redis")
    dash = Dashboard(reader, data_dir, hub)
    app = create_app(dash, allowed_hosts(host))
    sock = bind(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    say = announce or (lambda m: (sys.stdout.write(m + "\n"), sys.stdout.flush()))
    say(f"colfill ui: http://{shown}:{bound[1]}/  ({reader.describe()}"
        + (f"; live from Redis {hub.describe()}" if hub else "") + "; Ctrl-C to stop)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        reader.close()
        if hub is not None:
            hub.close()
