//! The bundle reader against crafted zips: bombs are refused from their headers before
//! anything is inflated, a header that understates a member's size is caught after one extra
//! byte, and the entry count is checked before the central directory is parsed.

use std::io::{Cursor, Write};

use datapilot::evidence::archive::{
    Archive, Limits, DEFAULT_MAX_ARCHIVE_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_RATIO, DEFAULT_MAX_TOTAL_BYTES,
};
use zip::write::SimpleFileOptions;

/// A zip in the bundle's canonical layout (deflate, mode 0644, 1980 timestamps).
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, bytes) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites the uncompressed size `name` declares, in its local header and its central record
/// alike (so the layout check, which compares them, still passes): a lying header.
fn declare_size(zip: &[u8], name: &str, size: u32) -> Vec<u8> {
    let mut b = zip.to_vec();
    let mut hits = 0;
    let mut i = 0;
    while i + 46 <= b.len() {
        match u32_at(&b, i) {
            0x0403_4b50 => {
                let n = u16::from_le_bytes([b[i + 26], b[i + 27]]) as usize;
                if &b[i + 30..i + 30 + n] == name.as_bytes() {
                    put_u32(&mut b, i + 22, size);
                    hits += 1;
                }
            }
            0x0201_4b50 => {
                let n = u16::from_le_bytes([b[i + 28], b[i + 29]]) as usize;
                if &b[i + 46..i + 46 + n] == name.as_bytes() {
                    put_u32(&mut b, i + 24, size);
                    hits += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(hits, 2, "local header and central record of {name}");
    b
}

/// The offset of `name`'s compressed data.
fn data_offset(zip: &[u8], name: &str) -> usize {
    let mut i = 0;
    while i + 30 <= zip.len() {
        if u32_at(zip, i) == 0x0403_4b50 {
            let n = u16::from_le_bytes([zip[i + 26], zip[i + 27]]) as usize;
            if &zip[i + 30..i + 30 + n] == name.as_bytes() {
                return i + 30 + n;
            }
        }
        i += 1;
    }
    panic!("no {name}");
}

fn read(bytes: &[u8]) -> Result<Archive, String> {
    Archive::read(bytes, &Limits::default())
}

#[test]
fn defaults_fit_a_browser_tab() {
    assert_eq!(DEFAULT_MAX_ENTRY_BYTES, 64 << 20);
    assert_eq!(DEFAULT_MAX_TOTAL_BYTES, 256 << 20);
    assert_eq!(DEFAULT_MAX_ARCHIVE_BYTES, 64 << 20);
    assert_eq!(DEFAULT_MAX_RATIO, 200);
    assert_eq!(DEFAULT_MAX_ENTRIES, 64);
    let l = Limits::default();
    assert_eq!(l.max_entry_bytes, DEFAULT_MAX_ENTRY_BYTES);
    assert_eq!(l.max_total_bytes, DEFAULT_MAX_TOTAL_BYTES);
}

#[test]
fn an_honest_zip_reads_back() {
    let text = b"line\n".repeat(1000);
    let a = read(&zip_of(&[("a.txt", &text), ("b/c.json", b"{}")])).unwrap();
    assert_eq!(a.get("a.txt"), Some(&text[..]));
    assert_eq!(a.names().collect::<Vec<_>>(), ["a.txt", "b/c.json"]);
}

/// The refusal of a member that inflates past its declared size: the reader's own check (one
/// byte past the declared size) or the zip crate's, which notices the same thing first.
fn understated(err: &str, name: &str, declared: u64) -> bool {
    err.contains(&format!(
        "member {name:?} inflates beyond the {declared} bytes its header declares"
    )) || err.contains(&format!(
        "member {name:?} is corrupt: File is larger than its declared uncompressed size"
    ))
}

#[test]
fn a_header_that_understates_the_size_is_caught_one_byte_past_it() {
    // 64 MiB of zeros compress to ~64 KiB; the header claims 1000 bytes. The reader must stop
    // at byte 1001, not inflate everything (or up to the entry limit) before noticing.
    let big = vec![0u8; 64 << 20];
    let honest = zip_of(&[("ok.txt", b"fine"), ("zeros.bin", &big)]);
    drop(big);
    let lying = declare_size(&honest, "zeros.bin", 1000);
    let err = read(&lying).unwrap_err();
    assert!(understated(&err, "zeros.bin", 1000), "{err}");

    // Small enough to see directly: 5000 bytes declared as 10.
    let honest = zip_of(&[("a.txt", &b"x".repeat(5000))]);
    let err = read(&declare_size(&honest, "a.txt", 10)).unwrap_err();
    assert!(understated(&err, "a.txt", 10), "{err}");

    // Overstated: fewer bytes come out than declared.
    let err = read(&declare_size(&honest, "a.txt", 6000)).unwrap_err();
    assert!(err.contains("is 5000 bytes, its header says 6000"), "{err}");
}

#[test]
fn a_high_ratio_member_is_refused_from_its_header_before_inflating() {
    // 8 MiB of zeros: ~1000:1.
    let bomb = zip_of(&[("zeros.bin", &vec![0u8; 8 << 20])]);
    let err = read(&bomb).unwrap_err();
    assert!(err.contains("ratio above the 200:1"), "{err}");

    // Proof that nothing was inflated: with the compressed data destroyed, the refusal is
    // still about the ratio, not about a corrupt stream.
    let mut garbage = bomb.clone();
    let at = data_offset(&garbage, "zeros.bin");
    for b in &mut garbage[at..at + 64] {
        *b = 0xff;
    }
    let err = read(&garbage).unwrap_err();
    assert!(err.contains("ratio above the 200:1"), "{err}");

    // The ratio limit is configurable; below the floor small members are exempt.
    let relaxed = Limits::default().with_max_ratio(10_000);
    assert!(Archive::read(&bomb, &relaxed).is_ok());
    let tiny = zip_of(&[("z", &vec![0u8; 100_000])]);
    assert!(read(&tiny).is_ok(), "below the 1 MiB floor");
    let strict_floor = Limits::default().with_ratio_floor_bytes(1000);
    assert!(Archive::read(&tiny, &strict_floor)
        .unwrap_err()
        .contains("ratio"));

    // A lying header that declares a huge, bomb-like size over a few real bytes.
    let small = zip_of(&[("a.txt", &b"abc".repeat(1000))]);
    let err = read(&declare_size(&small, "a.txt", 50 << 20)).unwrap_err();
    assert!(err.contains("ratio above"), "{err}");
}

#[test]
fn declared_sizes_are_held_to_the_entry_and_total_limits_before_inflating() {
    let honest = zip_of(&[("a.txt", &b"abc".repeat(1000))]);
    // Over the entry limit (ratio check relaxed so the size check is the one that speaks).
    let limits = Limits::default().with_max_ratio(u64::MAX);
    let err = Archive::read(
        &declare_size(&honest, "a.txt", (DEFAULT_MAX_ENTRY_BYTES + 1) as u32),
        &limits,
    )
    .unwrap_err();
    assert!(err.contains("more than the 67108864 allowed"), "{err}");

    // Over the total: each member fits, together they do not.
    let two = zip_of(&[("a", &[1u8; 600][..]), ("b", &[2u8; 600][..])]);
    let limits = Limits::default()
        .with_max_entry_bytes(1000)
        .with_max_total_bytes(1000);
    let err = Archive::read(&two, &limits).unwrap_err();
    assert!(err.contains("1000 bytes allowed in total"), "{err}");
    assert!(Archive::read(&two, &limits.with_max_total_bytes(1200)).is_ok());
}

#[test]
fn too_many_entries_are_refused_from_the_end_record() {
    let names: Vec<String> = (0..DEFAULT_MAX_ENTRIES + 6)
        .map(|i| format!("m{i}"))
        .collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let many = zip_of(&members);
    let err = read(&many).unwrap_err();
    assert_eq!(err, "archive has 70 entries, more than the 64 allowed");
    assert!(Archive::read(&many, &Limits::default().with_max_entries(70)).is_ok());

    // The count is taken from the end record before the directory is even parsed: an end
    // record claiming 65535 entries over a garbage directory is refused for its count.
    let mut fake = many.clone();
    let eocd = fake.len() - 22;
    fake[eocd + 8..eocd + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let err = read(&fake).unwrap_err();
    assert!(err.contains("65535 entries"), "{err}");
}

#[test]
fn archive_size_limit_is_checked_first() {
    let z = zip_of(&[("a", b"x")]);
    let err = Archive::read(&z, &Limits::default().with_max_archive_bytes(10)).unwrap_err();
    assert!(err.contains("more than the 10 allowed"), "{err}");
}

/// Rewrites the compressed size `name` declares, in its local header and its central record.
fn declare_compressed_size(zip: &[u8], name: &str, size: u32) -> Vec<u8> {
    let mut b = zip.to_vec();
    let local = data_offset(&b, name) - 30 - name.len();
    put_u32(&mut b, local + 18, size);
    let eocd = b.len() - 22;
    let mut at = u32_at(&b, eocd + 16) as usize;
    while &b[at + 46..at + 46 + u16::from_le_bytes([b[at + 28], b[at + 29]]) as usize]
        != name.as_bytes()
    {
        at += 46 + u16::from_le_bytes([b[at + 28], b[at + 29]]) as usize;
    }
    put_u32(&mut b, at + 20, size);
    b
}

/// A compressed size near 4 GiB is refused as running past the central directory. The end of
/// an entry's data is computed in 64 bits: on 32-bit targets (the wasm verifier) the sum of its
/// offset and such a size overflowed `usize` (a panic in debug builds, a wrapped offset in
/// release ones).
#[test]
fn a_compressed_size_past_the_end_is_refused_without_overflow() {
    let z = zip_of(&[("a", b"x"), ("b", b"y")]);
    for size in [u32::MAX - 1, u32::MAX - 64, 1 << 31] {
        let err = read(&declare_compressed_size(&z, "a", size)).unwrap_err();
        assert!(
            err.contains("entry 0's data runs past the central directory"),
            "{size}: {err}"
        );
    }
}
