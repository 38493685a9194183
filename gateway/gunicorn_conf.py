"""gunicorn settings `modelgate serve` passes with -c: when a worker stops, flush its request log."""


def worker_exit(server, worker) -> None:
    # A normal shutdown (SIGTERM) lets each worker finish its requests; write the rows they queued before it exits.
    from gateway import accounting

    accounting.writer.stop()
