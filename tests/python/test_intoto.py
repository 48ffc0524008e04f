"""A bundle linked to what it attests, checked with the in-toto ecosystem's own libraries instead
of the project's verifiers (issue 12): securesystemslib (the crypto library of in-toto and TUF)
verifies the DSSE envelope with the ledger key as published in SPKI PEM by ``GET /v1/keys``;
in-toto-attestation (the in-toto Attestation Framework's Python bindings) parses and validates
the Statement; the run's artifact is then found among the subjects by the SHA-256 of the file
on disk, and its input dataset version by ``dirHash`` (Go's dirhash ``Hash1`` digest,
recomputed here from the files, in hex). A changed file or a changed statement finds nothing.

cosign (``verify-blob-attestation --key``) would do the same for a blob, but it is a Go
program: no registry this project installs from ships it, and Debian has no package of it."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

import datapilot
from conftest import ADMIN, Server, make_run

PREDICATE_TYPE = "https://animus.dev/datapilot/evidence-bundle/v1"


def published_keys(server: Server) -> List[SSlibKey]:
    """The ledger keys from ``/v1/keys`` as PEM, under their DSSE key id (the note key id)."""
    req = urllib.request.Request(f"{server.url}/v1/keys", headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        keys = json.load(r)["keys"]
    return [
        SSlibKey.from_crypto(
            load_pem_public_key(k["public_key_pem"].encode()),  # type: ignore[arg-type]
            keyid=k["verifier"].split("+")[1],
        )
        for k in keys
    ]


def dirhash1_hex(root: Path) -> str:
    """Go's golang.org/x/mod/sumdb/dirhash Hash1 of the files under ``root``, as hex: SHA-256
    of the sorted lines ``<sha256 hex of the file>  <slash path>\\n``."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    summary = "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    return hashlib.sha256(summary.encode()).hexdigest()


def matching(statement: Statement, algorithm: str, digest: str) -> List[str]:
    """Names of the subjects whose ``algorithm`` digest is ``digest``: how in-toto consumers
    link an attestation to a file."""
    return [s.name for s in statement.pb.subject if s.digest.get(algorithm) == digest]


def open_statement(envelope_json: Dict[str, Any], keys: List[SSlibKey]) -> Statement:
    # from_dict rewrites the signature dicts it is given (base64 to hex): give it a copy.
    envelope = Envelope.from_dict(copy.deepcopy(envelope_json))
    envelope.verify(keys, 1)
    assert envelope.payload_type == "application/vnd.in-toto+json"
    pb = json_format.ParseDict(json.loads(envelope.payload), statement_pb2.Statement())  # type: ignore[attr-defined]
    statement = Statement.copy_from_pb(pb)
    statement.validate()
    return statement


@pytest.fixture()
def run_files(admin: datapilot.Client, tmp_path: Path) -> Dict[str, Any]:
    with make_run(admin, tmp_path, "intoto") as run:
        (tmp_path / "model.bin").write_bytes(b"weights" * 1000)
        run.log_artifact(tmp_path / "model.bin")
    bundle = admin.export_run_evidence(run.id, tmp_path / "evidence.zip")
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        envelope = json.loads(z.read("evidence.dsse.json"))
    return {"envelope": envelope, "model": tmp_path / "model.bin", "data": tmp_path / "data-intoto"}


def test_subjects_match_the_artifact_and_dataset_by_digest_with_in_toto_tools(
    server: Server, run_files: Dict[str, Any]
) -> None:
    keys = published_keys(server)
    statement = open_statement(run_files["envelope"], keys)
    assert statement.pb.predicate_type == PREDICATE_TYPE

    model = hashlib.sha256(run_files["model"].read_bytes()).hexdigest()
    names = matching(statement, "sha256", model)
    assert len(names) == 1 and names[0].startswith("artifact:"), names
    data = dirhash1_hex(run_files["data"])
    names = matching(statement, "dirHash", data)
    assert len(names) == 1 and names[0].startswith("dataset_version:"), names
    assert names[0].endswith(f"@sha256:{data}"), "the dirHash is the version's DPM-1 hex"

    # Another file, or another directory, matches no subject.
    assert matching(statement, "sha256", hashlib.sha256(b"weights" * 999).hexdigest()) == []
    (run_files["data"] / "extra.csv").write_text("id\n")
    assert matching(statement, "dirHash", dirhash1_hex(run_files["data"])) == []


def test_a_changed_statement_or_a_foreign_key_is_refused_by_securesystemslib(
    server: Server, run_files: Dict[str, Any]
) -> None:
    keys = published_keys(server)
    env = copy.deepcopy(run_files["envelope"])
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["subject"][0]["digest"] = {"sha256": "00" * 32}
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(VerificationError):
        open_statement(env, keys)
    # The same key id with another key's PEM does not verify either.
    other = SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key(), keyid=keys[0].keyid)
    with pytest.raises(VerificationError):
        open_statement(run_files["envelope"], [other])
