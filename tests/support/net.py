"""Loopback helpers: a free TCP port, a /metrics scrape, and an HTTP server over a folder."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The stack's own picker: below the ephemeral range, where no outgoing connection can take the port
# between the pick and the server's bind (see procs.free_block).
from ffrtmp_stack.procs import free_port

__all__ = ["free_port", "scrape_metrics", "serve_folder"]


def scrape_metrics(port: int) -> str | None:
    """The text of a loopback /metrics endpoint, or None while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            return resp.read().decode()
    except OSError:
        return None


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A real HTTP server on loopback over `folder` (a path not in it is a 404); yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
