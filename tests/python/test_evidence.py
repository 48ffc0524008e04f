"""Evidence bundles of the real server verified offline by the package: a good one passes, a
tampered, truncated or foreign-signed one is refused with VerificationError."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

import datapilot
from conftest import Server, make_run


@pytest.fixture()
def bundle(admin: datapilot.Client, tmp_path: Path) -> bytes:
    with make_run(admin, tmp_path, "evidence") as run:
        for step in range(100):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 100}, step=step)
        (tmp_path / "model.bin").write_bytes(b"weights" * 1000)
        run.log_artifact(tmp_path / "model.bin")
    return admin.export_run_evidence(run.id, tmp_path / "evidence.zip")


def test_a_real_bundle_verifies(admin: datapilot.Client, bundle: bytes, tmp_path: Path) -> None:
    keys = admin.verifier_keys()
    for source in (bundle, tmp_path / "evidence.zip", str(tmp_path / "evidence.zip")):
        report = datapilot.verify_evidence_bundle(source, trusted_keys=keys)
        assert report["ok"] and all(c["passed"] for c in report["checks"])
        assert len(report["checks"]) == 10


def member_data_offsets(data: bytes) -> "list[tuple[str, int]]":
    """The middle byte of every member's stored data (never padding, always read)."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            header = data[info.header_offset : info.header_offset + 30]
            name_len = int.from_bytes(header[26:28], "little")
            extra_len = int.from_bytes(header[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            if info.compress_size >= 2:
                out.append((info.filename, start + info.compress_size // 2))
    return out


def test_tampered_bundles_are_refused(admin: datapilot.Client, bundle: bytes) -> None:
    keys = admin.verifier_keys()
    offsets = member_data_offsets(bundle)
    assert len(offsets) >= 5, offsets
    for name, at in offsets + [("local header", 0)]:
        tampered = bytearray(bundle)
        tampered[at] ^= 0x01
        with pytest.raises(datapilot.VerificationError) as e:
            datapilot.verify_evidence_bundle(bytes(tampered), trusted_keys=keys)
        assert e.value.code == "verification_failed", name
        assert e.value.report is not None and e.value.report["ok"] is False, name
    with pytest.raises(datapilot.VerificationError):
        datapilot.verify_evidence_bundle(bundle[: len(bundle) // 2], trusted_keys=keys)


def test_a_bundle_signed_by_another_ledger_is_refused(bundle: bytes, tmp_path: Path) -> None:
    other = Server(tmp_path / "other-ledger")
    try:
        from conftest import ADMIN

        foreign = datapilot.Client(other.url, ADMIN).verifier_keys()
    finally:
        other.stop()
    with pytest.raises(datapilot.VerificationError) as e:
        datapilot.verify_evidence_bundle(bundle, trusted_keys=foreign)
    failed = [c["name"] for c in e.value.report["checks"] if not c["passed"]] if e.value.report else []
    assert "dsse.signature" in failed or "checkpoint.signature" in failed, failed


def test_bad_keys_are_refused_before_verifying(bundle: bytes) -> None:
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.verify_evidence_bundle(bundle, trusted_keys=[])
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.verify_evidence_bundle(bundle, trusted_keys=["not a key"])
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.verify_evidence_bundle(bundle, trusted_keys="origin+abcd+key")
