"""Writing to a socket: one system call where one does."""

from __future__ import annotations


def send_all(sock, data: bytes | bytearray | memoryview) -> None:
    """`sock.sendall(data)`, in one send when the socket has room for it all.

    gevent's `sendall` reads the socket's send-buffer size (a getsockopt system call) and the clock before every
    write, to cut large data into pieces: a relayed request paid for that at each of its two to four writes. A
    send takes everything that fits in the socket's buffer, as a request's head and body or a stream's events do;
    whatever it leaves (a full buffer, a large body) goes through `sendall` as before, timeouts included."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
