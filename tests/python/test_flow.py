"""The whole flow through the example training script of docs/sdk-python.md, run as a user
would (a subprocess with the environment variables set), then checked from outside; and
``mypy --strict`` on the example and the package."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datapilot
from conftest import ADMIN, ROOT, Server, example_source


def toy_dataset(d: Path) -> None:
    d.mkdir()
    rng = random.Random(1)
    lines = ["x1,x2,label"]
    for _ in range(400):
        x1, x2 = rng.uniform(-2, 2), rng.uniform(-2, 2)
        lines.append(f"{x1:.4f},{x2:.4f},{int(x1 + 0.5 * x2 > 0)}")
    (d / "train.csv").write_text("\n".join(lines) + "\n")
    (d / "README.md").write_text("toy points\n")


def test_example_runs_the_whole_flow(server: Server, admin: datapilot.Client, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    toy_dataset(data)
    out.mkdir()
    script = tmp_path / "train.py"
    script.write_text(example_source())
    env = dict(
        os.environ,
        DATAPILOT_URL=server.url,
        DATAPILOT_TOKEN=ADMIN,
        DATAPILOT_TRUSTED_KEYS=",".join(admin.verifier_keys()),
    )
    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    m = re.search(r"^run (run_\w+): model .*, (\d+) points$", done.stdout, re.M)
    assert m, done.stdout
    run_id = m.group(1)
    assert int(m.group(2)) == 10_000
    assert "evidence verified: 10 checks" in done.stdout, done.stdout

    info = admin.get_run(run_id)
    assert info["status"] == "succeeded"
    assert info["params"] == {"lr": "0.1", "steps": "10000", "seed": "7"}
    # Every one of the 10,000 points logged one at a time, exactly once.
    points = list(admin.list_metrics(run_id, page_size=500))
    assert len(points) == 10_000
    steps = Counter(p["step"] for p in points)
    assert set(steps) == set(range(10_000)) and max(steps.values()) == 1
    assert {p["name"] for p in points} == {"train/loss"}
    # The model as written is the artifact the run recorded.
    model = (out / "model.json").read_bytes()
    [artifact] = list(admin.list_artifacts(run_id))
    assert artifact["name"] == "model.json"
    assert artifact["sha256"] == hashlib.sha256(model).hexdigest()
    assert admin.download_artifact(run_id, artifact["id"]) == model
    # Lineage: the dataset version went in, the artifact came out.
    lineage = admin.run_lineage(run_id)
    kinds = {e["kind"] for e in lineage["edges"]}
    assert {"input", "produced"} <= kinds, lineage
    # The bundle the script wrote verifies here too, from its path.
    report = datapilot.verify_evidence_bundle(out / "evidence.zip", trusted_keys=admin.verifier_keys())
    assert report["summary"]["scope"] == f"run:{run_id}"


def mypy(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache / ".mypy_cache"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_example_type_checks_strict(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(example_source())
    done = mypy("train.py", cwd=tmp_path, cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The stubs are really seen: misuse of the API is an error, not Any.
    (tmp_path / "misuse.py").write_text(
        "import datapilot\n"
        "run = datapilot.Client().resume_run()\n"
        'run.log_metrics({"loss": "high"}, step="one")\n'
        'n: int = datapilot.hash_directory("d").digest\n'
    )
    bad = mypy("misuse.py", cwd=tmp_path, cache=tmp_path)
    assert bad.returncode != 0
    assert bad.stdout.count("error:") >= 3, bad.stdout


def test_package_type_checks_strict(tmp_path: Path) -> None:
    # The sources the wheel was built from (python/python/datapilot), not the installed copy.
    done = mypy("-p", "datapilot", cwd=ROOT / "python" / "python", cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_artifact_upload_streams_with_progress(admin: datapilot.Client, tmp_path: Path) -> None:
    from conftest import make_run

    big = tmp_path / "weights.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for i in range(96):
            f.write(bytes([i]) + block[1:])
    size = big.stat().st_size
    seen: "list[tuple[str, int, int]]" = []
    with make_run(admin, tmp_path, "upload") as run:
        artifact = run.log_artifact(big, "model/weights.bin", progress=lambda *p: seen.append(p))
    assert artifact["name"] == "model/weights.bin" and artifact["size"] == size
    assert seen and seen[-1] == ("done", size, size), seen[-3:]
    phases = [p for p, _, _ in seen]
    order = {"hashing": 0, "uploading": 1, "done": 2}
    assert [order[p] for p in phases] == sorted(order[p] for p in phases), phases
    assert all(0 <= b <= t == size for _, b, t in seen), seen
    data = admin.download_artifact(run.id, artifact["id"])
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
