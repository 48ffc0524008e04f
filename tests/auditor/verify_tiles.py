#!/usr/bin/env python3
"""Independent reader of a DataPilot ledger served as C2SP tlog-tiles (docs/formats.md, section 9).

    python3 verify_tiles.py BASE_URL VERIFIER_KEY [OLD_CHECKPOINT_FILE]

Reads the token from DATAPILOT_TOKEN (an auditor or admin token: entry bundles are the audit
events). Fetches BASE_URL/checkpoint and verifies it with the pinned key, then, from tiles and
entry bundles alone: rebuilds the root (must equal the checkpoint's), checks that every entry
hashes to its level-0 tile hash, builds an RFC 9162 inclusion proof for a few entries and
verifies it, and, given an older signed checkpoint, builds the consistency proof from it and
verifies it. It also compares the proofs it built with the server's JSON proof endpoints (which
it never uses to decide anything). Prints one PASS/FAIL line per check; exits 0 only if all
pass. Python 3.9+, standard library only (Ed25519 from verify_bundle.py, beside this file).
"""
import base64, json, os, sys, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_bundle import Bad, need, sha256, b64, parse_key, checkpoint_signature  # noqa: E402

H = 8                 # tile height
W = 1 << H            # hashes per full tile

def leaf_hash(b): return sha256(b"\x00" + b)
def node_hash(l, r): return sha256(b"\x01" + l + r)

def index_path(n):
    """N as the tlog-tiles path: 3-digit groups, all but the last prefixed with x."""
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))

class Log:
    def __init__(self, base, token):
        self.base, self.token, self.tiles, self.fetched = base.rstrip("/"), token, {}, 0

    def get(self, path):
        req = urllib.request.Request(f"{self.base}/{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read(), r.headers

    def tile(self, level, index, size):
        """The hash tile (level, index) as the tree of `size` leaves has it (partial if need be)."""
        count = size >> (H * level)             # complete nodes at tree level 8*level
        width = min(W, count - index * W)
        need(width > 0, f"tile {level}/{index} is beyond a tree of {size}")
        key = (level, index, width)
        if key not in self.tiles:
            path = f"tile/{level}/{index_path(index)}" + (f".p/{width}" if width < W else "")
            body, headers = self.get(path)
            self.fetched += 1
            need(len(body) == 32 * width, f"{path}: {len(body)} bytes, expected {32 * width}")
            need("immutable" in headers.get("Cache-Control", ""), f"{path}: not immutable")
            self.tiles[key] = [body[i:i + 32] for i in range(0, len(body), 32)]
        return self.tiles[key]

    def node(self, level, index, size):
        """Hash of the complete subtree at tree `level`, position `index`, from one tile."""
        tl, r = divmod(level, H)
        first = index << r                       # its first node at tree level 8*tl
        hashes = self.tile(tl, first // W, size)[first % W:first % W + (1 << r)]
        need(len(hashes) == 1 << r, f"tile {tl}/{first // W} is too short")
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def subtree(self, start, end, size):
        """MTH of leaves [start, end) of the tree of `size` (end <= size)."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n, size)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree(start, start + k, size), self.subtree(start + k, end, size))

    def inclusion(self, m, start, end, size):
        """RFC 9162 2.1.3.1 PATH(m, D[start:end])."""
        n = end - start
        if n == 1: return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return self.inclusion(m, start, start + k, size) + [self.subtree(start + k, end, size)]
        return self.inclusion(m - k, start + k, end, size) + [self.subtree(start, start + k, size)]

    def consistency(self, m, start, end, size, whole=True):
        """RFC 9162 2.1.4.1 SUBPROOF(m, D[start:end], b)."""
        n = end - start
        if m == n:
            return [] if whole else [self.subtree(start, end, size)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return self.consistency(m, start, start + k, size, whole) + \
                   [self.subtree(start + k, end, size)]
        return self.consistency(m - k, start + k, end, size, False) + \
               [self.subtree(start, start + k, size)]

def verify_inclusion(leaf, index, size, proof, root):
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        need(sn > 0, "inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1; sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1; sn >>= 1
    need(sn == 0 and r == root, "inclusion proof does not lead to the root")

def verify_consistency(m, n, proof, old, new):
    """RFC 9162 2.1.4.2."""
    if m == n:
        need(not proof and old == new, "same size, different roots"); return
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
    need(sn == 0 and fr == old and sr == new, "consistency proof does not match the roots")

def main(argv):
    try:
        base, keys = argv[1], [parse_key(argv[2])]
        old_note = open(argv[3], "rb").read() if len(argv) > 3 else None
        token = os.environ["DATAPILOT_TOKEN"]
    except (Bad, ValueError, OSError, IndexError, KeyError) as e:
        print(f"error: {e}\n{__doc__}", file=sys.stderr)
        return 2
    log, failed, state = Log(base, token), 0, {}
    def check(name, fn):
        nonlocal failed
        try:
            print(f"PASS {name}: {fn()}")
        except Exception as e:  # anything malformed is a FAIL, never a crash
            failed += 1
            print(f"FAIL {name}: {e if isinstance(e, Bad) else f'{type(e).__name__}: {e}'}")

    def checkpoint():
        note, _ = log.get("checkpoint")
        state["cp"], summary = checkpoint_signature({"ledger/checkpoint.txt": note}, keys)
        return summary
    check("checkpoint.signature", checkpoint)
    if "cp" not in state:
        print("REJECTED"); return 1
    origin, size, root = state["cp"]

    def root_from_tiles():
        got = log.subtree(0, size, size)
        need(got == root, f"the tiles give root {base64.b64encode(got).decode()}, "
                          f"the checkpoint says {base64.b64encode(root).decode()}")
        return f"root of {size} entries rebuilt from {log.fetched} hash tile(s)"
    check("tiles.root", root_from_tiles)

    def entries():
        state["leaves"] = leaves = []
        for n in range((size + W - 1) // W):
            width = min(W, size - n * W)
            path = f"tile/entries/{index_path(n)}" + (f".p/{width}" if width < W else "")
            body, _ = log.get(path)
            pos, got = 0, []
            while pos < len(body):
                need(pos + 2 <= len(body), f"{path}: truncated length")
                ln = int.from_bytes(body[pos:pos + 2], "big")
                need(pos + 2 + ln <= len(body), f"{path}: truncated entry")
                got.append(body[pos + 2:pos + 2 + ln]); pos += 2 + ln
            need(len(got) == width, f"{path}: {len(got)} entries, expected {width}")
            leaves += got
        for i, leaf in enumerate(leaves):
            need(leaf_hash(leaf) == log.node(0, i, size), f"entry {i} does not hash to its tile")
            ev = json.loads(leaf)
            need(ev.get("seq") == i, f"entry {i} has seq {ev.get('seq')}")
        return f"{len(leaves)} entries from {(size + W - 1) // W} bundle(s), each its tile's leaf hash"
    check("tiles.entries", entries)

    def inclusion():
        picks = sorted({0, size // 2, size - 1} | ({W - 1, W} if size > W else set()))
        for i in picks:
            proof = log.inclusion(i, 0, size, size)
            leaf = leaf_hash(state["leaves"][i]) if "leaves" in state else log.node(0, i, size)
            verify_inclusion(leaf, i, size, proof, root)
            body, _ = log.get(f"v1/ledger/proofs/inclusion?seq={i}&tree_size={size}")
            server = [b64(h, 32) for h in json.loads(body)["hashes"]]
            need(server == proof, f"entry {i}: the server's JSON proof differs from the tiles'")
        return f"entries {picks}: proofs built from tiles verify and equal the JSON endpoint's"
    check("tiles.inclusion", inclusion)

    if old_note is not None:
        def consistency():
            (o_origin, m, old_root), _ = checkpoint_signature({"ledger/checkpoint.txt": old_note}, keys)
            need(o_origin == origin, "the old checkpoint is of another log")
            need(0 < m <= size, f"the old size {m} is not in 1..{size}")
            proof = log.consistency(m, 0, size, size)
            verify_consistency(m, size, proof, old_root, root)
            body, _ = log.get(f"v1/ledger/proofs/consistency?from={m}&to={size}")
            server = [b64(h, 32) for h in json.loads(body)["hashes"]]
            need(server == proof, "the server's JSON consistency proof differs from the tiles'")
            return f"{m} -> {size}: append-only, proof from tiles equals the JSON endpoint's"
        check("tiles.consistency", consistency)
    print("log OK" if not failed else f"REJECTED: {failed} check(s) failed")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
