"""The package's dataset id is the CLI's and the coreutils recipe's (docs/formats.md §1) on a
directory with the awkward cases, with the CLI's symlink rules; and bad directories give clear,
typed errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest

import datapilot
from conftest import ROOT

RECIPE = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"


def coreutils_id(d: Path) -> str:
    out = subprocess.run(["sh", "-c", RECIPE], cwd=d, capture_output=True, text=True, check=True)
    return "sha256:" + out.stdout.split()[0]


def cli() -> Optional[str]:
    """The npm package's CLI (``./x pkg`` builds it into pkg/; ``./x test`` sets DATAPILOT_CLI)."""
    path = os.environ.get("DATAPILOT_CLI") or str(ROOT / "pkg/bin/datapilot.mjs")
    return path if Path(path).is_file() and shutil.which("node") else None


def cli_id(d: Path, *flags: str) -> str:
    entry = cli()
    if entry is None:
        if os.environ.get("DATAPILOT_CLI"):
            raise AssertionError(f"DATAPILOT_CLI={os.environ['DATAPILOT_CLI']} is not a runnable CLI")
        pytest.skip("the npm package's CLI is not built (./x pkg) or node is missing")
    out = subprocess.run(["node", entry, "digest", str(d), "--json", *flags], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["digest"])


def tricky(root: Path, outside: Path) -> None:
    files = {
        "README.md": b"# data\n",
        "train/part-0001.csv": b"id,label\n1,cat\n2,dog\n",
        "train/nested/deeper/x.bin": bytes([0, 1, 2, 255]),
        "with space/a b.txt": b"spaces\n",
        "donn\u00e9es/\u00e9.csv": b"x,y\n1,2\n",
        ".hidden": b"hidden files count\n",
        ".git/HEAD": b"ref: refs/heads/main\n",
        "empty": b"",
        "big/blob.bin": bytes(i % 251 for i in range(3_000_000)),
    }
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")
    os.symlink("README.md", root / "link-to-file")
    os.symlink("train", root / "link-to-dir")
    os.symlink(outside, root / "link-outside")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "a-fifo")


def test_same_id_as_the_cli_and_coreutils(tmp_path: Path) -> None:
    root = tmp_path / "tricky"
    root.mkdir()
    tricky(root, tmp_path / "outside")
    # The `find` recipe's rules: links left out, nothing ignored.
    d = datapilot.hash_directory(root, symlinks="skip", ignore=False)
    assert d.digest == coreutils_id(root)
    assert d.file_count == 9
    assert d.skipped == [
        ("a-fifo", "not_regular"),
        ("dangling", "symlink"),
        ("link-outside", "symlink"),
        ("link-to-dir", "symlink"),
        ("link-to-file", "symlink"),
    ]
    files = d.files()
    assert [f["path"] for f in files] == sorted((f["path"] for f in files), key=lambda p: p.encode())
    assert ".git/HEAD" in {f["path"] for f in files}
    # The CLI's rules: .git/ left out, links refused unless followed; the same id as the CLI.
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(root)
    assert e.value.code == "symlink_refused" and e.value.path == "dangling"
    os.remove(root / "dangling")
    followed = datapilot.hash_directory(root, symlinks="follow-outside-root")
    assert followed.excluded == 1 and ".git/HEAD" not in {f["path"] for f in followed.files()}
    assert "link-outside/secret.txt" in {f["path"] for f in followed.files()}
    assert followed.digest == cli_id(root, "--symlinks-outside-root")
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(root, symlinks="follow")
    assert e.value.code == "symlink_outside_root" and e.value.path == "link-outside"


def test_the_formats_doc_example(tmp_path: Path) -> None:
    root = tmp_path / "ex"
    (root / "train").mkdir(parents=True)
    (root / "donn\u00e9es").mkdir()
    (root / "README.md").write_text("DataPilot example\n")
    (root / "train/data.csv").write_text("id,label\n1,cat\n2,dog\n")
    (root / "train/.keep").write_text("")
    (root / "donn\u00e9es/\u00e9.csv").write_text("x,y\n1,2\n")
    expected = "sha256:afe734752faaa535f81c97db93a1cd2d5a7bbc8984872803a09287cb9d6ff8f3"
    assert datapilot.hash_directory(root).digest == expected == coreutils_id(root)


def test_registration_uses_that_id(admin: datapilot.Client, tmp_path: Path) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    tricky(root, tmp_path / "outside")
    reg = admin.register_dataset(root, dataset="tricky", note="with symlinks", symlinks="skip", ignore=False)
    assert reg["created"] and reg["version"]["digest"] == coreutils_id(root)
    assert reg["version"]["file_count"] == 9
    assert [p for p, _ in reg["skipped"]] == ["a-fifo", "dangling", "link-outside", "link-to-dir", "link-to-file"]
    again = admin.register_dataset(root, dataset="tricky", symlinks="skip", ignore=False)
    assert not again["created"] and again["dataset_id"] == reg["dataset_id"]


def test_refuse_policy_and_bad_directories(tmp_path: Path) -> None:
    root = tmp_path / "links"
    root.mkdir()
    tricky(root, tmp_path / "outside")
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(root)
    assert e.value.code == "symlink_refused" and e.value.path == "dangling"
    assert '"dangling"' in str(e.value) and isinstance(e.value, OSError)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(empty)
    assert e.value.code == "empty_dataset"
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(tmp_path / "missing")
    assert e.value.code == "io_error" and "missing" in str(e.value)
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(root / "README.md")
    assert e.value.code == "not_a_directory"
    (empty / "back\\slash").write_text("x")
    with pytest.raises(datapilot.LocalFileError) as e:
        datapilot.hash_directory(empty)
    assert e.value.code == "invalid_path" and "backslash" in str(e.value)
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.hash_directory(root, symlinks="sideways")  # type: ignore[arg-type]


def test_hashing_releases_the_gil_and_reports_progress(tmp_path: Path) -> None:
    import threading

    root = tmp_path / "big"
    root.mkdir()
    chunk = os.urandom(1 << 20)
    for i in range(4):
        with open(root / f"part-{i}", "wb") as f:
            for _ in range(48):
                f.write(chunk)
    reports: "list[tuple[int, int, int, int]]" = []
    ticks = [0]
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        d = datapilot.hash_directory(root, progress=lambda *p: reports.append(p))
    finally:
        done.set()
        t.join()
    assert d.total_bytes == 4 * 48 << 20
    assert reports and reports[-1] == (d.total_bytes, d.total_bytes, 4, 4)
    assert ticks[0] > 1_000, f"only {ticks[0]} ticks while hashing: the GIL was held"


def test_progress_callback_errors_stop_hashing(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "a").write_bytes(b"a" * 1000)

    def stop(*_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        datapilot.hash_directory(root, progress=stop)
