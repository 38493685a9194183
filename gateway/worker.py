"""The gunicorn worker `modelgate serve` runs by default: gevent, with gevent's own HTTP server.

gunicorn's gevent workers come in two kinds (docs/performance.md measures both): `gevent` parses requests and
writes responses with gunicorn's own Python HTTP code, `gevent_pywsgi` with gevent's `pywsgi`, which does the same
work in fewer steps (9-11 % fewer instructions for a whole relayed request). This is the second, with what gunicorn's
own kind does and `gevent_pywsgi` leaves out:

- a keep-alive timeout: a connection that sends nothing for `--keep-alive` seconds is closed (gevent's server
  would keep it, and the greenlet serving it, forever), as is one whose client stops reading for that long;
- the request counter behind `--max-requests` (a worker restarts after that many requests, when set).

Everything else comes from gunicorn: the arbiter, signals, graceful shutdown, the worker-connections pool. (Unlike
gunicorn's own kind, gevent's server accepts up to 100 connections a wake-up; one, as gunicorn sets it for several
workers, did not even out a burst of new connections between two workers: docs/performance.md.)
"""

from __future__ import annotations

import socket

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from gateway.sockets import send_all


class _Handler(PyWSGIHandler):
    """One client connection: its requests one after the other, each bounded in idle time."""

    worker: GeventWorker

    def __init__(self, sock: socket.socket, address, server, rfile=None):
        # Every wait on the client's socket (for the next request, a body, room to write) ends after the
        # keep-alive time; pywsgi then closes the connection quietly.
        sock.settimeout(self.worker.cfg.keepalive or None)
        super().__init__(sock, address, server, rfile)

    def handle_one_request(self):
        result = super().handle_one_request()
        if result is True:
            self.worker.count_request()
        return result

    # The response's head goes out with the first part of its body, in one write: gevent's server writes them
    # apart, two system calls and two wake-ups of the client where one does (~10 % of a relayed request's own CPU
    # on loopback). A part larger than HOLD_UP_TO goes in a write of its own rather than being copied.
    HOLD_UP_TO = 64 * 1024
    _holding = False
    _held: bytearray | None = None

    def _write_with_headers(self, data):
        self._holding = len(data) <= self.HOLD_UP_TO
        try:
            super()._write_with_headers(data)
        finally:
            self._holding = False
            held, self._held = self._held, None
            if held is not None:  # the body part was empty: nothing to send it with
                self._send(held)

    def _sendall(self, data):
        if self._holding:  # the head
            self._holding = False
            self._held = data
            return
        held = self._held
        if held is not None:
            self._held = None
            held += data
            data = held
        self._send(data)

    def _send(self, data) -> None:
        """pywsgi's `_sendall` (the same bookkeeping of errors and bytes sent), through `send_all`: no getsockopt
        system call before every write."""
        try:
            send_all(self.socket, data)
        except OSError as exc:
            self.status = f"socket error: {exc}"
            if self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)

    def log_request(self) -> None:
        if self.worker.access_log:  # building the access-log record costs a request ~1 %: only when it is written
            super().log_request()


class GeventWorker(GeventPyWSGIWorker):
    def init_process(self) -> None:
        cfg = self.cfg
        self.access_log = bool(
            cfg.accesslog
            or cfg.logconfig
            or cfg.logconfig_dict
            or cfg.logconfig_json
            or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
        )  # the same test as gunicorn's Logger.access
        self.wsgi_handler = type("Handler", (_Handler,), {"worker": self})
        super().init_process()

    def count_request(self) -> None:
        self.nr += 1
        if self.alive and self.nr >= self.max_requests:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
