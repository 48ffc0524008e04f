//! A zip reader for untrusted evidence bundles.
//!
//! A bundle arrives from outside (a download, an email, a USB stick), so its zip container is
//! attacker-controlled. This reader extracts members into memory only, never onto a file
//! system, and still refuses everything a legitimate bundle never contains, because each of
//! those is either an attack or a sign of tampering:
//!
//! - too many entries, too large an archive, a member or a total that decompresses beyond the
//!   [`Limits`], or a member whose compression ratio is bomb-like;
//! - names that are absolute, contain `..`/`.`/empty segments, backslashes, drive letters,
//!   control characters or invalid UTF-8, and duplicate names (two readers could disagree about
//!   which one counts);
//! - directories, symlinks, encrypted members, and compression methods other than stored and
//!   deflate.
//!
//! Bombs are refused **before anything is inflated**: the entry count is read from the end
//! record before the central directory is parsed, and each member's declared size, declared
//! compression ratio (declared ÷ compressed size) and the running declared total are checked
//! against the [`Limits`] from the headers alone. A member is then inflated through
//! `Read::take(declared + 1)`: a header that understates the size (a lying header) is caught
//! after at most one byte more than it declared, never after the limit. The zip crate checks
//! each member's CRC-32 when it is read to the end.
//!
//! The default limits ([`DEFAULT_MAX_ENTRY_BYTES`] 64 MiB per member, [`DEFAULT_MAX_TOTAL_BYTES`]
//! 256 MiB in all, [`DEFAULT_MAX_RATIO`] 200:1) are sized for a browser tab, where the
//! verifier also runs; bundles are far smaller (a run's bundle is typically kilobytes).

use std::collections::HashSet;
use std::io::{Cursor, Read};

use zip::CompressionMethod;

/// Limits of [`Archive::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest archive accepted, in bytes.
    pub max_archive_bytes: u64,
    /// Most entries accepted.
    pub max_entries: usize,
    /// Largest decompressed member.
    pub max_entry_bytes: u64,
    /// Largest decompressed total.
    pub max_total_bytes: u64,
    /// Highest decompressed/compressed ratio for members above [`Limits::ratio_floor_bytes`].
    pub max_ratio: u64,
    /// Members smaller than this are exempt from the ratio check (tiny files can compress
    /// extremely well without being a threat).
    pub ratio_floor_bytes: u64,
}

/// Default largest archive: 64 MiB (the compressed bytes, already in memory).
pub const DEFAULT_MAX_ARCHIVE_BYTES: u64 = 64 << 20;
/// Default most entries (a bundle has 7).
pub const DEFAULT_MAX_ENTRIES: usize = 64;
/// Default largest member, decompressed: 64 MiB.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 64 << 20;
/// Default largest total, decompressed: 256 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 << 20;
/// Default highest compression ratio. Text bundles compress ~5-20x; deflate bombs reach ~1000x.
pub const DEFAULT_MAX_RATIO: u64 = 200;
/// Default ratio floor: 1 MiB.
pub const DEFAULT_RATIO_FLOOR_BYTES: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_archive_bytes: DEFAULT_MAX_ARCHIVE_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_ratio: DEFAULT_MAX_RATIO,
            ratio_floor_bytes: DEFAULT_RATIO_FLOOR_BYTES,
        }
    }
}

impl Limits {
    /// Sets the largest archive.
    pub fn with_max_archive_bytes(mut self, n: u64) -> Self {
        self.max_archive_bytes = n;
        self
    }
    /// Sets the most entries.
    pub fn with_max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }
    /// Sets the largest member.
    pub fn with_max_entry_bytes(mut self, n: u64) -> Self {
        self.max_entry_bytes = n;
        self
    }
    /// Sets the largest total.
    pub fn with_max_total_bytes(mut self, n: u64) -> Self {
        self.max_total_bytes = n;
        self
    }
    /// Sets the highest compression ratio.
    pub fn with_max_ratio(mut self, ratio: u64) -> Self {
        self.max_ratio = ratio;
        self
    }
    /// Sets the size below which members are exempt from the ratio check.
    pub fn with_ratio_floor_bytes(mut self, n: u64) -> Self {
        self.ratio_floor_bytes = n;
        self
    }
}

/// One extracted member.
#[derive(Clone, PartialEq, Eq)]
pub struct Member {
    /// Validated name.
    pub name: String,
    /// Decompressed bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The members of a zip that passed every safety rule, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Members in central-directory order.
    pub members: Vec<Member>,
}

impl Archive {
    /// Reads `bytes` as a zip under `limits`; the error says which rule was broken.
    pub fn read(bytes: &[u8], limits: &Limits) -> Result<Archive, String> {
        if bytes.len() as u64 > limits.max_archive_bytes {
            return Err(format!(
                "archive is {} bytes, more than the {} allowed",
                bytes.len(),
                limits.max_archive_bytes
            ));
        }
        // The entry count from the end record, before any per-entry work or allocation.
        if let Some(n) = declared_entries(bytes) {
            if usize::from(n) > limits.max_entries {
                return Err(too_many_entries(n.into(), limits));
            }
        }
        check_layout(bytes)?;
        let mut zip =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip: {e}"))?;
        if zip.len() > limits.max_entries {
            return Err(too_many_entries(zip.len(), limits));
        }
        if zip.has_duplicate_names() {
            return Err("archive has duplicate member names".into());
        }
        let mut names = HashSet::new();
        let mut total = 0u64;
        let mut members = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let file = zip
                .by_index_raw(i)
                .map_err(|e| format!("entry {i} is unreadable: {e}"))?;
            let name = std::str::from_utf8(file.name_raw())
                .map_err(|_| format!("entry {i} has a name that is not UTF-8"))?
                .to_owned();
            check_name(&name).map_err(|why| format!("member {name:?}: {why}"))?;
            if !names.insert(name.clone()) {
                return Err(format!("member {name:?} appears twice"));
            }
            if file.encrypted() {
                return Err(format!("member {name:?} is encrypted"));
            }
            if file.is_dir() || name.ends_with('/') {
                return Err(format!("member {name:?} is a directory"));
            }
            if file.is_symlink() {
                return Err(format!("member {name:?} is a symlink"));
            }
            let method = file.compression();
            if method != CompressionMethod::Stored && method != CompressionMethod::Deflated {
                return Err(format!("member {name:?} uses compression {method:?}"));
            }
            let declared = file.size();
            let compressed = file.compressed_size();
            // Everything below is decided from the headers, before inflating a byte.
            if declared > limits.max_entry_bytes {
                return Err(format!(
                    "member {name:?} declares {declared} bytes, more than the {} allowed",
                    limits.max_entry_bytes
                ));
            }
            if declared > limits.ratio_floor_bytes
                && declared > compressed.saturating_mul(limits.max_ratio)
            {
                return Err(format!(
                    "member {name:?} declares {declared} bytes from {compressed} compressed, a \
                     ratio above the {}:1 allowed",
                    limits.max_ratio
                ));
            }
            if method == CompressionMethod::Stored && declared != compressed {
                return Err(format!(
                    "member {name:?} is stored but declares {declared} bytes in {compressed}"
                ));
            }
            let total_declared = total.saturating_add(declared);
            if total_declared > limits.max_total_bytes {
                return Err(format!(
                    "members declare more than the {} bytes allowed in total",
                    limits.max_total_bytes
                ));
            }
            drop(file);
            // `by_index_raw` gave metadata without decompressing; now inflate, never more than
            // the declared size + 1 byte (enough to catch a header that understates it).
            let file = zip
                .by_index(i)
                .map_err(|e| format!("member {name:?} is unreadable: {e}"))?;
            // Bounded by the checks above: at most the entry limit, and (above the ratio
            // floor) at most `max_ratio` times bytes that are really in the archive.
            let mut data = Vec::with_capacity(declared as usize);
            file.take(declared + 1)
                .read_to_end(&mut data)
                .map_err(|e| format!("member {name:?} is corrupt: {e}"))?;
            let size = data.len() as u64;
            if size > declared {
                return Err(format!(
                    "member {name:?} inflates beyond the {declared} bytes its header declares"
                ));
            }
            if size != declared {
                return Err(format!(
                    "member {name:?} is {size} bytes, its header says {declared}"
                ));
            }
            total = total_declared;
            members.push(Member { name, bytes: data });
        }
        Ok(Archive { members })
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.bytes.as_slice())
    }

    /// Member names in archive order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.name.as_str())
    }
}

fn too_many_entries(n: usize, limits: &Limits) -> String {
    format!(
        "archive has {n} entries, more than the {} allowed",
        limits.max_entries
    )
}

/// The entry count of the end record, if the archive ends with one.
fn declared_entries(b: &[u8]) -> Option<u16> {
    let eocd = b.len().checked_sub(22)?;
    if u32_at(b, eocd)? != EOCD_SIG {
        return None;
    }
    u16_at(b, eocd + 10)
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
/// DOS date of 1980-01-01 (year 0, month 1, day 1); the time is 00:00:00 = 0.
const DOS_DATE_1980_01_01: u16 = 0x0021;
/// Regular file, mode 0644, in the high half of the external attributes.
const UNIX_FILE_0644: u32 = 0o100_644;
/// General-purpose flag bit 11: names are UTF-8. The only flag a bundle may carry.
const FLAG_UTF8: u16 = 0x0800;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Checks the byte layout of the deterministic bundle zip (`docs/formats.md`): one entry after
/// another from offset 0 with nothing in between, local headers identical to their central
/// records, fixed 1980-01-01 timestamps and mode 0644, no extra fields, comments, data
/// descriptors, encryption or Zip64, and nothing after the end record. Signatures cover the
/// member contents; this makes the container bytes around them just as fixed, so that any
/// changed byte of a bundle is rejected, and that no second reader (one that trusts local
/// headers rather than the central directory) can see different members.
fn check_layout(b: &[u8]) -> Result<(), String> {
    let bad = |what: String| Err(format!("not a canonical bundle zip: {what}"));
    let truncated = || "not a canonical bundle zip: truncated structure".to_owned();
    if b.len() < 22 {
        return bad("too short".into());
    }
    let eocd = b.len() - 22;
    if u32_at(b, eocd) != Some(EOCD_SIG) {
        return bad("no end record at the end (trailing data or a comment)".into());
    }
    let r16 = |at| u16_at(b, at).ok_or_else(truncated);
    let r32 = |at| u32_at(b, at).ok_or_else(truncated);
    let (disk, cd_disk, on_disk, total) = (
        r16(eocd + 4)?,
        r16(eocd + 6)?,
        r16(eocd + 8)?,
        r16(eocd + 10)?,
    );
    let (cd_size, cd_off) = (r32(eocd + 12)? as usize, r32(eocd + 16)? as usize);
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return bad("multi-disk archive".into());
    }
    if cd_off.checked_add(cd_size) != Some(eocd) {
        return bad("central directory does not end at the end record".into());
    }
    let mut pos = cd_off;
    let mut next_local = 0usize;
    for i in 0..total {
        if r32(pos)? != CENTRAL_SIG {
            return bad(format!("entry {i} has no central record"));
        }
        let made_by = r16(pos + 4)?;
        let central = [
            r16(pos + 6)?,
            r16(pos + 8)?,
            r16(pos + 10)?,
            r16(pos + 12)?,
            r16(pos + 14)?,
        ];
        let (crc, csize, usize_) = (r32(pos + 16)?, r32(pos + 20)?, r32(pos + 24)?);
        let name_len = r16(pos + 28)? as usize;
        let (extra_len, comment_len, disk_start, internal) = (
            r16(pos + 30)?,
            r16(pos + 32)?,
            r16(pos + 34)?,
            r16(pos + 36)?,
        );
        let external = r32(pos + 38)?;
        let local_off = r32(pos + 42)? as usize;
        let name = b.get(pos + 46..pos + 46 + name_len).ok_or_else(truncated)?;
        let [_, flags, _, time, date] = central;
        if extra_len != 0 || comment_len != 0 {
            return bad(format!("entry {i} has extra fields or a comment"));
        }
        if disk_start != 0 || internal != 0 {
            return bad(format!("entry {i} has disk or internal attributes"));
        }
        if flags & !FLAG_UTF8 != 0 {
            return bad(format!(
                "entry {i} has flags {flags:#06x} (encryption or data descriptor)"
            ));
        }
        if time != 0 || date != DOS_DATE_1980_01_01 {
            return bad(format!("entry {i} is not dated 1980-01-01 00:00:00"));
        }
        // "Made by": Unix (3), and an APPNOTE version from the one needed up to 6.3.
        let spec = made_by & 0xff;
        if made_by >> 8 != 3 || spec < central[0] || spec > 63 {
            return bad(format!("entry {i} has an invalid version-made-by"));
        }
        if external >> 16 != UNIX_FILE_0644 {
            return bad(format!("entry {i} is not a regular file with mode 0644"));
        }
        if [crc, csize, usize_].contains(&u32::MAX) {
            return bad(format!("entry {i} uses Zip64"));
        }
        if local_off != next_local {
            return bad(format!(
                "entry {i} does not start where the previous one ended"
            ));
        }
        if r32(local_off)? != LOCAL_SIG {
            return bad(format!("entry {i} has no local header"));
        }
        let local = [
            r16(local_off + 4)?,
            r16(local_off + 6)?,
            r16(local_off + 8)?,
            r16(local_off + 10)?,
            r16(local_off + 12)?,
        ];
        let local_sizes = (
            r32(local_off + 14)?,
            r32(local_off + 18)?,
            r32(local_off + 22)?,
        );
        let (local_name_len, local_extra) = (r16(local_off + 26)? as usize, r16(local_off + 28)?);
        let local_name = b
            .get(local_off + 30..local_off + 30 + local_name_len)
            .ok_or_else(truncated)?;
        if local != central
            || local_sizes != (crc, csize, usize_)
            || local_extra != 0
            || local_name != name
        {
            return bad(format!(
                "entry {i}'s local header differs from its central record"
            ));
        }
        // In 64 bits: on 32-bit targets (the wasm verifier) an offset plus a size near 4 GiB
        // overflows `usize`, which would panic in a debug build and wrap in a release one.
        let data_end = local_off as u64 + 30 + local_name_len as u64 + u64::from(csize);
        if data_end > cd_off as u64 {
            return bad(format!("entry {i}'s data runs past the central directory"));
        }
        next_local = data_end as usize;
        pos += 46 + name_len;
    }
    if next_local != cd_off || pos != eocd {
        return bad("bytes between the entries and the central directory".into());
    }
    Ok(())
}

/// The member-name rules: relative, `/`-separated, no empty/`.`/`..` segments, no backslash,
/// colon or control characters.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > 255 {
        return Err("name longer than 255 bytes");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    if name.contains('\\') {
        return Err("backslash in name");
    }
    if name.contains(':') {
        return Err("colon in name (drive letter or stream)");
    }
    if name.chars().any(char::is_control) {
        return Err("control character in name");
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("empty, '.' or '..' path segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn name_rules() {
        for ok in ["audit.jsonl", "ledger/proofs.jsonl", "a/b/c.txt"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "C:/x",
            "a\nb",
            "a/.",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
