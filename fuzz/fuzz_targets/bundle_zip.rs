//! The evidence bundle's zip reader (`datapilot::evidence::Archive::read`) on raw bytes.
//!
//! Beyond "never panics, never allocates without bound": whatever it accepts obeys the limits
//! and the name rules it promises, and the members it returns, written again as a canonical
//! zip, read back identically (reader and writer agree on what the members are).

#![no_main]

use std::collections::HashSet;

use datapilot::evidence::{Archive, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The verifier's defaults, and limits small enough that a fuzzer's inputs reach them.
    let tight = Limits::default()
        .with_max_entries(4)
        .with_max_entry_bytes(4096)
        .with_max_total_bytes(8192)
        .with_max_ratio(10)
        .with_ratio_floor_bytes(256);
    for limits in [Limits::default(), tight] {
        if let Ok(archive) = Archive::read(data, &limits) {
            check(&archive, &limits);
        }
    }
});

fn check(archive: &Archive, limits: &Limits) {
    assert!(archive.members.len() <= limits.max_entries);
    let mut names = HashSet::new();
    let mut total = 0u64;
    for m in &archive.members {
        let size = m.bytes.len() as u64;
        assert!(
            size <= limits.max_entry_bytes,
            "{} is over the member limit",
            m.name
        );
        total += size;
        assert!(names.insert(m.name.as_str()), "{} twice", m.name);
        let n = &m.name;
        assert!(!n.is_empty() && n.len() <= 255, "{n:?}: bad length");
        assert!(
            !n.starts_with('/') && !n.ends_with('/'),
            "{n:?}: absolute or a directory"
        );
        assert!(
            !n.contains('\\') && !n.contains(':'),
            "{n:?}: backslash or colon"
        );
        assert!(!n.chars().any(char::is_control), "{n:?}: control character");
        assert!(
            n.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "{n:?}: empty, '.' or '..' segment"
        );
        assert_eq!(archive.get(n), Some(m.bytes.as_slice()));
    }
    assert!(total <= limits.max_total_bytes);
    let members: Vec<(String, Vec<u8>)> = archive
        .members
        .iter()
        .map(|m| (m.name.clone(), m.bytes.clone()))
        .collect();
    let rewritten = datapilot_fuzz_support::stored_zip(&members);
    let again = Archive::read(&rewritten, &Limits::default()).expect("a rewritten archive reads");
    assert_eq!(&again, archive, "members changed through a rewrite");
}
