"""Failures around a training loop: the server killed while points are being logged and sent,
SIGTERM of the training process, and the GIL staying free while the SDK waits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import List

import datapilot
from conftest import ADMIN, Server, make_run, wait_for


def steps_of(client: datapilot.Client, run_id: str) -> Counter[int]:
    return Counter(p["step"] for p in client.list_metrics(run_id, page_size=500))


def test_killed_server_points_buffered_then_delivered_once(
    server: Server, admin: datapilot.Client, tmp_path: Path
) -> None:
    run = make_run(admin, tmp_path, "outage", flush_interval=0.2, retry_max_delay=0.5)
    # Up: 20,000 points, logged one at a time; the server dies once the first batch is in,
    # most likely with the next one in flight (its answer lost, its key unanswered).
    for step in range(20_000):
        run.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    wait_for(lambda: run.metrics_stats["batches"] >= 1, 30, "a first batch")
    server.kill()

    # Down: logging goes on at full speed, into the queue.
    started = time.perf_counter()
    for step in range(20_000, 30_000):
        run.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    assert time.perf_counter() - started < 5.0, "log_metrics waited for the dead server"
    wait_for(lambda: run.metrics_stats["last_error"] is not None, 60, "the logger to meet the outage")
    down = run.metrics_stats
    assert down["pending"] > 0 and down["delivered"] < 30_000, down
    assert down["failed"] is None, "an outage is not a permanent failure"

    # While the SDK waits for the dead server, other Python threads run (GIL released).
    ticks: List[int] = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    partial = run.flush(timeout=1.0)
    stop.set()
    t.join()
    assert partial.get("complete") is False
    assert ticks[0] > 10_000, f"only {ticks[0]} ticks while flush waited: the GIL was held"

    # Back: same data dir, same port. Everything arrives, nothing twice.
    server.restart()
    stats = run.flush(timeout=120)
    assert stats["complete"], stats
    assert stats["delivered"] == 30_000 and stats["abandoned"] == 0
    assert stats["retries"] >= 1
    steps = steps_of(admin, run.id)
    assert sum(steps.values()) == 30_000, "points were lost or duplicated"
    assert set(steps) == set(range(30_000)) and max(steps.values()) == 1
    assert run.finish()["status"] == "succeeded"


TRAINING = """
import os, time, datapilot

client = datapilot.Client()
inputs = [(os.environ["DATASET_ID"], os.environ["DIGEST"])]
if os.environ.get("RESUME"):
    run = client.resume_run()
else:
    run = client.start_run("sigterm", inputs=inputs, git_commit="4015b57a143aec5156fd1444a017a32137a3fd0f",
                           image_digest="sha256:" + "ab" * 32)
with run:
    print("run", run.id, flush=True)
    try:
        for step in range(5_000_000):  # bounded: SIGTERM arrives long before
            run.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
            if step == 2_000:
                print("ready", flush=True)
            if step % 10 == 0:
                time.sleep(0.001)  # a training step takes time
    finally:
        print("logged", run.metrics_stats["logged"], flush=True)
"""


def sigterm_training(server: Server, tmp_path: Path, env_extra: "dict[str, str]") -> "tuple[int, str, int]":
    script = tmp_path / "train_forever.py"
    script.write_text(TRAINING)
    env = dict(os.environ, DATAPILOT_URL=server.url, DATAPILOT_TOKEN=ADMIN, **env_extra)
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        assert lines and lines[-1].strip() == "ready", "".join(lines) + (proc.stderr.read() if proc.stderr else "")
        time.sleep(1.0)  # training goes on: batches in flight, points queued
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    run_id = re.search(r"^run (run_\w+)$", out, re.M)
    logged = re.search(r"^logged (\d+)$", out, re.M)
    assert run_id and logged, f"stdout:\n{out}\nstderr:\n{err}"
    assert "SIGTERM" in err, err
    return proc.returncode, run_id.group(1), int(logged.group(1))


def test_sigterm_flushes_the_queue_and_finishes_the_run_as_failed(
    server: Server, admin: datapilot.Client, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "a").write_text("a\n")
    reg = admin.register_dataset(data, dataset="sigterm")
    code, run_id, logged = sigterm_training(
        server, tmp_path, {"DATASET_ID": reg["dataset_id"], "DIGEST": reg["version"]["digest"]}
    )
    assert code == 143, "exit status of a SIGTERM'd process"
    assert logged > 2_000
    assert admin.get_run(run_id)["status"] == "failed"
    steps = steps_of(admin, run_id)
    assert sum(steps.values()) == logged, "every point logged before SIGTERM is on the server, once"
    assert set(steps) == set(range(logged))


def test_sigterm_of_a_resumed_run_flushes_and_leaves_it_running(
    server: Server, admin: datapilot.Client, tmp_path: Path
) -> None:
    # As the CLI's run-start would: the run exists, the container gets its id and token.
    started = make_run(admin, tmp_path, "resumed")
    started.close()
    code, run_id, logged = sigterm_training(
        server,
        tmp_path,
        {
            "DATASET_ID": "unused",
            "DIGEST": "unused",
            "RESUME": "1",
            "DATAPILOT_RUN_ID": started.id,
            "DATAPILOT_RUN_TOKEN": started.token,
        },
    )
    assert code == 143 and run_id == started.id
    assert admin.get_run(run_id)["status"] == "running", "the step that started it finishes it"
    assert sum(steps_of(admin, run_id).values()) == logged
    assert started.finish()["status"] == "succeeded"
