"""Many processes, one deployment (issue 3, item 5; docs/deployment.md is the layout this stands for).

Two `modelgate serve` servers (A and B, two gunicorn workers each, so four processes) on two ports share one
database (PostgreSQL in CI) and one counter store, and show:
- an rpm limit of N admits exactly N requests across both servers in one window under concurrent load;
- a budget is overspent by at most one in-flight request per server;
- blocking or deleting a key, or changing a team's models, on A is honoured by B within SPEC §3's 5 seconds;
- no request-log row is lost when both servers get SIGTERM, even with requests in flight;
- nginx with docs/deployment.md's configuration spreads requests over both servers, streams chunk by chunk, and
  keeps the rpm limit exact.

The counter store is Redis (REDIS_URL, else redis://127.0.0.1:6379/0). The rpm and budget proofs also run with the
counters in the database (REDIS_URL unset), the SQLite quick start's setup. Without a reachable Redis the Redis
variants are skipped and the rest runs with the counters in the database; without nginx the nginx tests are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.e2e.conftest import ROOT, E2EDatabase, GatewayProcess, free_port
from tests.e2e.support import assert_error, chat_body, poll, post_chat

pytestmark = pytest.mark.e2e

INPUT_PRICE = 0.001  # USD per token of the priced mock model
OUTPUT_PRICE = 0.002
CONFIG = """
model_list:
  - model_name: priced-mock
    litellm_params:
      model: mock/x
      mock_response: "A reply of five words."
      input_cost_per_token: {input_price}
      output_cost_per_token: {output_price}
  - model_name: fake-gpt
    litellm_params: {{model: openai/fake-gpt, api_key: sk-upstream-fake, api_base: "{base}"}}
  - model_name: slow-gpt
    litellm_params: {{model: openai/slow-gpt, api_key: sk-upstream-fake, api_base: "{base}"}}
"""

RPM = 12
STALENESS_BOUND = 5.0  # SPEC §3, the default MODELGATE_AUTH_CACHE_TTL
SLACK = 1.0
WINDOW = 60  # gateway/limits.py: fixed windows aligned to the clock
WINDOW_MARGIN = 8.0  # a burst starts only with at least this much of its window left
COUNTER_STORES = ["redis", "database"]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NGINX_DOC = ROOT / "docs" / "deployment.md"


# --- the two servers ----------------------------------------------------------------------------------------------
@dataclass
class Cluster:
    counters: str  # "redis" | "database"
    db: E2EDatabase
    a: GatewayProcess
    b: GatewayProcess
    redis_url: str
    redis_prefix: str

    @property
    def servers(self) -> list[GatewayProcess]:
        return [self.a, self.b]

    def stop(self) -> None:
        """SIGTERM to both servers at once (as `systemctl stop` on two boxes), and wait for both."""
        threads = [threading.Thread(target=server.stop) for server in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows from the shared database, read directly (not through the gateway)."""
        if self.db.kind == "postgres":
            import psycopg

            with psycopg.connect(self.db.url) as conn:
                return conn.execute(sql, params).fetchall()
        import sqlite3

        with sqlite3.connect(self.db.path) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()


def _redis_url() -> str:
    """REDIS_URL, else the local default; skip the module's Redis half when nothing answers there."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        pytest.skip(f"no Redis reachable at {url} ({exc}); CI starts one (.ci/run), or set REDIS_URL")
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        pytest.skip(f"{url} does not answer like Redis: {reply!r}")
    return url


def _start_cluster(tmp_path_factory, upstream, counters: str) -> Cluster:
    redis_url = _redis_url() if counters == "redis" else ""
    data_dir = tmp_path_factory.mktemp(f"many-{counters}")
    db = E2EDatabase(data_dir)
    config = data_dir / "config.yaml"
    config.write_text(CONFIG.format(base=upstream.url, input_price=INPUT_PRICE, output_price=OUTPUT_PRICE))
    prefix = f"mg-many-{uuid.uuid4().hex[:12]}:"  # this run's counters only, whatever Redis holds from others
    env = {
        "REDIS_URL": redis_url,  # empty: counters in the database
        "MODELGATE_REDIS_PREFIX": prefix,
        "GUNICORN_CMD_ARGS": "--access-logfile -",  # each server logs the requests it served
    }
    servers = []
    try:
        for _ in range(2):  # one after the other: the first migrates the fresh database, the second finds it done
            server = GatewayProcess(database_url=db.url, config_path=config, data_dir=data_dir, env=env, workers=2)
            servers.append(server.start())
    except BaseException:
        for server in servers:
            server.stop()
        db.drop()
        raise
    return Cluster(counters, db, servers[0], servers[1], redis_url, prefix)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory, e2e_upstream):
    cluster = _start_cluster(tmp_path_factory, e2e_upstream, "redis")
    yield cluster
    cluster.stop()
    cluster.db.drop()
    import redis

    client = redis.Redis.from_url(cluster.redis_url)  # spend counters live for months: leave none behind
    for name in list(client.scan_iter(match=cluster.redis_prefix + "*", count=1000)):
        client.delete(name)


@pytest.fixture(scope="module")
def database_cluster(tmp_path_factory, e2e_upstream):
    cluster = _start_cluster(tmp_path_factory, e2e_upstream, "database")
    yield cluster
    cluster.stop()
    cluster.db.drop()


@pytest.fixture(scope="module")
def cluster(request) -> Cluster:
    """The layout of docs/deployment.md (counters in Redis). Without a Redis, what does not depend on where the
    counters live (staleness, shutdown, nginx) still runs, with the counters in the database."""
    try:
        return request.getfixturevalue("redis_cluster")
    except pytest.skip.Exception:
        return request.getfixturevalue("database_cluster")


@pytest.fixture
def upstream(e2e_upstream):
    e2e_upstream.reset()
    yield e2e_upstream
    e2e_upstream.chunk_delay = 0.0
    e2e_upstream.slow_seconds = 3.0


def new_key(server: GatewayProcess, **body) -> str:
    response = server.admin("/key/generate", body)
    assert response.status_code == 200, response.text
    return response.json()["key"]


def new_team(server: GatewayProcess, **body) -> dict:
    response = server.admin("/team/new", body)
    assert response.status_code == 200, response.text
    return response.json()


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def spend_logs(server: GatewayProcess, key: str) -> list[dict]:
    response = server.admin("/spend/logs", method="GET", api_key=key, size=1000)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_rows(server: GatewayProcess, key: str, count: int, seconds: float = 10.0) -> list[dict]:
    """The key's request-log rows once all `count` of them are written (the writer flushes every 0.5 s)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = spend_logs(server, key)
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) == count, f"{len(rows)} request-log rows for the key, expected {count}"
            return rows
        time.sleep(0.2)


def assert_no_store_failure(cluster: Cluster) -> None:
    """Limits fail open when the counter store is down: then nothing above would prove anything."""
    for server in cluster.servers:
        assert "counter store unavailable" not in server.log(), server.log()[-3000:]


def counters_in_store(cluster: Cluster, name_like: str) -> int:
    """How many counters named like `name_like` (SQL LIKE) the cluster's store holds: proof of where they live."""
    if cluster.counters == "database":
        return cluster.query("SELECT count(*) FROM gateway_counter WHERE name LIKE %s", (name_like,))[0][0]
    import redis

    client = redis.Redis.from_url(cluster.redis_url)
    pattern = cluster.redis_prefix + name_like.replace("%", "*")
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


# --- load ---------------------------------------------------------------------------------------------------------
def wait_for_fresh_window(margin: float = WINDOW_MARGIN) -> None:
    """Start a burst early enough in a minute window that it ends in the same one."""
    left = WINDOW - time.time() % WINDOW
    if left < margin:
        time.sleep(left + 0.1)


def window_of(moment: float) -> int:
    return int(moment // WINDOW)


def rpm_burst(urls: list[str], key: str, total: int, threads: int = 16) -> list[tuple[str, requests.Response]]:
    """`total` concurrent requests spread over `urls` in turn, all within one rate-limit window."""
    wait_for_fresh_window()
    targets = [urls[i % len(urls)] for i in range(total)]
    started = time.time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        responses = list(pool.map(lambda url: post_chat(url, key, chat_body("priced-mock")), targets))
    ended = time.time()
    assert window_of(started) == window_of(ended), f"the burst took {ended - started:.1f} s and crossed a window"
    return list(zip(targets, responses, strict=True))


def assert_exactly_admitted(results: list[tuple[str, requests.Response]], limit: int) -> None:
    """Exactly `limit` requests got 200, each seeing its own count; every other one a 429 rate_limit_exceeded."""
    admitted = [(url, r) for url, r in results if r.status_code == 200]
    refused = [r for _, r in results if r.status_code != 200]
    per_server = Counter(url for url, _ in admitted)
    assert len(admitted) == limit, f"{len(admitted)} admitted (per server: {dict(per_server)}), expected {limit}"
    # The counter is atomic across every process: each admitted request saw a different count.
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for _, r in admitted)
    assert remaining == list(range(limit)), remaining
    for response in refused:
        assert_error(response, 429, "rate_limit_error", "rate_limit_exceeded")
        assert 1 <= int(response.headers["Retry-After"]) <= WINDOW, response.headers
        assert response.headers["x-ratelimit-limit-requests"] == str(limit)
        assert response.headers["x-ratelimit-remaining-requests"] == "0"


# --- a. one rpm limit across both servers -------------------------------------------------------------------------
@pytest.mark.parametrize("counters", COUNTER_STORES)
def test_an_rpm_limit_admits_exactly_n_requests_across_both_servers(counters, request):
    cluster: Cluster = request.getfixturevalue(f"{counters}_cluster")
    key = new_key(cluster.a, models=["priced-mock"], rpm_limit=RPM)

    results = rpm_burst([s.url for s in cluster.servers], key, total=60)

    assert_exactly_admitted(results, RPM)
    assert counters_in_store(cluster, "rpm:%") >= 1  # the counters are where this cluster keeps them
    assert_no_store_failure(cluster)


# --- b. a budget across both servers ------------------------------------------------------------------------------
def cost_of(response: requests.Response) -> float:
    usage = response.json()["usage"]
    return usage["prompt_tokens"] * INPUT_PRICE + usage["completion_tokens"] * OUTPUT_PRICE


def spend_until_refused(url: str, key: str, limit: int = 100) -> list[requests.Response]:
    """One client sending one request at a time (keep-alive) until the gateway refuses."""
    responses = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {key}"
        for _ in range(limit):
            response = session.post(url + "/v1/chat/completions", json=chat_body("priced-mock"), timeout=30)
            responses.append(response)
            if response.status_code != 200:
                break
    return responses


@pytest.mark.parametrize("counters", COUNTER_STORES)
def test_a_budget_is_overspent_by_at_most_one_request_in_flight_per_server(counters, request):
    cluster: Cluster = request.getfixturevalue(f"{counters}_cluster")
    probe = post_chat(cluster.a.url, new_key(cluster.a, models=["priced-mock"]), chat_body("priced-mock"))
    assert probe.status_code == 200, probe.text
    cost = cost_of(probe)  # every request below is the same, so costs the same
    k = 8
    max_budget = k * cost + cost / 2
    key = new_key(cluster.a, models=["priced-mock"], max_budget=max_budget)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda server: spend_until_refused(server.url, key), cluster.servers))

    for responses in runs:
        assert all(r.status_code == 200 for r in responses[:-1])
        assert_error(responses[-1], 429, "budget_exceeded", "budget_exceeded")
    admitted = sum(len(responses) - 1 for responses in runs)
    # k requests leave the spend under the budget, so at least one more is admitted; each server had at most
    # one request in flight when the budget was crossed.
    assert k + 1 <= admitted <= k + 2, f"{admitted} admitted, per server {[len(r) - 1 for r in runs]}"

    rows = wait_for_rows(cluster.a, key, admitted + len(runs))
    assert sorted(row["status"] for row in rows) == [200] * admitted + [429] * len(runs)
    logged = sum(row["spend"] for row in rows)
    assert logged == pytest.approx(admitted * cost)

    def stored_spend() -> float:
        return cluster.b.admin("/key/info", method="GET", key=key).json()["info"]["spend"]

    deadline = time.monotonic() + 5
    while stored_spend() != pytest.approx(logged) and time.monotonic() < deadline:
        time.sleep(0.2)
    spend = stored_spend()
    assert spend == pytest.approx(logged)
    assert max_budget <= spend <= max_budget + 2 * cost, (spend, max_budget, cost)
    for server in cluster.servers:  # and it stays spent, on every server
        assert_error(post_chat(server.url, key, chat_body("priced-mock")), 429, "budget_exceeded", "budget_exceeded")
    assert counters_in_store(cluster, "spend:%") >= 1
    assert_no_store_failure(cluster)


# --- c. operator changes reach the other server within the staleness bound ----------------------------------------
# change -> (status, type, code) of the refusal once a process has seen it
REFUSALS = {
    "block": (401, "authentication_error", "blocked_key"),
    "delete": (401, "authentication_error", "invalid_api_key"),
    "team models": (403, "team_model_access_denied", "model_not_allowed"),
}


def test_operator_changes_on_one_server_reach_the_other_within_five_seconds(cluster):
    a, b = cluster.a, cluster.b
    team = new_team(a, models=["priced-mock", "fake-gpt"])
    keys = {
        "block": new_key(a, models=["priced-mock"]),
        "delete": new_key(a, models=["priced-mock"]),
        "team models": new_key(a, team_id=team["team_id"]),
    }
    for key in keys.values():  # warm the caches of both of B's workers (and A's)
        for server in (b, b, b, a, b, b, b, a):
            assert post_chat(server.url, key, chat_body("priced-mock")).status_code == 200

    changes = {
        "block": ("/key/block", {"key": keys["block"]}),
        "delete": ("/key/delete", {"keys": [keys["delete"]]}),
        "team models": ("/team/update", {"team_id": team["team_id"], "models": ["fake-gpt"]}),
    }
    changed_at = {}
    for change, (path, body) in changes.items():
        response = a.admin(path, body)
        assert response.status_code == 200, response.text
        changed_at[change] = time.monotonic()

    def watch(change: str) -> tuple[float | None, int]:
        """Call both servers until the bound (plus slack) is over; when was the last request still served?"""
        last_served, refusals = None, 0
        while time.monotonic() - changed_at[change] < STALENESS_BOUND + SLACK + 0.5:
            for server in (b, a):
                sent = time.monotonic()
                response = post_chat(server.url, keys[change], chat_body("priced-mock"))
                if response.status_code == 200:
                    last_served = sent - changed_at[change]
                else:
                    assert_error(response, *REFUSALS[change])
                    refusals += 1
            time.sleep(0.05)
        return last_served, refusals

    with ThreadPoolExecutor(max_workers=len(changes)) as pool:
        outcomes = dict(zip(changes, pool.map(watch, changes), strict=True))

    for change, (last_served, refusals) in outcomes.items():
        assert refusals > 0, change
        assert last_served is None or last_served <= STALENESS_BOUND + SLACK, (
            f"{change}: still served {last_served:.2f} s after the change on the other server"
        )
    # and from now on, every process of both servers refuses, with the right code
    for change, key in keys.items():
        for server in (a, b, a, b):
            assert_error(post_chat(server.url, key, chat_body("priced-mock")), *REFUSALS[change])


# --- e. the same through nginx, configured as docs/deployment.md says ---------------------------------------------
def nginx_block(doc: str) -> str:
    blocks = re.findall(r"^```nginx\n(.*?)^```", doc, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, "docs/deployment.md must hold exactly one ```nginx block"
    return blocks[0]


def _replace(text: str, pattern: str, new: str, *, count: int = 1) -> str:
    """Substitute `pattern` exactly `count` times, so a change in the doc breaks the test loudly, not silently."""
    result, found = re.subn(pattern, lambda _: new, text, flags=re.MULTILINE)
    assert found == count, f"docs/deployment.md's nginx block: expected {count} x {pattern!r}, found {found}"
    return result


def render_nginx_conf(doc: str, *, ports: list[int], listen: int, prefix: Path, static_root: Path) -> str:
    """The doc's nginx.conf with this test's upstream ports, listen port and files under `prefix`."""
    conf = nginx_block(doc)
    upstream = re.search(r"upstream modelgate \{.*?\n    \}", conf, flags=re.DOTALL)
    assert upstream, "the nginx block has no `upstream modelgate { ... }`"
    addresses = re.findall(r"^\s*server ([^\s;]+)", upstream.group(0), flags=re.MULTILINE)
    assert len(addresses) == len(ports), addresses
    rendered = upstream.group(0)
    for address, port in zip(addresses, ports, strict=True):  # each documented box becomes one of our servers
        rendered = rendered.replace(f"server {address}", f"server 127.0.0.1:{port}", 1)
    conf = conf.replace(upstream.group(0), rendered)
    # root runs the workers as itself (the temporary files are its own); anyone else cannot switch users
    user = "user root;" if os.geteuid() == 0 else ""
    conf = _replace(conf, r"^user \S+;", user)
    conf = _replace(conf, r"^pid \S+;", f"pid {prefix}/nginx.pid;")
    conf = _replace(conf, r"^error_log \S+ (\w+);", f"error_log {prefix}/error.log info;")
    conf = _replace(conf, r"access_log /var/log/nginx/\S+ modelgate;", f"access_log {prefix}/access.log modelgate;")
    conf = _replace(conf, r"listen 80;", f"listen 127.0.0.1:{listen};")
    conf = _replace(conf, r"alias /srv/modelgate/static/;", f"alias {static_root}/;")
    temp_paths = "".join(
        f"    {name}_temp_path {prefix}/{name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return _replace(conf, r"^http \{\n", "http {\n" + temp_paths)


@dataclass
class Nginx:
    url: str
    prefix: Path
    proc: subprocess.Popen

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def nginx(cluster, tmp_path_factory):
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        pytest.skip("nginx is not installed (CI installs nginx-light: .ci/run)")
    prefix = tmp_path_factory.mktemp("nginx")
    static_root = prefix / "static"
    collect = subprocess.run(  # the doc's deploy step, so /static/ serves the admin's files
        [sys.executable, "-m", "gateway.cli", "manage", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "STATIC_ROOT": str(static_root),
            "MODELGATE_DATA_DIR": str(prefix),
            "DJANGO_SECRET_KEY": "collectstatic-only",
            "DATABASE_URL": cluster.db.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            NGINX_DOC.read_text(),
            ports=[s.port for s in cluster.servers],
            listen=port,
            prefix=prefix,
            static_root=static_root,
        )
    )
    log = open(prefix / "nginx.out", "wb")  # noqa: SIM115 (kept open for the process's life)
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT
    )
    server = Nginx(f"http://127.0.0.1:{port}", prefix, proc)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}: {(prefix / 'nginx.out').read_text()}")
        try:
            if requests.get(server.url + "/health/readiness", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"nginx did not answer: {(prefix / 'nginx.out').read_text()}")
        time.sleep(0.1)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def served_chats(server: GatewayProcess) -> int:
    """Chat completions this server answered, from its gunicorn access log."""
    return server.log().count('"POST /v1/chat/completions')


def test_nginx_spreads_requests_over_both_servers(cluster, nginx):
    key = new_key(cluster.a, models=["priced-mock"])
    before = [served_chats(s) for s in cluster.servers]
    with requests.Session() as session:  # one client, one keep-alive connection to nginx
        for _ in range(20):
            response = session.post(
                nginx.url + "/v1/chat/completions",
                json=chat_body("priced-mock"),
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == "A reply of five words."
    time.sleep(0.3)  # the access-log lines are written after the responses
    served = [served_chats(s) - b for s, b in zip(cluster.servers, before, strict=True)]
    assert sum(served) == 20, served
    assert min(served) >= 5, f"nginx did not spread the requests: {served}"
    upstreams = set(re.findall(r"upstream=(127\.0\.0\.1:\d+)", nginx.access_log()))
    assert upstreams == {f"127.0.0.1:{s.port}" for s in cluster.servers}, upstreams
    assert len(wait_for_rows(cluster.b, key, 20)) == 20


def test_a_streamed_response_passes_through_nginx_chunk_by_chunk(cluster, nginx, upstream):
    key = new_key(cluster.a, models=["fake-gpt"])
    upstream.chunk_delay = 0.25
    words = "one two three four five six"
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []  # (seconds since the request, content of the chunk)
    with requests.post(
        nginx.url + "/v1/chat/completions",
        json=chat_body("fake-gpt", words, stream=True),
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines(chunk_size=1):
            if line.startswith(b"data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    arrivals.append((time.monotonic() - started, delta))
    text = "".join(delta for _, delta in arrivals)
    assert text.split() == ["echo:", *words.split()]
    # 7 chunks 0.25 s apart upstream: a buffering proxy would deliver them all at once, at the end
    first, last = arrivals[0][0], arrivals[-1][0]
    assert last - first >= 1.2, arrivals
    gaps = [later[0] - earlier[0] for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert sum(gap >= 0.15 for gap in gaps) >= len(gaps) - 1, gaps


def test_the_rpm_limit_holds_through_nginx(cluster, nginx):
    key = new_key(cluster.a, models=["priced-mock"], rpm_limit=RPM)
    before = [served_chats(s) for s in cluster.servers]

    results = rpm_burst([nginx.url], key, total=40)

    assert_exactly_admitted(results, RPM)
    time.sleep(0.3)
    served = [served_chats(s) - b for s, b in zip(cluster.servers, before, strict=True)]
    assert sum(served) == 40 and min(served) > 0, served  # both servers counted against the one limit
    assert_no_store_failure(cluster)


def test_nginx_refuses_a_body_over_the_limit_with_specs_error_and_serves_static_files(cluster, nginx):
    key = new_key(cluster.a, models=["priced-mock"])
    big = json.dumps(chat_body("priced-mock", "x" * (10 * 1024 * 1024 + 1)))
    response = requests.post(
        nginx.url + "/v1/chat/completions",
        data=big,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert_error(response, 413, "invalid_request_error", "request_too_large")

    def answered_by_nginx() -> bool:  # logged once nginx has finished with the connection
        lines = [line for line in nginx.access_log().splitlines() if '"POST /v1/chat/completions' in line]
        return any(" 413 " in line and "upstream=- " in line for line in lines)

    assert poll(answered_by_nginx, seconds=5) is not None, (
        "the 413 did not come from nginx: " + nginx.access_log()[-2000:]
    )
    static = requests.get(nginx.url + "/static/admin/css/base.css", timeout=10)
    assert static.status_code == 200 and "text/css" in static.headers["Content-Type"], static.status_code


# --- d. a normal shutdown loses no request-log row (last: it stops the servers) -----------------------------------
def test_stopping_both_servers_loses_no_request_log_row(cluster, upstream):
    key = new_key(cluster.a, models=["priced-mock", "slow-gpt"])
    urls = [s.url for s in cluster.servers]
    with ThreadPoolExecutor(max_workers=8) as pool:
        fast = list(pool.map(lambda i: post_chat(urls[i % 2], key, chat_body("priced-mock")), range(40)))
    assert [r.status_code for r in fast] == [200] * 40

    # Two slow requests per server are still in flight when SIGTERM arrives: they finish, and are logged too.
    upstream.slow_seconds = 1.5
    slow_pool = ThreadPoolExecutor(max_workers=4)
    slow = [slow_pool.submit(post_chat, urls[i % 2], key, chat_body("slow-gpt")) for i in range(4)]
    deadline = time.monotonic() + 10
    while sum((r["body"] or {}).get("model") == "slow-gpt" for r in list(upstream.requests)) < 4:
        assert time.monotonic() < deadline, "the slow requests never reached the upstream"
        time.sleep(0.02)
    cluster.stop()
    slow_pool.shutdown(wait=True)
    assert [f.result().status_code for f in slow] == [200] * 4

    rows = cluster.query("SELECT status FROM gateway_requestlog WHERE key_hash = %s", (key_hash(key),))
    assert len(rows) == 44, f"{len(rows)} request-log rows for 44 requests"
    assert {status for (status,) in rows} == {200}
    for server in cluster.servers:
        assert "could not write" not in server.log(), server.log()[-3000:]
        assert "Handling signal: term" in server.log()  # a graceful stop, not a kill
