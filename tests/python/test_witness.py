"""Witness policies in the Python SDK: a checkpoint needs k of n trusted witnesses'
cosignatures, and a bundle is held to the server's cosigned checkpoint, offline (the caller
brings the note and proof) and through the client (which fetches them), with the same
verdicts. The witness is a C2SP tlog-witness written here with ``cryptography`` (Ed25519,
already a pinned test dependency); the server submits its checkpoints to it (``--witness``)."""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import datapilot
from conftest import ADMIN, Server, make_run


class WitnessKey:
    """A cosignature/v1 key: its vkey and signature lines over a checkpoint's text."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        pub = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
        encoded = base64.b64encode(b"\x04" + pub).decode()
        self.vkey = f"{name}+{self.key_id.hex()}+{encoded}"

    def cosign(self, text: str) -> str:
        now = int(time.time())
        sig = self.key.sign(f"cosignature/v1\ntime {now}\n{text}".encode())
        raw = self.key_id + struct.pack(">Q", now) + sig
        return f"\u2014 {self.name} {base64.b64encode(raw).decode()}\n"


W1 = WitnessKey("witness.py/w1")
W2 = WitnessKey("witness.py/w2")


@pytest.fixture()
def witnessed(tmp_path: Path) -> Iterator[Tuple[Server, str]]:
    """A server that has W1 cosign each checkpoint it publishes, and W1's HTTP endpoint."""

    class AddCheckpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the tlog-witness add-checkpoint call
            body = self.rfile.read(int(self.headers["content-length"])).decode()
            note = body[body.index("\n\n") + 2 :]
            text = note[: note.index("\n\n") + 1]
            out = W1.cosign(text).encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), AddCheckpoint)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}"
    server = Server(tmp_path / "server-data", ["--witness", f"{url}={W1.vkey}"])
    try:
        yield server, url
    finally:
        server.stop()
        http.shutdown()


def test_checkpoints_and_bundles_are_held_to_k_of_n_witnesses(
    witnessed: Tuple[Server, str], tmp_path: Path
) -> None:
    server, _ = witnessed
    admin = datapilot.Client(server.url, ADMIN, timeout=10.0)
    keys = admin.verifier_keys()
    early = admin.checkpoint()
    with make_run(admin, tmp_path, "witnessed") as run:
        run.log_metrics({"loss": 0.5}, step=0)
    bundle = admin.export_run_evidence(run.id)
    note = admin.checkpoint()

    # Checkpoints: 1 of 1 and 1 of 2 pass, 2 of 2 does not; no policy opens the note alone.
    ok = datapilot.verify_checkpoint(note, trusted_keys=keys, witnesses=[W1.vkey])
    assert ok["cosigned_by"] == ["witness.py/w1"] and ok["tree_size"] > 0
    assert datapilot.verify_checkpoint(note, trusted_keys=keys, witnesses=[W1.vkey, W2.vkey], witness_quorum=1)
    with pytest.raises(datapilot.VerificationError) as e:
        datapilot.verify_checkpoint(note, trusted_keys=keys, witnesses=[W1.vkey, W2.vkey])
    assert e.value.code == "verification_failed" and e.value.sent == "no"
    assert datapilot.verify_checkpoint(note, trusted_keys=keys)["cosigned_by"] == []

    # A bundle offline, against the server's cosigned note at its size (no proof needed).
    size = datapilot.verify_evidence_bundle(bundle, trusted_keys=keys)["summary"]["tree_size"]
    assert ok["tree_size"] == size
    report = datapilot.verify_evidence_bundle(
        bundle, trusted_keys=keys, witnesses=[W1.vkey], witnessed_checkpoint=note
    )
    witnessed_check = next(c for c in report["checks"] if c["name"] == "witnessed")
    assert witnessed_check["passed"], report
    with pytest.raises(datapilot.VerificationError) as e:
        datapilot.verify_evidence_bundle(
            bundle, trusted_keys=keys, witnesses=[W1.vkey, W2.vkey], witnessed_checkpoint=note
        )
    assert "1 of the required 2" in str(e.value)
    # The bundle's own note carries no cosignature: it cannot meet the policy.
    own = report["summary"]["checkpoint"]
    with pytest.raises(datapilot.VerificationError):
        datapilot.verify_evidence_bundle(bundle, trusted_keys=keys, witnesses=[W1.vkey], witnessed_checkpoint=own)

    # Through the client, after the log grew: it fetches the later cosigned note and the proof.
    admin.create_dataset("later")
    report = admin.verify_evidence_bundle(bundle, trusted_keys=keys, witnesses=[W1.vkey], last_checkpoint=early)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["witnessed"]["passed"] and "prefix of the one at size" in checks["witnessed"]["reason"]
    assert checks["consistency"]["passed"], checks["consistency"]
    with pytest.raises(datapilot.VerificationError):
        admin.verify_evidence_bundle(bundle, trusted_keys=keys, witnesses=[W1.vkey, W2.vkey])
    # Offline with the later note but no proof: the bundle is not shown to be a prefix.
    with pytest.raises(datapilot.VerificationError) as e:
        datapilot.verify_evidence_bundle(
            bundle, trusted_keys=keys, witnesses=[W1.vkey], witnessed_checkpoint=admin.checkpoint()
        )
    assert "not a prefix" in str(e.value)


def test_witness_arguments_are_checked_before_anything_is_read(admin: datapilot.Client) -> None:
    keys = admin.verifier_keys()
    cases = [
        dict(witnesses=[W1.vkey]),  # offline: a policy needs the cosigned note
        dict(witnessed_checkpoint="x"),  # a note needs witnesses
        dict(witnesses=[W1.vkey], witness_quorum=2, witnessed_checkpoint="x"),
        dict(witness_quorum=1),
        dict(witnesses=["not a vkey"], witnessed_checkpoint="x"),
        dict(witnesses=W1.vkey, witnessed_checkpoint="x"),  # one string, not a list
    ]
    for kwargs in cases:
        with pytest.raises(datapilot.InvalidArgumentError):
            datapilot.verify_evidence_bundle(b"not read", trusted_keys=keys, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(datapilot.InvalidArgumentError):
        admin.verify_evidence_bundle(b"not read", trusted_keys=keys, witnessed_checkpoint="x")
