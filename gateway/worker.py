"""The gunicorn worker `modelgate serve` runs by default: gevent, with gevent's own HTTP server.

gunicorn's gevent workers come in two kinds (docs/performance.md measures both): `gevent` parses requests and
writes responses with gunicorn's own Python HTTP code, `gevent_pywsgi` with gevent's `pywsgi`, which does the same
work in fewer steps (9-11 % fewer instructions for a whole relayed request). This is the second, with what gunicorn's
own kind does and `gevent_pywsgi` leaves out:

- a keep-alive timeout: a connection that sends nothing for `--keep-alive` seconds is closed (gevent's server
  would keep it, and the greenlet serving it, forever), as is one whose client stops reading for that long;
- the request counter behind `--max-requests` (a worker restarts after that many requests, when set).

and what neither does:

- an even split of client connections between the workers. Every worker waits on the one listening socket, and
  when connections arrive together the first worker awake takes up to 100 at once (gevent's server; gunicorn's own
  takes one per wake-up, which did not even out a burst either: docs/performance.md). A connection then stays with
  its worker for as long as the client keeps it open: 1,000 streams split about 425 / 575, or a burst of 400 split
  0 / 400, leave one worker with the work of two. Here a worker holding more than its share (the workers' mean plus
  10 %, at least 2) leaves new connections to the others for as long as they go on accepting (`_Server`), and
  takes them itself when no other worker has within 25 ms.

Everything else comes from gunicorn: the arbiter, signals, graceful shutdown, the worker-connections pool.
"""

from __future__ import annotations

import multiprocessing
import socket
import time

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from gateway.sockets import send_all


class _Handler(PyWSGIHandler):
    """One client connection: its requests one after the other, each bounded in idle time."""

    worker: GeventWorker

    def __init__(self, sock: socket.socket, address, server, rfile=None):
        # Every wait on the client's socket (for the next request, a body, room to write) ends after the
        # keep-alive time; pywsgi then closes the connection quietly.
        sock.settimeout(self.worker.cfg.keepalive or None)
        super().__init__(sock, address, server, rfile)

    def MessageClass(self, *args):  # pywsgi's name for it
        """The request's headers, refused (400, connection closed) when its body's length is ambiguous: two
        Content-Length headers, or one beside Transfer-Encoding (RFC 9112 6.3). pywsgi would take the first
        length, or the chunked framing, where a proxy in front may have taken another: the rest of the body would
        then be read as a request of its own. gunicorn's own parser refuses both."""
        headers = super().MessageClass(*args)
        lengths = headers.get_all("Content-Length")
        if lengths and (len(lengths) > 1 or "Transfer-Encoding" in headers):
            raise ValueError("ambiguous body length: several Content-Length headers, or one with Transfer-Encoding")
        return headers

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


class _Shares:
    """How many client connections each worker holds, in memory the workers share: the arbiter makes it when it
    loads this module, before it forks them. A worker takes a slot when it starts and beats in it every second (with
    gunicorn's own heartbeat); a slot without a beat for STALE seconds is free again, whatever happened to its
    worker. A worker writes only its own slot, so no lock is held but for taking one."""

    SLOTS = 32  # workers beyond this many on one arbiter take any connection, as before
    STALE = 10.0  # seconds
    SLACK = 0.1  # a worker may hold its share plus this much of it
    MIN_SLACK = 2

    def __init__(self) -> None:
        self._lock = multiprocessing.Lock()
        self._open = multiprocessing.RawArray("l", self.SLOTS)  # client connections held, by slot
        self._beat = multiprocessing.RawArray("d", self.SLOTS)  # time.monotonic() of the last beat; 0: never taken
        self.slot: int | None = None

    def join(self) -> None:
        """Take a free slot for this process (in the worker, after the fork)."""
        if not self._lock.acquire(timeout=1.0):  # held by a worker that died taking a slot: go without one
            return
        try:
            now = time.monotonic()
            for slot in range(self.SLOTS):
                beat = self._beat[slot]
                if not beat or now - beat > self.STALE:
                    self._open[slot] = 0
                    self._beat[slot] = now
                    self.slot = slot
                    return
        finally:
            self._lock.release()

    def beat(self) -> None:
        if self.slot is not None:
            self._beat[self.slot] = time.monotonic()

    def opened(self) -> None:
        if self.slot is not None:
            self._open[self.slot] += 1

    def closed(self) -> None:
        if self.slot is not None:
            self._open[self.slot] -= 1

    def _live(self) -> list[int]:
        """The connections each live worker holds (this one's included)."""
        now = time.monotonic()
        beats = self._beat[:]
        return [held for held, beat in zip(self._open[:], beats, strict=True) if beat and now - beat <= self.STALE]

    def over_share(self) -> bool:
        """Whether this worker holds more client connections than the workers' mean, plus the slack."""
        if self.slot is None:
            return False
        live = self._live()
        if len(live) < 2:
            return False
        share = sum(live) / len(live)
        return self._open[self.slot] > share + max(self.MIN_SLACK, share * self.SLACK)

    def held_by_others(self) -> int:
        """The client connections the other live workers hold: it grows while they accept."""
        return sum(self._live()) - (self._open[self.slot] if self.slot is not None else 0)


_shares = _Shares()


class _Server(PyWSGIServer):
    """gunicorn's pywsgi server, counting this worker's client connections, and leaving a new one to the other
    workers while this one holds more than its share: it stops accepting for RETRY seconds at a time, for as long
    as the other workers go on accepting, and takes new connections itself once they have taken none for WAIT_UP_TO
    (a busy or stuck worker must not leave clients waiting)."""

    shares = _shares
    RETRY = 0.002
    WAIT_UP_TO = 0.025
    _waiting_since = 0.0
    _waited = 0.0
    _others = 0  # the other workers' connections at the last look

    def do_read(self):
        if self.shares.over_share():
            now = time.monotonic()
            others = self.shares.held_by_others()
            # A new wait begins when this worker was not holding back a moment ago, or when another worker has
            # accepted since the last look: only a wait in which none has counts towards WAIT_UP_TO.
            if now - self._waited > 4 * self.RETRY or others > self._others:
                self._waiting_since = now
            self._waited, self._others = now, others
            if now - self._waiting_since < self.WAIT_UP_TO:
                self.stop_accepting()
                self._timer = self.loop.timer(self.RETRY)
                self._timer.start(self._start_accepting_if_started)
                return None
        accepted = super().do_read()
        if accepted:  # counted now: a burst is accepted before the first of its connections is handled
            self.shares.opened()
        return accepted

    def do_handle(self, *args):
        try:
            super().do_handle(*args)
        except BaseException:  # not handed to a greenlet: closed already
            self.shares.closed()
            raise

    def handle(self, sock, address):
        try:
            super().handle(sock, address)
        finally:
            self.shares.closed()


class GeventWorker(GeventPyWSGIWorker):
    server_class = _Server

    def init_process(self) -> None:
        _shares.join()
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

    def notify(self) -> None:
        super().notify()
        _shares.beat()

    def count_request(self) -> None:
        self.nr += 1
        if self.alive and self.nr >= self.max_requests:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
