"""Benchmarks of the Python package (BENCHMARKS.md, "Python package").

Run through benches/python/run.sh, which builds the release wheel and server and sets up the
bench venv (the wheel + MLflow). Measures, on this machine:

1. ``run.log_metrics`` of one point per call, 100,000 calls, on the caller's thread (the
   background thread sends meanwhile on the other core), and how long the last points take
   to reach the server after the loop;
2. MLflow's ``mlflow.log_metric`` against its own tracking server (``mlflow server``, SQLite
   store) on the same machine: synchronous (the default; 2,000 calls) and
   ``synchronous=False`` (5,000 calls, then the time its queue takes to drain);
3. hashing a 1 GiB directory (1,024 files of 1 MiB in 16 folders, page cache warm) with
   ``datapilot.hash_directory`` and with the coreutils recipe of docs/formats.md §1.

Prints a JSON document of the numbers. Every loop is bounded; servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Tuple

import datapilot

ADMIN = "dpt_bench" + secrets.token_hex(12)
RECIPE = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_datapilot(binary: str, data: Path) -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [binary, "--data-dir", str(data), "--listen", "127.0.0.1:0"],
        env=dict(os.environ, DATAPILOT_BOOTSTRAP_TOKEN=ADMIN, DATAPILOT_LOG="warn"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc, line.split()[-1]
    raise RuntimeError("datapilot-server did not start")


def bench_log_metrics(url: str, tmp: Path, n: int) -> Dict[str, Any]:
    client = datapilot.Client(url, ADMIN)
    data = tmp / "bench-data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    reg = client.register_dataset(data, dataset="bench")
    client.record_gate(reg["version"], gate="schema-check", status="passed")
    run = client.start_run(
        "bench",
        inputs=[reg["version"]],
        git_commit="4015b57a143aec5156fd1444a017a32137a3fd0f",
        image_digest="sha256:" + "ab" * 32,
    )
    log = run.log_metrics
    for i in range(1_000):  # warm-up (allocator, branch predictors, first batch)
        log({"warmup": 1.0}, step=i)
    run.flush(60)

    values = [1.0 / (i + 1) for i in range(n)]
    start = time.perf_counter_ns()
    for i in range(n):
        log({"train/loss": values[i]}, step=i)
    loop_ns = time.perf_counter_ns() - start
    after_loop = time.perf_counter()
    stats = run.flush(120)
    drain_s = time.perf_counter() - after_loop

    # Distribution: 20,000 further calls timed one by one (includes ~60 ns of timer cost).
    samples: List[int] = []
    for i in range(20_000):
        t0 = time.perf_counter_ns()
        log({"train/acc": 0.5}, step=n + i)
        samples.append(time.perf_counter_ns() - t0)
    run.finish()
    samples.sort()
    # An empty loop with the same timer calls: what the timer itself costs per sample.
    empty: List[int] = []
    for _ in range(20_000):
        t0 = time.perf_counter_ns()
        empty.append(time.perf_counter_ns() - t0)
    return {
        "calls": n,
        "mean_us_per_call": loop_ns / n / 1000,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "max_us": samples[-1] / 1000,
        "timer_overhead_us": statistics.median(empty) / 1000,
        "delivered": stats["delivered"],
        "batches": stats["batches"],
        "drain_after_loop_s": drain_s,
    }


def bench_mlflow(tmp: Path, n_sync: int, n_async: int) -> Dict[str, Any]:
    port = free_port()
    store = tmp / "mlflow"
    store.mkdir()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}/mlflow.db",
            "--default-artifact-root",
            str(store / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=store,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.5)
        import mlflow

        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("bench")
        with mlflow.start_run():
            for i in range(50):  # warm-up: connection, server caches
                mlflow.log_metric("warmup", 1.0, step=i)
            start = time.perf_counter_ns()
            for i in range(n_sync):
                mlflow.log_metric("train/loss", 1.0 / (i + 1), step=i)
            sync_ns = time.perf_counter_ns() - start
            start = time.perf_counter_ns()
            for i in range(n_async):
                mlflow.log_metric("train/acc", 1.0 / (i + 1), step=i, synchronous=False)
            async_ns = time.perf_counter_ns() - start
            after_loop = time.perf_counter()
            mlflow.flush_async_logging()
            async_drain_s = time.perf_counter() - after_loop
        return {
            "version": mlflow.__version__,
            "sync_calls": n_sync,
            "sync_mean_us_per_call": sync_ns / n_sync / 1000,
            "async_calls": n_async,
            "async_mean_us_per_call": async_ns / n_async / 1000,
            "async_drain_after_loop_s": async_drain_s,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_gib(root: Path) -> None:
    block = os.urandom(1 << 20)
    for i in range(1024):
        d = root / f"shard-{i % 16:02d}"
        d.mkdir(parents=True, exist_ok=True)
        # A different first byte per file: no two files hash alike.
        (d / f"part-{i:04d}.bin").write_bytes(bytes([i % 256]) + block[1:])


def bench_hash(tmp: Path, rounds: int) -> Dict[str, Any]:
    root = tmp / "gib"
    make_gib(root)
    subprocess.run(["sh", "-c", "cat $(find . -type f) > /dev/null"], cwd=root, check=True)  # warm the cache
    ours: List[float] = []
    theirs: List[float] = []
    digest = recipe = ""
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = subprocess.run(["sh", "-c", RECIPE], cwd=root, capture_output=True, text=True, check=True)
        theirs.append(time.perf_counter() - t0)
        recipe = "sha256:" + out.stdout.split()[0]
        t0 = time.perf_counter()
        digest = datapilot.hash_directory(root).digest
        ours.append(time.perf_counter() - t0)
    assert digest == recipe, f"ids differ: {digest} vs {recipe}"
    shutil.rmtree(root)
    return {
        "bytes": 1 << 30,
        "files": 1024,
        "rounds": rounds,
        "datapilot_s": statistics.median(ours),
        "coreutils_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
        "all_datapilot_s": ours,
        "all_coreutils_s": theirs,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="datapilot-server binary (release)")
    ap.add_argument("--calls", type=int, default=100_000)
    # MLflow's calls are timed on fewer points than ours: a synchronous call is a round trip
    # of milliseconds, and its asynchronous queue drains at tens of points per second here.
    ap.add_argument("--mlflow-sync-calls", type=int, default=2_000)
    ap.add_argument("--mlflow-async-calls", type=int, default=5_000)
    ap.add_argument("--hash-rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dp-pybench-"))
    results: Dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    proc, url = start_datapilot(args.server, tmp / "server")
    try:
        results["datapilot_log_metrics"] = bench_log_metrics(url, tmp, args.calls)
    finally:
        proc.terminate()
        proc.wait(30)
    results["mlflow_log_metric"] = bench_mlflow(tmp, args.mlflow_sync_calls, args.mlflow_async_calls)
    results["hash_1gib"] = bench_hash(tmp, args.hash_rounds)
    dp = results["datapilot_log_metrics"]["mean_us_per_call"]
    ml = results["mlflow_log_metric"]
    results["speedup_vs_mlflow_sync"] = ml["sync_mean_us_per_call"] / dp
    results["speedup_vs_mlflow_async"] = ml["async_mean_us_per_call"] / dp
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
