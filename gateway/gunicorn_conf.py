"""gunicorn settings `modelgate serve` passes with -c: when a worker stops, send its queued counter updates and
flush its request log."""


def worker_exit(server, worker) -> None:
    # A normal shutdown (SIGTERM) lets each worker finish its requests; write what they queued before it exits.
    from gateway import accounting, counters

    counters.sender.stop()
    accounting.writer.stop()
