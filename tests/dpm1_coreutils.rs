//! DPM-1 digests computed by the crate (streaming 64 KiB chunks through
//! `FileHasher`) equal the coreutils pipeline of `docs/formats.md` on a
//! directory with the awkward cases: nesting, spaces, non-ASCII NFC names,
//! hidden files, empty files and a file larger than 8 MiB.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use datapilot::manifest::{FileHasher, ManifestBuilder};

const CHUNK: usize = 64 * 1024;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "dpm1-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Walks `dir` like `find -type f`, streaming every regular file through a
/// FileHasher in 64 KiB chunks, and returns the DPM-1 digest.
fn crate_digest(root: &Path) -> String {
    fn walk(root: &Path, dir: &Path, builder: &mut ManifestBuilder) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            let path = entry.path();
            if ty.is_dir() {
                walk(root, &path, builder);
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let mut file = fs::File::open(&path).unwrap();
                let mut hasher = FileHasher::new();
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = file.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                let (sha, size) = hasher.finish();
                builder.add_file(&rel, &sha, size).unwrap();
            }
            // Symlinks and other file types are not regular files: skipped, as by find -type f.
        }
    }
    let mut builder = ManifestBuilder::new();
    walk(root, root, &mut builder);
    builder.finish().unwrap().digest().to_owned()
}

fn coreutils_digest(root: &Path) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        )
        .current_dir(root)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(format!("sha256:{}", text.split_whitespace().next()?))
}

/// GNU coreutils are part of the project's set-up (`./x setup`): a missing `sha256sum` fails
/// the test with this message rather than letting it pass without comparing anything.
fn require_coreutils() {
    let ok = Command::new("sha256sum")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "GNU coreutils' sha256sum is required by the DPM-1 cross-check and was not found on \
         PATH (install coreutils, e.g. with ./x setup)"
    );
}

#[test]
fn tricky_directory_matches_coreutils() {
    require_coreutils();
    let dir = TempDir::new("tricky");
    let root = &dir.0;
    write(root, "README.md", b"# data\n");
    write(root, "train/part-0001.csv", b"id,label\n1,cat\n2,dog\n");
    write(root, "train/nested/deeper/x.bin", &[0u8, 1, 2, 255]);
    write(root, "with space/file name.txt", b"spaces\n");
    write(root, "donn\u{e9}es/\u{e9}.csv", "é,ü\n".as_bytes());
    write(root, "\u{65e5}\u{672c}/\u{1f600}.json", b"{}\n");
    write(root, ".hidden", b"secret-ish\n");
    write(root, "train/.DS_Store", b"");
    write(root, "empty.txt", b"");
    write(root, "a", b"a\n");
    write(root, "a0", b"a0\n");
    write(root, "B", b"B\n");
    write(root, "_", b"_\n");
    // Bigger than 8 MiB and not a multiple of the chunk size.
    let big: Vec<u8> = (0..(8 * 1024 * 1024 + 12_345u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write(root, "big/blob.bin", &big);
    // An empty directory contributes nothing.
    fs::create_dir_all(root.join("empty-dir/sub")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("README.md", root.join("link-to-readme")).unwrap();

    let want = coreutils_digest(root).expect("coreutils pipeline failed");
    assert_eq!(crate_digest(root), want);
}

#[test]
fn single_file_matches_coreutils() {
    require_coreutils();
    let dir = TempDir::new("single");
    write(&dir.0, "only.txt", b"hello\n");
    assert_eq!(crate_digest(&dir.0), coreutils_digest(&dir.0).unwrap());
}
