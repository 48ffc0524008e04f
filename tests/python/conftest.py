"""Fixtures of the Python package tests: the real reference server, clients, the example.

The tests run against the installed wheel (``./x test`` installs it into a fresh venv), never
against the source tree: ``import datapilot`` must come from site-packages.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import pytest

import datapilot

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "dpt_pytest" + secrets.token_hex(12)


def _require_installed_wheel() -> None:
    # A test of the source tree would not test the wheel a user installs.
    where = Path(datapilot.__file__).resolve()
    assert "site-packages" in where.parts, f"datapilot imported from {where}, not an installed wheel"


_require_installed_wheel()


class Server:
    """A ``datapilot-server`` on 127.0.0.1 with its own data dir; ``kill`` and ``restart`` keep
    the data dir and the port (what a crash and a supervisor restart do)."""

    def __init__(self, data_dir: Path, args: Sequence[str] = ()) -> None:
        self.bin = os.environ.get("DATAPILOT_SERVER_BIN") or str(ROOT / "target/debug/datapilot-server")
        if not Path(self.bin).is_file():
            raise RuntimeError(
                f"no server binary at {self.bin}: build it with "
                "`cargo build --workspace --features datapilot/native --bins` or set DATAPILOT_SERVER_BIN"
            )
        self.data_dir = data_dir
        self.args = list(args)
        self.proc: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self.start("127.0.0.1:0")

    def start(self, listen: str) -> None:
        env = dict(os.environ, DATAPILOT_BOOTSTRAP_TOKEN=ADMIN, DATAPILOT_LOG="warn")
        proc = subprocess.Popen(
            [self.bin, "--data-dir", str(self.data_dir), "--listen", listen, *self.args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        found: List[str] = []
        ready = threading.Event()

        def read() -> None:
            # Reads every line, so the pipe never fills up, and reports the address.
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.match(r"listening on (http://\S+)", line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60) or not found:
            proc.kill()
            raise RuntimeError("datapilot-server did not print its address")
        self.proc = proc
        self.url = found[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> None:
        self.start(f"127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "server-data")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture()
def admin(server: Server) -> datapilot.Client:
    return datapilot.Client(server.url, ADMIN, timeout=10.0)


def make_run(client: datapilot.Client, tmp_path: Path, name: str, **metrics: object) -> datapilot.Run:
    """A run over a small registered, gated dataset."""
    data = tmp_path / f"data-{name}"
    data.mkdir()
    (data / "a.csv").write_text(f"id\n{name}\n")
    reg = client.register_dataset(data, dataset=name)
    client.record_gate(reg["version"], gate="schema-check", status="passed")
    return client.start_run(
        name,
        inputs=[reg["version"]],
        git_commit="4015b57a143aec5156fd1444a017a32137a3fd0f",
        image_digest="sha256:" + "ab" * 32,
        **metrics,
    )


def example_source() -> str:
    """The training script of docs/sdk-python.md, exactly as the docs show it."""
    doc = (ROOT / "docs/sdk-python.md").read_text()
    m = re.search(r"<!-- python-example: train.py -->\n```python\n(.*?)\n```", doc, re.S)
    assert m, "docs/sdk-python.md lost its example block"
    return m.group(1) + "\n"


def tool(name: str) -> str:
    """An executable of this venv (pytest runs inside it)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name) or name


def wait_for(predicate: "object", timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture()
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dp-py-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
