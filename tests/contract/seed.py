"""Seeds a fresh reference server with one of each object so schemathesis reaches real data.

Usage: seed.py BASE_URL ADMIN_TOKEN. Standard library only.
"""
import hashlib
import json
import sys
import urllib.request

base, token = sys.argv[1], sys.argv[2]


def call(method, path, body=None, content_type="application/json"):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


content = b"seed file\n"
sha = hashlib.sha256(content).hexdigest()
line = f"{sha}  data/seed.txt\n".encode()
digest = "sha256:" + hashlib.sha256(line).hexdigest()

call("PUT", "/v1/policy", {"required_gates": ["schema"]})
ds = call("POST", "/v1/datasets", {"name": "seed", "description": "seeded for the contract test"})
call("POST", f"/v1/datasets/{ds['id']}/versions",
     {"digest": digest, "files": [{"path": "data/seed.txt", "sha256": sha, "size": len(content)}]})
call("POST", f"/v1/datasets/{ds['id']}/versions/{digest}/gates", {"gate": "schema", "status": "passed"})
run = call("POST", "/v1/runs", {
    "name": "seed run",
    "inputs": [{"dataset_id": ds["id"], "digest": digest}],
    "git_commit": "0" * 40,
    "image_digest": "sha256:" + "1" * 64,
})["run"]
call("POST", f"/v1/runs/{run['id']}/metrics", {"points": [{"name": "loss", "step": 0, "value": 0.5}]})
art = b"artifact bytes"
call("POST", f"/v1/runs/{run['id']}/artifacts?name=model.bin&sha256={hashlib.sha256(art).hexdigest()}",
     art, content_type="application/octet-stream")
print(f"seeded dataset {ds['id']} version {digest} run {run['id']}", file=sys.stderr)
