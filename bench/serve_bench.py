"""Serving benchmark: requests per second for a 100-entry feed, `aggregator serve` beside nginx.

It builds a 100-entry merged feed (``all.atom``, ~800 KB) from the benchmark corpus
(bench/corpus.py, 150 items) with the real CLI, then serves that output folder twice at once,
each server a child process on its own loopback port:

* ``aggregator serve`` (one process: uvicorn, httptools, uvloop);
* nginx (``--nginx-workers`` worker processes, default 1 so both sides have one process
  answering; ``etag on``, ``gzip_static`` with a ``.gz`` made beforehand, so nginx sends
  gzip without compressing per request either; access log off), from a temporary nginx.conf.

and loads each from ``wrk`` (Debian's package; a second process on loopback) for
``--seconds`` per run, ``--rounds`` runs per case alternating the servers (the median
counts):

1. **304**: ``If-None-Match`` with the server's own ETag for the feed: the revalidation
   path a feed reader polls on (target: aggregator at least 25% of nginx's rate);
2. **GET**: the full feed, no Accept-Encoding (800 KB a response);
3. **GET gzip**: ``Accept-Encoding: gzip``.

Before loading, one request per case checks that each server answers as intended (304, 200
identity, 200 gzip). It prints the table and, with ``--json``, the figures as JSON. Every
process it starts is stopped by its pid; the temporary folder is removed.

Run (from the repository root; needs ``apt-get install -y wrk nginx``)::

    .venv/bin/python bench/serve_bench.py [--seconds 3] [--rounds 3] [--connections 32]
        [--nginx-workers 1] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FEED = "all.atom"
# 150 corpus items give 136 distinct articles: enough for max_entries = 100 in all.atom.
ITEMS = 150
TARGET_304 = 0.25  # the target: the 304 path at least 25% of nginx's rate

CONFIG = """\
base_url = "http://127.0.0.1:{port}/"
output_dir = "out"
state_db = "state.sqlite3"

[output]
max_entries = 100

[[sources]]
name = "voa"
path = "corpus/voa"
adapter = "voa"

[[sources]]
name = "dw"
path = "corpus/dw"
adapter = "dw"

[[sources]]
name = "aljazeera"
path = "corpus/aljazeera"
adapter = "aljazeera"
"""

NGINX_CONF = """\
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp-body;
    proxy_temp_path {root}/tmp-proxy;
    fastcgi_temp_path {root}/tmp-fastcgi;
    uwsgi_temp_path {root}/tmp-uwsgi;
    scgi_temp_path {root}/tmp-scgi;
    types {{ application/atom+xml atom; }}
    charset utf-8;
    charset_types application/atom+xml;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    etag on;
    gzip_static on;
    server {{
        listen 127.0.0.1:{port};
        root {out};
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before it answered")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not answer on port {port} within 20 s")


def _get(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/" + FEED, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _wrk(wrk: str, port: int, headers: dict[str, str], args: argparse.Namespace) -> float:
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/{FEED}"], capture_output=True, text=True, check=True
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return float(found.group(1))


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=3, help="wrk duration per run (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per case and server (default 3)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--nginx-workers", default="1", help="nginx worker_processes (default 1)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    wrk, nginx = shutil.which("wrk"), shutil.which("nginx") or "/usr/sbin/nginx"
    if wrk is None or not Path(nginx).exists():
        raise SystemExit("needs wrk and nginx: apt-get install -y wrk nginx")

    root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    root.chmod(0o755)  # nginx's workers (user nobody when started as root) read out/ through it
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        ours_port, nginx_port = _free_port(), _free_port()
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "corpus.py"), str(root / "corpus"),
             "--items", str(ITEMS)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        (root / "config.toml").write_text(CONFIG.format(port=ours_port), encoding="utf-8")
        agg = [sys.executable, "-m", "aggregator"]
        subprocess.run([*agg, "run"], cwd=root, check=True, stdout=subprocess.DEVNULL)
        feed = (root / "out" / FEED).read_bytes()
        entries = feed.count(b"<entry>")
        (root / "out" / (FEED + ".gz")).write_bytes(gzip.compress(feed, 9))
        for d in ("tmp-body", "tmp-proxy", "tmp-fastcgi", "tmp-uwsgi", "tmp-scgi"):
            (root / d).mkdir()
        conf = NGINX_CONF.format(
            workers=args.nginx_workers, root=root, port=nginx_port, out=root / "out"
        )
        (root / "nginx.conf").write_text(conf, encoding="utf-8")

        ours = subprocess.Popen(
            [*agg, "serve", "--port", str(ours_port)], cwd=root, stderr=subprocess.DEVNULL
        )
        procs.append((ours, signal.SIGTERM))
        ngx = subprocess.Popen(
            [nginx, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        procs.append((ngx, signal.SIGQUIT))  # nginx's graceful stop
        _wait_port(ours_port, ours, "aggregator serve")
        _wait_port(nginx_port, ngx, "nginx")

        servers = {"aggregator": ours_port, "nginx": nginx_port}
        cases: dict[str, dict[str, dict[str, str]]] = {"304": {}, "GET": {}, "GET gzip": {}}
        for name, port in servers.items():
            status, headers, body = _get(port, {})
            assert status == 200 and body == feed, f"{name}: GET gave {status}"
            cases["304"][name] = {"If-None-Match": headers["etag"]}
            cases["GET"][name] = {}
            cases["GET gzip"][name] = {"Accept-Encoding": "gzip"}
            checks = {"304": (304, None), "GET": (200, None), "GET gzip": (200, "gzip")}
            for case, (want, coding) in checks.items():
                status, headers, body = _get(port, cases[case][name])
                assert status == want, f"{name} {case}: {status}, wanted {want}"
                assert headers.get("content-encoding") == coding, f"{name} {case}: {headers}"
                if coding:
                    assert gzip.decompress(body) == feed

        # Rounds alternate the servers, and each figure is the median of its rounds: the two
        # share the machine with wrk, and a burst of other load should not decide a ratio.
        runs: dict[str, dict[str, list[float]]] = {c: {n: [] for n in servers} for c in cases}
        for _ in range(args.rounds):
            for case, per_server in cases.items():
                for name, port in servers.items():
                    runs[case][name].append(_wrk(wrk, port, per_server[name], args))
        results = {
            case: {name: statistics.median(rates) for name, rates in per.items()}
            for case, per in runs.items()
        }
        print(
            f"{FEED}: {entries} entries, {len(feed):,} bytes ({len(gzip.compress(feed, 9)):,} "
            f"gzipped); wrk -t{args.threads} -c{args.connections} -d{args.seconds}s on "
            f"127.0.0.1, median of {args.rounds} alternating runs; nginx worker_processes "
            f"{args.nginx_workers}; {os.cpu_count()} CPUs"
        )
        print(f"{'case':<10} {'aggregator req/s':>17} {'nginx req/s':>12} {'ratio':>7}")
        for case, r in results.items():
            ratio = r["aggregator"] / r["nginx"]
            print(f"{case:<10} {r['aggregator']:>17,.0f} {r['nginx']:>12,.0f} {ratio:>7.0%}")
        ratio_304 = results["304"]["aggregator"] / results["304"]["nginx"]
        verdict = "met" if ratio_304 >= TARGET_304 else "NOT met"
        print(f"304 path: {ratio_304:.0%} of nginx's rate; target {TARGET_304:.0%}: {verdict}")
        if args.json:
            print(json.dumps({"entries": entries, "bytes": len(feed), "runs": runs}))
        return 0 if ratio_304 >= TARGET_304 else 1
    finally:
        for proc, sig in reversed(procs):
            _stop(proc, sig)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
