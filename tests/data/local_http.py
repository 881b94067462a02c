"""A local HTTP server for the download tests (tests/data/test_download.py, test_datasets.py,
test_missing_message.py): the machine has no network, so mirrors are served from 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer


@contextlib.contextmanager
def local_server(handler, routes=None):
    """A ``ThreadingHTTPServer`` on a free local port running ``handler`` in a thread, with
    ``routes`` (the handler's table, ``{}`` by default), an empty ``requests`` log and its base
    ``url``; shut down and joined on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.routes = {} if routes is None else routes
    httpd.requests = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def refused_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
