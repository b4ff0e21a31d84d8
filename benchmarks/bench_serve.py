"""Load on `qasr serve` over loopback: throughput, latency, errors, and the lab's verdict on worker RSS.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_serve.py --model ../shared/models/tiny-asr-a-q4_0.bin --audio ../shared/data/jfk.wav \\
        [--requests 500] [--concurrency 4] [--workers 2]

Three runs against a server started here on 127.0.0.1 (bounded: --requests each, then it stops):
(1) --requests at --concurrency with --workers: requests/s, p50/p95 latency, failed requests;
(2) --requests one at a time with one worker, its RSS read (psutil) after every request, judged by
    the lab's slope verdict (restart()-type threshold, 64 KiB per request) — target NO_LEAK;
(3) the server's overhead per request: (2)'s median latency minus a direct `transcribe()` of the
    same file in one process — target at most 10 ms.
Works with the test double as the engine too (then it measures qasr alone).

With ``--chaos SECONDS`` it runs one chaos run instead: the same bounded load while a random worker
is SIGKILLed every SECONDS (as the OOM killer would); it prints requests sent, succeeded, retried
(on a fresh worker, by the server), failed (5xx and other), p50/p95 latency, worker restarts by
reason, /health at the end, and the lab's slope verdict on the workers' RSS and on the server's own
RSS, read after every request. Target: at least 99% succeed; the server is healthy at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qasr", "serve", "-m", model, "--port", str(port), "--workers", str(workers),
                             "--queue", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server failed (exit {proc.returncode}); run it by hand to see why")
            time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def post(url: str, body: bytes, boundary: str) -> tuple[float, int]:
    req = urllib.request.Request(url + "/v1/audio/transcriptions", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()
            return time.perf_counter() - t0, r.status
    except urllib.error.HTTPError as exc:
        return time.perf_counter() - t0, exc.code
    except OSError:  # refused, reset: no status at all
        return time.perf_counter() - t0, 0


def multipart(audio: Path) -> tuple[bytes, str]:
    boundary = "qasrbench"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nqwen3-asr\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{audio.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + audio.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), boundary


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return r.read().decode()


def worker_pids(url: str) -> list[int]:
    import re

    return sorted({int(p) for p in re.findall(r'pid="(\d+)"', metrics_text(url))})


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def chaos(args: argparse.Namespace, body: bytes, boundary: str) -> int:
    """The chaos run: bounded load while a random worker is SIGKILLed every ``args.chaos`` seconds."""
    import random
    import threading

    import psutil

    from qasr.lab.scenarios import default_threshold
    from qasr.lab.verdict import slope_verdict

    proc, url = start_server(args.model, args.workers)
    server = psutil.Process(proc.pid)
    done, kills = threading.Event(), []
    worker_rss: list[float] = []
    server_rss: list[float] = []
    lock = threading.Lock()

    def killer() -> None:
        rng = random.Random(args.seed)
        while not done.wait(args.chaos):  # the benchmark's own pace, not an ordering
            pids = worker_pids(url)
            if pids:
                victim = rng.choice(pids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append(victim)
                except ProcessLookupError:
                    pass

    def one(_: int) -> tuple[float, int]:
        result = post(url, body, boundary)
        rss = []
        for child in server.children():
            try:
                rss.append(child.memory_info().rss)
            except psutil.Error:
                pass
        with lock:
            if rss:
                worker_rss.append(sum(rss) / len(rss))
            server_rss.append(server.memory_info().rss)
        return result

    thread = threading.Thread(target=killer, daemon=True)
    try:
        t0 = time.perf_counter()
        thread.start()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        done.set()
        thread.join()
        try:
            with urllib.request.urlopen(url + "/health", timeout=10) as r:
                health = r.status
        except urllib.error.HTTPError as exc:
            health = exc.code
        text = metrics_text(url)
    finally:
        done.set()
        stop(proc)
    lat = sorted(r[0] for r in results)
    ok = sum(1 for r in results if r[1] == 200)
    fivexx = sum(1 for r in results if 500 <= r[1] < 600)
    other = len(results) - ok - fivexx
    restarts = {reason: int(metric(text, "qasr_worker_restarts_total", reason=reason)) for reason in ("died", "stuck", "rss", "requests")}
    threshold = default_threshold("restart", None, "rss")
    print(f"chaos: {args.requests} requests, concurrency {args.concurrency}, {args.workers} worker(s), a worker SIGKILLed every {args.chaos:g} s")
    print(f"    load average before/after: {args.load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"    wall {wall:.1f} s   {args.requests / wall:.1f} requests/s   workers killed {len(kills)}")
    print(f"    sent {len(results)}   succeeded {ok} ({100 * ok / len(results):.1f}%)   retried {int(metric(text, 'qasr_request_retries_total'))}   "
          f"failed 5xx {fivexx}   failed other {other}")  # fmt: skip
    print(f"    p50 {lat[len(lat) // 2] * 1000:.0f} ms   p95 {lat[int(len(lat) * 0.95) - 1] * 1000:.0f} ms")
    print(f"    worker restarts: " + "  ".join(f"{k} {v}" for k, v in restarts.items()))
    print(f"    /health at the end: {health}")
    for label, series in (("workers' mean RSS", worker_rss), ("server's RSS", server_rss)):
        verdict = slope_verdict(series, threshold)
        print(f"    {label}: {series[0] / 2**20:.1f} -> {series[-1] / 2**20:.1f} MiB: {verdict.verdict.value}: {verdict.reason}")
    met = ok >= 0.99 * len(results) and health == 200
    print(f"    target: >= 99% succeed and healthy at the end   {'OK' if met else 'MISSED'}")
    return 0 if met else 1


def direct_median(model: str, audio: str, n: int) -> float:
    code = textwrap.dedent(f"""
        import json, os, statistics, sys, time
        from qasr import Model, transcribe
        m = Model({model!r})
        transcribe(m, {audio!r})
        walls = []
        for _ in range({n}):
            t0 = time.perf_counter(); transcribe(m, {audio!r}); walls.append(time.perf_counter() - t0)
        print(json.dumps(statistics.median(walls))); sys.stdout.flush(); os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(json.loads(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chaos", type=float, metavar="SECONDS", help="kill a random worker every SECONDS under the load instead")
    parser.add_argument("--seed", type=int, default=1, help="which workers the chaos run kills")
    args = parser.parse_args()
    body, boundary = multipart(Path(args.audio))
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())

    print(f"engine      : {os.environ.get('QASR_CHATLLM_LIB', '(default search)')}")
    print(f"model/audio : {args.model} / {args.audio}\n")
    if args.chaos:
        return chaos(args, body, boundary)
    proc, url = start_server(args.model, args.workers)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda _: post(url, body, boundary), range(args.requests)))
        wall = time.perf_counter() - t0
    finally:
        stop(proc)
    lat = sorted(r[0] for r in results)
    failed = sum(1 for r in results if r[1] != 200)
    print(f"(1) {args.requests} requests, concurrency {args.concurrency}, {args.workers} worker(s)")
    print(f"    {args.requests / wall:.1f} requests/s   p50 {lat[len(lat) // 2] * 1000:.0f} ms   "
          f"p95 {lat[int(len(lat) * 0.95) - 1] * 1000:.0f} ms   failed {failed}   {'OK' if failed == 0 else 'MISSED'}\n")  # fmt: skip

    import psutil

    from qasr.lab.scenarios import default_threshold
    from qasr.lab.verdict import slope_verdict

    proc, url = start_server(args.model, 1)
    try:
        worker = psutil.Process(worker_pids(url)[0])
        series, walls = [], []
        for _ in range(args.requests):
            took, status = post(url, body, boundary)
            walls.append(took)
            series.append(worker.memory_info().rss)
    finally:
        stop(proc)
    verdict = slope_verdict(series, default_threshold("restart", None, "rss"))
    print(f"(2) {args.requests} requests one at a time, one worker: RSS {series[0] / 2**20:.1f} -> {series[-1] / 2**20:.1f} MiB")
    print(f"    {verdict.verdict.value}: {verdict.reason}\n")
    direct = direct_median(args.model, args.audio, 20)
    served = statistics.median(walls)
    overhead = (served - direct) * 1000
    print(f"(3) server median {served * 1000:.1f} ms vs direct transcribe() {direct * 1000:.1f} ms: "
          f"overhead {overhead:.1f} ms per request   target <= 10 ms   {'OK' if overhead <= 10 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
