"""gunicorn settings `modelgate serve` passes with -c: flush the request log when a worker stops."""


def worker_exit(server, worker) -> None:
    # A normal shutdown (SIGTERM) lets each worker finish its requests; write what they queued before it exits.
    from gateway import accounting

    accounting.writer.stop()
