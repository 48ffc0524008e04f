//! The ledger as C2SP `tlog-tiles`: the read path transparency tooling already speaks.
//!
//! A tile of level `L` and index `N` holds the hashes of tree level `8·L` at indices
//! `256·N … 256·N + W − 1`, each 32 bytes, concatenated (`W` = 256 for a full tile, fewer for a
//! partial one, named `.p/W`). Level-0 tiles hold the leaf hashes; an entry bundle
//! (`tile/entries/N`) holds the leaves themselves, each as a big-endian `uint16` length and the
//! bytes. The store keeps the hash of every complete aligned subtree, so every tile is a range
//! of stored nodes (`store::ledger_io`). Tiles never change once their width exists, so they are
//! served with immutable caching; `/checkpoint` is the current signed checkpoint.
//!
//! `N` is written in groups of three decimal digits, all but the last prefixed with `x`
//! (`1234067` is `x001/x234/067`); only that canonical spelling is accepted.

/// Hashes per tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tile height: a tile spans 8 tree levels.
pub const TILE_HEIGHT: u32 = 8;

/// A parsed tile path (after the `tile/` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// A hash tile: level `L`, index `N`, width `W` (1..=256).
    Hashes { level: u32, index: u64, width: u64 },
    /// An entry bundle: index `N`, width `W`.
    Entries { index: u64, width: u64 },
}

/// `N` in the canonical path form: three-digit groups, all but the last prefixed with `x`.
pub fn encode_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// The path of a tile after `tile/`, as [`parse`] reads it.
pub fn encode(path: &TilePath) -> String {
    let (head, index, width) = match *path {
        TilePath::Hashes {
            level,
            index,
            width,
        } => (level.to_string(), index, width),
        TilePath::Entries { index, width } => ("entries".to_string(), index, width),
    };
    let partial = if width < TILE_WIDTH {
        format!(".p/{width}")
    } else {
        String::new()
    };
    format!("{head}/{}{partial}", encode_index(index))
}

/// Parse the part of a tile path after `tile/`; `None` unless it is canonical.
pub fn parse(rest: &str) -> Option<TilePath> {
    let mut segs: Vec<&str> = rest.split('/').collect();
    let head = segs.first().copied()?;
    segs.remove(0);
    // `.p/W` at the end: the last index group carries `.p`, the width follows.
    let mut width = TILE_WIDTH;
    if segs.len() >= 2 && segs[segs.len() - 2].ends_with(".p") {
        let w = segs.pop()?;
        if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        width = w.parse().ok()?;
        if width == 0 || width >= TILE_WIDTH {
            return None;
        }
        let last = segs.pop()?;
        segs.push(last.strip_suffix(".p")?);
    }
    let index = parse_index(&segs)?;
    if head == "entries" {
        return Some(TilePath::Entries { index, width });
    }
    if head.is_empty() || (head.len() > 1 && head.starts_with('0')) {
        return None;
    }
    let level: u32 = head
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| head.parse().ok())??;
    // Level 8 would start at tree level 64: beyond any u64 tree.
    if level >= 8 {
        return None;
    }
    Some(TilePath::Hashes {
        level,
        index,
        width,
    })
}

fn parse_index(groups: &[&str]) -> Option<u64> {
    let (last, head) = groups.split_last()?;
    let digits = |g: &str| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit());
    if !digits(last) {
        return None;
    }
    let mut n: u64 = 0;
    for (i, g) in head.iter().enumerate() {
        let g = g.strip_prefix('x')?;
        // No leading zero groups: one spelling per index.
        if !digits(g) || (i == 0 && g == "000") {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(g.parse::<u64>().ok()?)?;
    }
    n.checked_mul(1000)?.checked_add(last.parse::<u64>().ok()?)
}

/// The entry bundle of `leaves`: each as a big-endian `uint16` length and its bytes. `None` if
/// one is longer than 65535 bytes (the format cannot carry it).
pub fn entry_bundle(leaves: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(leaves.iter().map(|l| l.len() + 2).sum());
    for leaf in leaves {
        let len = u16::try_from(leaf.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(leaf);
    }
    Some(out)
}

/// How many nodes of tree level `8·level` a tree of `size` leaves has (complete subtrees).
pub fn nodes_at(level: u32, size: u64) -> u64 {
    size >> (TILE_HEIGHT * level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_are_the_c2sp_spelling() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        for n in [0, 5, 999, 1000, 1001, 123_456, 1_234_067, u64::MAX / 3] {
            let p = TilePath::Hashes {
                level: 1,
                index: n,
                width: 17,
            };
            assert_eq!(parse(&encode(&p)), Some(p), "{}", encode(&p));
            let e = TilePath::Entries {
                index: n,
                width: 256,
            };
            assert_eq!(parse(&encode(&e)), Some(e));
        }
        assert_eq!(
            encode(&TilePath::Hashes {
                level: 0,
                index: 1_234_067,
                width: 8
            }),
            "0/x001/x234/067.p/8"
        );
    }

    #[test]
    fn only_canonical_paths_parse() {
        for bad in [
            "",
            "0",
            "0/",
            "0/67",
            "0/0067",
            "0/x000/067",
            "0/x1/067",
            "0/001.p/0",
            "0/001.p/256",
            "0/001.p/08",
            "0/001.p/",
            "00/001",
            "8/000",
            "0/001/x002",
            "entries/01",
            "0/001.p",
            "x/001",
            "0/001.p/1/2",
            "-1/000",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} parsed");
        }
        assert_eq!(
            parse("entries/x001/000.p/255"),
            Some(TilePath::Entries {
                index: 1000,
                width: 255
            })
        );
    }

    #[test]
    fn entry_bundles_are_length_prefixed() {
        assert_eq!(
            entry_bundle(&[b"ab".to_vec(), Vec::new()]).unwrap(),
            vec![0, 2, b'a', b'b', 0, 0]
        );
        assert!(entry_bundle(&[vec![0; 65536]]).is_none());
    }
}
