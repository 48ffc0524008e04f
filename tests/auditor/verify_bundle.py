#!/usr/bin/env python3
"""Independent verifier of DataPilot evidence bundles, written from docs/formats.md alone.

    python3 verify_bundle.py BUNDLE.zip VERIFIER_KEY [VERIFIER_KEY ...]
        [--witnessed NOTE_FILE --witness VKEY [--witness VKEY ...] [--witness-quorum K]
         [--witness-proof BASE64_HASH ...]]

VERIFIER_KEY is a pinned key string `<name>+<8 hex key id>+<base64(0x01 || public key)>`
(`verifier` of GET /v1/keys, obtained out of band). Runs the checks of docs/formats.md
section 7 in order, prints one line per check, and exits 0 only if every check passed.
With --witnessed, also check 12 (`witnessed`): NOTE_FILE is a checkpoint of the same log
cosigned by at least K (default: all) of the witnesses VKEY (C2SP cosignature/v1 keys
`<name>+<8 hex key id>+<base64(0x04 || public key)>`, e.g. the server's /checkpoint), and
the --witness-proof hashes (GET /v1/ledger/proofs/consistency?from=<bundle size>&to=<its
size>) prove the bundle's tree a prefix of it.
Python 3.9+, standard library only; Ed25519 uses the `cryptography` package when it is
installed and the pure-Python RFC 8032 code below otherwise. Nothing is ever skipped.
"""
import base64, hashlib, json, struct, sys, zlib

MEMBERS = ["evidence.dsse.json", "ledger/checkpoint.txt", "ledger/proofs.jsonl", "audit.jsonl",
           "lineage.json", "policy.json", "report.html"]
MAX_ARCHIVE, MAX_ENTRIES, MAX_ENTRY, MAX_TOTAL = 64 << 20, 64, 64 << 20, 256 << 20  # SDK defaults
MAX_RATIO, RATIO_FLOOR = 200, 1 << 20
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://animus.dev/datapilot/evidence-bundle/v1"

class Bad(Exception): pass

def need(ok, why):
    if not ok: raise Bad(why)

def sha256(b): return hashlib.sha256(b).digest()

def b64(s, size=None):
    """Strict standard base64 (padding, no stray bits); optionally of exactly `size` bytes."""
    need(isinstance(s, str), "expected a base64 string")
    raw = base64.b64decode(s, validate=True)
    need(base64.b64encode(raw).decode() == s and (size is None or len(raw) == size),
         f"{s[:20]!r} is not {size or 'some'} bytes of canonical base64")
    return raw

# --- Ed25519, strict (RFC 8032; canonical S, no small-order key or R, as ed25519-dalek) ----
P, L = 2**255 - 19, 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

def _add(a, b):  # extended coordinates, RFC 8032 5.1.4 (complete: also doubles)
    A, B = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    C, Dd = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)

def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1: q = _add(q, p)
        p, s = _add(p, p), s >> 1
    return q

def _encode(p):
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")

def _decode(b):  # RFC 8032 5.1.3; None for a non-canonical or off-curve encoding
    y = int.from_bytes(b, "little"); sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P: return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P: x = x * SQRT_M1 % P
    if (x * x - x2) % P or (x == 0 and sign): return None
    if x & 1 != sign: x = P - x
    return (x, y, 1, x * y % P)

BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))
IDENTITY = _encode((0, 1, 1, 0))
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    BACKEND = "cryptography"
except ImportError:
    Ed25519PublicKey, BACKEND = None, "pure-Python RFC 8032"

def ed25519_verify(pub, msg, sig):
    if len(pub) != 32 or len(sig) != 64: return False
    A, R, s = _decode(pub), _decode(sig[:32]), int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= L: return False
    if _encode(_mul(8, A)) == IDENTITY or _encode(_mul(8, R)) == IDENTITY: return False
    if Ed25519PublicKey is not None:
        try: Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg); return True
        except Exception: return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    return _encode(_add(_mul(s, BASE), _mul(k, (P - A[0], A[1], 1, P - A[3])))) == sig[:32]

# --- JSON: strict parsing and RFC 8785 (JCS) for values without floats -----------------------
def _no_dupes(pairs):
    need(len({k for k, _ in pairs}) == len(pairs), "duplicate JSON member name")
    return dict(pairs)

def _no_float(s): raise Bad(f"number {s} is not an integer")

def parse(b): return json.loads(b.decode("utf-8"), object_pairs_hook=_no_dupes,
                                parse_float=_no_float, parse_constant=_no_float)

def jcs(v):
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs(k) + ":" + jcs(v[k]) for k in keys) + "}"
    if isinstance(v, list): return "[" + ",".join(map(jcs, v)) + "]"
    need(not isinstance(v, int) or isinstance(v, bool) or abs(v) < 2**53, f"{v} is above 2^53-1")
    return json.dumps(v, ensure_ascii=False)

def canonical(b, what):
    v = parse(b)
    need(jcs(v).encode("utf-8") == b, f"{what} is not canonical (RFC 8785) JSON")
    return v

def shape(obj, what, spec):
    """Requires a JSON object with these members, e.g. "seq:int data:any" (int: 0 to 2^53-1)."""
    need(isinstance(obj, dict), f"{what} is not a JSON object")
    for key, typ in (item.split(":") for item in spec.split()):
        v = obj.get(key)
        need({"int": type(v) is int and v >= 0, "str": isinstance(v, str), "any": key in obj,
              "list": isinstance(v, list), "dict": isinstance(v, dict)}[typ],
             f"{what}: {key} is missing or not a JSON {typ}")
    return obj

def jsonl(name, b):
    if not b: return []
    need(b.endswith(b"\n"), f"{name} does not end with a newline")
    lines = b[:-1].split(b"\n")
    need(b"" not in lines, f"{name} has an empty line")
    return lines

# --- The checks, in the order of docs/formats.md section 7 -----------------------------------
def archive_safe(zb):
    """Limits, safe names, and the one canonical zip layout the server writes."""
    need(len(zb) <= MAX_ARCHIVE, f"archive is larger than {MAX_ARCHIVE} bytes")
    need(len(zb) >= 22 and zb[-22:-18] == b"PK\5\6", "no end record at the very end")
    disks, cd_disk, here, total, cd_size, cd_off, comment = struct.unpack("<HHHHIIH", zb[-18:])
    need(disks == cd_disk == comment == 0 and here == total, "multi-disk archive or a comment")
    need(cd_off + cd_size == len(zb) - 22, "central directory does not end at the end record")
    need(total <= MAX_ENTRIES, f"{total} entries, more than {MAX_ENTRIES}")
    members, pos, next_local, sum_size = {}, cd_off, 0, 0
    for i in range(total):
        (sig, made_by, version, flags, method, mtime, mdate, crc, csize, size, nlen, xlen, clen,
         disk, internal, external, off) = struct.unpack("<IHHHHHHIIIHHHHHII", zb[pos:pos + 46])
        raw_name = zb[pos + 46:pos + 46 + nlen]
        need(sig == 0x02014B50 and xlen == clen == disk == internal == 0,
             f"entry {i}: no central record, or extra field, comment or attributes")
        need(flags & ~0x0800 == 0, f"entry {i}: flags {flags:#06x} (encryption, data descriptor)")
        need(mtime == 0 and mdate == 0x0021, f"entry {i} is not dated 1980-01-01 00:00:00")
        need(made_by >> 8 == 3 and version <= made_by & 0xFF <= 63, f"entry {i}: version made by")
        need(external >> 16 == 0o100644, f"entry {i} is not a regular file with mode 0644")
        need(0xFFFFFFFF not in (crc, csize, size), f"entry {i} uses Zip64")
        need(off == next_local, f"entry {i} does not start where the previous one ended")
        need(struct.unpack("<IHHHHHIIIHH", zb[off:off + 30]) == (0x04034B50, version, flags,
             method, mtime, mdate, crc, csize, size, nlen, 0) and zb[off + 30:][:nlen] == raw_name,
             f"entry {i}: local header differs from its central record")
        name = raw_name.decode("utf-8")
        need(0 < nlen <= 255 and not any(c in "\\:" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F
             for c in name) and not {"", ".", ".."} & set(name.split("/")),
             f"member {name!r}: unsafe name")
        need(name not in members, f"member {name!r} appears twice")
        need(method in (0, 8), f"member {name!r}: compression method {method}")
        # Bombs are refused from the declared sizes, before inflating a byte.
        need(size <= MAX_ENTRY, f"member {name!r} declares more than {MAX_ENTRY} bytes")
        need(size <= RATIO_FLOOR or size <= csize * MAX_RATIO, f"member {name!r}: bomb ratio")
        need(method == 8 or size == csize, f"member {name!r}: stored with two sizes")
        sum_size += size
        need(sum_size <= MAX_TOTAL, f"members declare more than {MAX_TOTAL} bytes in all")
        data = zb[off + 30 + nlen:off + 30 + nlen + csize]
        if method == 8: data = zlib.decompressobj(-15).decompress(data, size + 1)
        need(len(data) == size and zlib.crc32(data) == crc, f"member {name!r}: size or CRC-32")
        members[name] = data
        next_local, pos = off + 30 + nlen + csize, pos + 46 + nlen
    need(next_local == cd_off and pos == len(zb) - 22, "bytes between entries and directory")
    return members, f"{len(members)} members within limits, canonical zip layout"

def archive_members(m):
    """The seven members in the format's order, then ext/ members by name (signed through the
    statement, not interpreted). The order is not signed: checked here."""
    missing = [n for n in MEMBERS if n not in m]
    extra = [n for n in m if n not in MEMBERS and not n.startswith("ext/")]
    need(not missing and not extra, f"missing {missing}, unexpected {extra}")
    names, n = list(m), len(MEMBERS)
    need(names[:n] == MEMBERS and names[n:] == sorted(names[n:], key=str.encode),
         f"members are out of order: {names}; the format's order is {MEMBERS}, then ext/ by name")
    ext = f", and {len(names) - n} ext/ member(s), signed but not interpreted" if names[n:] else ""
    return None, f"the {n} bundle members, in order{ext}"

def dsse_signature(m, keys):
    need("evidence.dsse.json" in m, "member evidence.dsse.json is missing")
    env = canonical(m["evidence.dsse.json"], "evidence.dsse.json")  # unsigned, but fixed bytes
    need(isinstance(env, dict) and set(env) == {"payload", "payloadType", "signatures"},
         "not a DSSE envelope")
    need(env["payloadType"] == PAYLOAD_TYPE, f"payload type is {env['payloadType']!r}")
    need(isinstance(env["signatures"], list) and 1 <= len(env["signatures"]) <= 16,
         "needs 1 to 16 signatures")
    payload = b64(env["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    verified = False
    for s in env["signatures"]:
        need(isinstance(s, dict) and "sig" in s and set(s) <= {"keyid", "sig"}, "bad signature")
        kid = s.get("keyid", "")
        need(isinstance(kid, str), "keyid is not a string")
        candidates = [k for k in keys if kid in ("", k[1].hex())]  # other keys are ignored
        if candidates and any(ed25519_verify(k[2], pae, b64(s["sig"])) for k in candidates):
            verified = True
        else: need(not candidates or kid == "", f"signature by key {kid} does not verify")
    need(verified, "envelope has no signature by a pinned key")
    return payload, "signed by a pinned key"

def statement_format(payload):
    st = shape(canonical(payload, "statement"), "statement",
               "_type:str subject:list predicateType:str predicate:dict")
    need(st["_type"] == STATEMENT_TYPE and st["predicateType"] == PREDICATE_TYPE,
         "wrong _type or predicateType")
    p = shape(st["predicate"], "predicate",
              "scope:dict exported_at:str exporter:str origin:str tree_size:int root_hash:str")
    b64(p["root_hash"], 32)
    scope = shape(p["scope"], "scope", "kind:str id:str")
    for sub in st["subject"]:
        need(all(isinstance(v, str) for v in shape(sub, "subject", "name:str digest:dict")
                 ["digest"].values()), "subject digests must be strings")
    return st, f"in-toto Statement v1 for {scope['kind']}:{scope['id']}"

def linked_digest(s):
    """A subject naming a lineage node (members have no ':'): artifact:… with exactly a sha256,
    dataset_version:… with exactly a dirHash, 64 lowercase hex each."""
    alg = ("sha256" if s["name"].startswith("artifact:") else
           "dirHash" if s["name"].startswith("dataset_version:") else None)
    need(alg, f"subject {s['name']} is neither a member nor an artifact or dataset version")
    h = s["digest"].get(alg, "")
    need(len(s["digest"]) == 1 and len(h) == 64 and all(c in "0123456789abcdef" for c in h),
         f"subject {s['name']} must have exactly a {alg} digest of 64 lowercase hex digits")
    return h

def statement_subjects(m, st):
    names = [s["name"] for s in st["subject"]]
    need(names == sorted(set(names), key=str.encode), "subjects are not sorted and unique")
    for s in st["subject"]:
        if ":" in s["name"]:
            linked_digest(s); continue
        need(s["name"] != "evidence.dsse.json" and s["name"] in m, f"{s['name']} is missing")
        need(s["digest"].get("sha256") == hashlib.sha256(m[s["name"]]).hexdigest(),
             f"{s['name']} does not match its signed sha256")
    unlisted = [n for n in m if n != "evidence.dsse.json" and n not in names]
    need(not unlisted, f"member {unlisted} is not listed in the statement")
    linked = sum(":" in n for n in names)
    return None, (f"{len(names) - linked} members match their signed digests; {linked} artifact "
                  f"and dataset version subject(s) well formed")

def open_note(note, keys):
    """A C2SP checkpoint note signed by a pinned key: ((origin, size, root), text, lines)."""
    need(len(note.encode()) <= 1_000_000 and all(c == "\n" or c >= " " for c in note),
         "note too large or with a control character")
    need("\n\n" in note, "no blank line before the signatures")
    text, sigs = note[:note.rindex("\n\n") + 1], note[note.rindex("\n\n") + 2:]
    need(sigs.endswith("\n"), "the last signature line must end with a newline")
    lines, signers, parsed = sigs[:-1].split("\n"), set(), []
    need(len(lines) <= 100, "more than 100 signature lines")
    for line in lines:
        need(line.startswith("\u2014 ") and " " in line[2:], f"bad signature line {line!r}")
        name, sig = line[2:].split(" ", 1)
        need(name and not any(c.isspace() or c == "+" for c in name), f"bad key name {name!r}")
        raw = b64(sig)
        need(len(raw) >= 5, "signature shorter than a key id and one byte")
        parsed.append((name, raw))
        for kname, kid, pub in keys:  # only the first line of a pinned key counts
            if (name, raw[:4]) == (kname, kid) and (name, kid) not in signers:
                need(ed25519_verify(pub, text.encode(), raw[4:]), f"{name}: bad signature")
                signers.add((name, kid))
    need(signers, "no signature by a pinned key")
    origin, size, root, *extensions = text[:-1].split("\n")
    need(origin and size.isascii() and size.isdigit() and str(int(size)) == size
         and int(size) < 2**64 and "" not in extensions, "malformed checkpoint body")
    need(origin in {n for n, _ in signers}, f"no pinned key named {origin} signed it")
    return (origin, int(size), b64(root, 32)), text, parsed

def checkpoint_signature(m, keys):
    need("ledger/checkpoint.txt" in m, "member ledger/checkpoint.txt is missing")
    cp, _, _ = open_note(m["ledger/checkpoint.txt"].decode("utf-8"), keys)
    origin, size, _ = cp
    return cp, f"{origin} at size {size} signed by a pinned key"

def checkpoint_matches(st, cp):
    p = st["predicate"]
    need((p["origin"], p["tree_size"], b64(p["root_hash"], 32)) == cp,
         "the predicate's origin, tree size or root differs from the checkpoint's")
    return None, "origin, tree size and root agree"

def inclusion_proofs(m, cp):
    audit = jsonl("audit.jsonl", m["audit.jsonl"])
    proofs = jsonl("ledger/proofs.jsonl", m["ledger/proofs.jsonl"])
    need(audit and len(audit) == len(proofs), f"{len(audit)} audit, {len(proofs)} proof lines")
    events, (_, size, root) = {}, cp
    for n, (leaf, line) in enumerate(zip(audit, proofs), 1):
        ev = shape(canonical(leaf, f"audit line {n}"), f"audit line {n}",
                   "v:int seq:int time:str actor:dict action:str subject:str data:any")
        shape(ev["actor"], f"audit line {n} actor", "kind:str id:str role:str")
        need(ev["v"] == 1 and ev["seq"] > max(events, default=-1), f"audit line {n}: v or seq")
        pr = shape(canonical(line, f"proof line {n}"), f"proof line {n}",
                   "hashes:list leaf_hash:str seq:int tree_size:int")
        need((pr["seq"], pr["tree_size"]) == (ev["seq"], size), f"proof line {n}: seq or size")
        fn, sn, r = ev["seq"], size - 1, sha256(b"\x00" + leaf)
        need(b64(pr["leaf_hash"], 32) == r, f"proof line {n}: leaf_hash is not audit line {n}'s")
        need(fn < size, f"seq {fn} is not below the tree size")
        for h in pr["hashes"]:  # RFC 9162 section 2.1.3.2
            need(sn > 0, f"seq {ev['seq']}: proof too long")
            if fn & 1 or fn == sn:
                r = sha256(b"\x01" + b64(h, 32) + r)
                while not fn & 1 and fn: fn, sn = fn >> 1, sn >> 1
            else: r = sha256(b"\x01" + r + b64(h, 32))
            fn, sn = fn >> 1, sn >> 1
        need(sn == 0 and r == root, f"event seq {ev['seq']} is not proven in the tree")
        events[ev["seq"]] = ev
    return events, f"{len(events)} events proven included at tree size {size}"

def backs(edge, ev):
    """Is `ev` the event that creates `edge` (its action, on the edge's run, naming the
    other end in its data)? Raises Bad with the reason if not."""
    kind, frm, to, data = edge["kind"], edge["from"], edge["to"], ev["data"]
    get = lambda k: data.get(k) if isinstance(data, dict) else None
    names = lambda prefix, k: isinstance(get(k), str) and prefix + get(k) == to
    def expect(action, run):
        need(ev["action"] == action, f"is {ev['action']}, not {action}")
        need(ev["subject"] == run, f"is about {ev['subject']}, not {run}")
    def lists(key, node):  # data[key] has {"dataset_id", "digest"} of this version node
        ds, at, digest = node[len("dataset_version:"):].partition("@")
        return node.startswith("dataset_version:") and at and isinstance(get(key), list) and any(
            isinstance(i, dict) and (i.get("dataset_id"), i.get("digest")) == (ds, digest)
            for i in get(key))
    if kind == "input":
        expect("run.create", to)
        need(lists("inputs", frm), f"does not list {frm} as an input")
    elif kind == "built_from":
        expect("run.create", frm)
        need(names("git_commit:", "git_commit"), f"does not name {to}")
    elif kind == "executed_in":
        expect("run.create", frm)
        need(names("image:", "image_digest"), f"does not name {to}")
    elif kind == "produced" and to.startswith("artifact:"):
        expect("artifact.upload", frm)
        need(names("artifact:", "artifact_id"), f"does not upload {to}")
    elif kind == "produced":
        expect("run.finish", frm)
        need(lists("outputs", to), f"does not list {to} as an output")
    else: raise Bad(f"cannot back an edge of unknown kind {kind}")

def lineage_edges(m, events, st):
    lin = shape(canonical(m["lineage.json"], "lineage.json"), "lineage", "nodes:list edges:list")
    ids = [shape(n, "node", "id:str kind:str label:str")["id"] for n in lin["nodes"]]
    need(ids == sorted(set(ids)), "nodes are not sorted and unique")
    need(all(n["id"].startswith(n["kind"] + ":") for n in lin["nodes"]), "node id without kind")
    scope = st["predicate"]["scope"]["kind"] + ":" + st["predicate"]["scope"]["id"]
    need(scope in ids, f"the scope {scope} is not a lineage node")
    keys = [(e["from"], e["to"], e["kind"]) for e in lin["edges"]
            if shape(e, "edge", "from:str to:str kind:str seq:int")]
    need(keys == sorted(set(keys)), "edges are not sorted and unique")
    for e in lin["edges"]:
        label = f"edge {e['from']} -[{e['kind']}]-> {e['to']}"
        need(e["from"] in ids and e["to"] in ids, f"{label}: an end is not a node")
        need(e["seq"] in events, f"{label}: seq {e['seq']} is not in the proven audit slice")
        try: backs(e, events[e["seq"]])
        except Bad as why: raise Bad(f"{label}: event {e['seq']} {why}") from None
    # Completeness: every edge the proven events of the lineage's runs imply is listed.
    listed, implying, implied = {k: e["seq"] for k, e in zip(keys, lin["edges"])}, 0, 0
    nodes = set(ids)
    for ev in events.values():
        if ev["subject"] not in nodes: continue
        edges = implied_edges(ev, scope)
        implying, implied = implying + bool(edges), implied + len(edges)
        for frm, to, kind in edges:
            what = f"event {ev['seq']} ({ev['action']} of {ev['subject']}) implies the edge " \
                   f"{frm} -[{kind}]-> {to}, which lineage.json"
            need((frm, to, kind) in listed, f"{what} does not list")
            need(listed[(frm, to, kind)] == ev["seq"],
                 f"{what} lists with seq {listed[(frm, to, kind)]}")
    return None, (f"{len(ids)} nodes, {len(keys)} edges each backed by its event; all {implied} "
                  f"edges implied by {implying} proven events of the lineage's runs are listed; "
                  + linked_subjects(ids, events, st))

def linked_subjects(ids, events, st):
    """The artifact and dataset version subjects are exactly those lineage nodes, with the
    sha256 of the artifact's proven artifact.upload event and the hex of the version's DPM-1
    digest. None at all: a bundle of an earlier release (said so)."""
    linked = {s["name"]: s for s in st["subject"] if ":" in s["name"]}
    nodes = [i for i in ids if i.startswith(("artifact:", "dataset_version:"))]
    if not linked:
        return (f"the statement links none of the {len(nodes)} artifact and dataset version "
                f"nodes by digest (a bundle of an earlier release)")
    for name in linked: need(name in nodes, f"subject {name} is not a lineage node")
    for node in nodes:
        need(node in linked, f"lineage node {node} is not a statement subject")
        if node.startswith("artifact:"):
            ups = [e["data"].get("sha256") for e in events.values()
                   if e["action"] == "artifact.upload" and isinstance(e["data"], dict)
                   and e["data"].get("artifact_id") == node[len("artifact:"):]]
            need(ups and isinstance(ups[0], str),
                 f"no proven artifact.upload event records the sha256 of {node}")
            want = ups[0]
        else:
            need("@sha256:" in node, f"dataset version node {node} has no sha256 digest")
            want = node.rsplit("@sha256:", 1)[1]
        got = linked_digest(linked[node])
        need(got == want, f"subject {node} has digest {got}, but the proven ledger records {want}")
    return f"{len(nodes)} artifact and dataset version subjects match the ledger"

def implied_edges(ev, scope):
    """The (from, to, kind) edges an event about a run creates (the edge table). `input` edges
    only with the scope at one end: a version bundle leaves out its runs' other inputs."""
    run, data, out = ev["subject"], ev["data"], []
    if not run.startswith("run:"): return out
    def field(typ, name):
        v = data.get(name) if isinstance(data, dict) else None
        need(isinstance(v, typ), f"event {ev['seq']} ({ev['action']} of {run}) has no "
             f"{'string' if typ is str else 'array'} data.{name}, so its lineage edges cannot "
             "be checked")
        return v
    def versions(name):
        refs = [(i.get("dataset_id"), i.get("digest")) if isinstance(i, dict) else (None, None)
                for i in field(list, name)]
        need(all(isinstance(d, str) and isinstance(g, str) for d, g in refs),
             f"event {ev['seq']} ({ev['action']} of {run}) has no version refs in data.{name}, "
             "so its lineage edges cannot be checked")
        return [f"dataset_version:{d}@{g}" for d, g in refs]
    if ev["action"] == "run.create":
        out += [(i, run, "input") for i in versions("inputs") if scope in (run, i)]
        out.append((run, "git_commit:" + field(str, "git_commit"), "built_from"))
        out.append((run, "image:" + field(str, "image_digest"), "executed_in"))
    elif ev["action"] == "artifact.upload":
        out.append((run, "artifact:" + field(str, "artifact_id"), "produced"))
    elif ev["action"] == "run.finish":
        out += [(run, o, "produced") for o in versions("outputs")]
    return out

def policy_snapshot(m, events):
    pol = shape(canonical(m["policy.json"], "policy.json"), "policy.json", "version:int "
                "required_gates:list run_token_ttl_seconds:int updated_at:str updated_by:str")
    need(all(isinstance(g, str) for g in pol["required_gates"]), "required_gates: not strings")
    need(pol["version"] >= 1, "policy.json has version 0; versions start at 1")
    subject = f"policy:{pol['version']}"
    updates = [e for e in events.values() if e["action"] == "policy.update"]
    need(all(e["subject"] == subject for e in updates), "the slice holds another policy's update")
    def same(data):  # the policy content an event records
        ttl = data.get("run_token_ttl_seconds") if isinstance(data, dict) else None
        return (type(ttl) is int and ttl == pol["run_token_ttl_seconds"]
                and data.get("required_gates") == pol["required_gates"])
    if pol["version"] == 1:  # made by ledger.init, which records it in data.policy
        init = next((e for e in events.values() if e["action"] == "ledger.init"), None)
        if init is None or not isinstance(init["data"], dict) or "policy" not in init["data"]:
            # The server's bundles: ledger.init is in no slice. Passes, but says so.
            return None, "initial policy version 1; its content is NOT verified (no ledger.init)"
        initial = init["data"]["policy"]
        need(isinstance(initial, dict) and type(initial.get("version")) is int
             and initial["version"] == 1 and same(initial),
             f"policy.json differs from the initial policy of ledger.init (seq {init['seq']})")
        return None, f"initial policy version 1 matches ledger.init (seq {init['seq']})"
    need(updates, f"the {subject} update event is not in the proven audit slice")
    need(same(updates[0]["data"]), f"policy.json differs from event {updates[0]['seq']}")
    return None, f"policy version {pol['version']} backed by event {updates[0]['seq']}"

def node_hash(l, r): return sha256(b"\x01" + l + r)

def verify_consistency(m, n, proof, old, new):
    """RFC 9162 2.1.4.2: the tree of size m with root old is a prefix of the one of size n."""
    if m == n:
        need(not proof and old == new, f"tree size {m} has two different roots"); return
    need(0 < m < n, f"no consistency proof from size {m} to {n}")
    if m & (m - 1) == 0: proof = [old] + proof
    fn, sn = m - 1, n - 1
    while fn & 1: fn >>= 1; sn >>= 1
    need(proof, "empty consistency proof")
    fr = sr = proof[0]
    for c in proof[1:]:
        need(sn > 0, "consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn: fn >>= 1; sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1; sn >>= 1
    need(sn == 0 and fr == old and sr == new, "the consistency proof does not match the roots")

def parse_witness_key(s):
    name, kid, key = s.split("+", 2)
    raw = b64(key)
    need(name and len(kid) == 8 and len(raw) == 33 and raw[0] == 4, f"bad witness key {s!r}")
    need(sha256(name.encode() + b"\n" + raw)[:4].hex() == kid, f"key id of {s!r} is wrong")
    return name, bytes.fromhex(kid), raw[1:]

def witnessed(cp, note, keys, witnesses, quorum, proof):
    """Check 12: the note is signed by a pinned key and cosigned (cosignature/v1: Ed25519 over
    "cosignature/v1\ntime <t>\n" + text; payload key id || 8-byte time || signature) by at
    least `quorum` distinct trusted witnesses, and the bundle's tree is a prefix of it."""
    seen, text, lines = open_note(note, keys)
    cosigned = []
    for name, raw in lines:
        for wname, kid, pub in witnesses:
            if (name, raw[:4]) != (wname, kid): continue
            need(len(raw) == 76, f"the cosignature of trusted witness {name} does not verify")
            t = int.from_bytes(raw[4:12], "big")
            need(t < 2**63 and ed25519_verify(pub, f"cosignature/v1\ntime {t}\n{text}".encode(), raw[12:]),
                 f"the cosignature of trusted witness {name} does not verify")
            if name not in cosigned: cosigned.append(name)
    need(len(cosigned) >= quorum,
         f"{len(cosigned)} of the required {quorum} trusted witness cosignatures ({', '.join(cosigned)})")
    (origin, size, root), (w_origin, w_size, w_root) = cp, seen
    need(origin == w_origin, f"origin changed from {origin!r} to {w_origin!r}")
    need(w_size >= size, f"the witnessed checkpoint (size {w_size}) is older than the bundle's tree (size {size})")
    verify_consistency(size, w_size, [b64(h, 32) for h in proof], root, w_root)
    return None, f"the bundle's tree is a prefix of the checkpoint at size {w_size} cosigned by " \
                 f"{len(cosigned)} of {len(witnesses)} trusted witness(es) ({', '.join(cosigned) or 'none required'})"

def parse_key(s):
    name, kid, key = s.split("+", 2)
    raw = b64(key)
    need(name and len(kid) == 8 and len(raw) == 33 and raw[0] == 1, f"bad verifier key {s!r}")
    need(sha256(name.encode() + b"\n" + raw)[:4].hex() == kid, f"key id of {s!r} is wrong")
    return name, bytes.fromhex(kid), raw[1:]

def main(argv):
    try:
        args, opts = [], {"--witnessed": [], "--witness": [], "--witness-quorum": [], "--witness-proof": []}
        it = iter(argv[1:])
        for a in it:
            if a in opts: opts[a].append(next(it))
            else:
                need(not a.startswith("--"), f"unknown option {a}")
                args.append(a)
        keys = [parse_key(k) for k in args[1:]]
        with open(args[0], "rb") as f: zb = f.read()
        need(keys, "no verifier key")
        witnesses = [parse_witness_key(w) for w in opts["--witness"]]
        need(len(opts["--witnessed"]) <= 1 and bool(witnesses) == bool(opts["--witnessed"]),
             "--witnessed NOTE_FILE and --witness VKEY go together")
        need(len(opts["--witness-quorum"]) <= 1, "one --witness-quorum")
        quorum = int(opts["--witness-quorum"][0]) if opts["--witness-quorum"] else len(witnesses)
        need(0 <= quorum <= len(witnesses), "--witness-quorum must be between 0 and the number of witnesses")
        note = None
        if opts["--witnessed"]:
            with open(opts["--witnessed"][0], "rb") as f: note = f.read().decode("utf-8")
    except (Bad, ValueError, OSError, IndexError, StopIteration) as e:
        print(f"error: {e}\n{__doc__}", file=sys.stderr)
        return 2
    print(f"verifying {argv[1]} with {len(keys)} pinned key(s); Ed25519: {BACKEND}")
    done, failed = {}, 0
    def check(name, deps, fn):
        """Runs fn on the results of deps; if one of them failed, this check fails too."""
        nonlocal failed
        missing = next((d for d in ["archive.safe"] + deps if d not in done), None)
        try:
            if missing and name != "archive.safe": raise Bad(f"not checked: {missing} failed")
            done[name], summary = fn(*[done[d] for d in deps])
            print(f"PASS {name}: {summary}")
        except Exception as e:  # malformed input of any kind is a FAIL, never a crash or a skip
            failed += 1
            print(f"FAIL {name}: {e if isinstance(e, Bad) else f'{type(e).__name__}: {e}'}")
    check("archive.safe", [], lambda: archive_safe(zb))
    check("archive.members", ["archive.safe"], archive_members)
    check("dsse.signature", ["archive.safe"], lambda m: dsse_signature(m, keys))
    check("statement.format", ["dsse.signature"], statement_format)
    check("statement.subjects", ["archive.safe", "statement.format"], statement_subjects)
    check("checkpoint.signature", ["archive.safe"], lambda m: checkpoint_signature(m, keys))
    check("checkpoint.matches_predicate", ["statement.format", "checkpoint.signature"],
          checkpoint_matches)
    check("inclusion.proofs", ["archive.safe", "checkpoint.signature"], inclusion_proofs)
    check("lineage.edges", ["archive.safe", "inclusion.proofs", "statement.format"], lineage_edges)
    check("policy.snapshot", ["archive.safe", "inclusion.proofs"], policy_snapshot)
    total = 10
    if note is not None:
        total += 1
        check("witnessed", ["checkpoint.signature"],
              lambda cp: witnessed(cp, note, keys, witnesses, quorum, opts["--witness-proof"]))
    print("bundle OK" if not failed else f"bundle REJECTED: {failed} of {total} checks failed")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
