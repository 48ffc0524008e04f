//! `datapilot::files::hash_directory` (what the Python package's `register_dataset` hashes)
//! gives the coreutils recipe's id on a directory with the awkward cases — nesting, hidden
//! files and `.git/`, NFC names, empty files, a file larger than the read chunk, symlinks to a
//! file and to a directory (inside and outside the root), a FIFO — and refuses what it must.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::ops::ControlFlow;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use datapilot::files::{hash_directory, DirError, DirOptions, SkipReason, SymlinkPolicy};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "files-{tag}-{}-{}",
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

/// The recipe of docs/formats.md, run by sh; GNU coreutils are part of the set-up, so a
/// missing one fails the test instead of skipping the comparison.
fn coreutils_digest(root: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        )
        .current_dir(root)
        .output()
        .expect("sh, find, sort, xargs and sha256sum are required (GNU coreutils/findutils)");
    assert!(out.status.success(), "coreutils recipe failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn digest(root: &Path, options: &DirOptions) -> Result<datapilot::files::DirDigest, DirError> {
    hash_directory(root, options, |_| ControlFlow::Continue(()))
}

fn tricky(root: &Path, outside: &Path) {
    write(root, "README.md", b"# data\n");
    write(root, "train/part-0001.csv", b"id,label\n1,cat\n2,dog\n");
    write(root, "train/nested/deeper/x.bin", &[0u8, 1, 2, 255]);
    write(root, "with space/a b.txt", b"spaces\n");
    write(root, "données/é.csv", "x,y\n1,2\n".as_bytes());
    write(root, ".hidden", b"hidden files count\n");
    write(root, ".git/HEAD", b"ref: refs/heads/main\n");
    write(root, "empty", b"");
    // Larger than one read chunk (1 MiB), not a multiple of it.
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    write(root, "big/blob.bin", &big);
    write(outside, "secret.txt", b"outside the root\n");
    symlink("README.md", root.join("link-to-file")).unwrap();
    symlink("train", root.join("link-to-dir")).unwrap();
    symlink(outside, root.join("link-outside")).unwrap();
    symlink("does-not-exist", root.join("dangling")).unwrap();
    let fifo = root.join("a-fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
}

/// The `find` recipe's rules: every regular file, links left out.
fn find_rules() -> DirOptions {
    DirOptions::default()
        .with_symlinks(SymlinkPolicy::Skip)
        .with_ignore(false)
}

#[test]
fn same_id_as_coreutils_and_symlinks_skipped() {
    let dir = TempDir::new("tricky");
    let outside = TempDir::new("outside");
    tricky(&dir.0, &outside.0);
    let expected = coreutils_digest(&dir.0);
    for threads in [1, 2, 7] {
        let d = digest(&dir.0, &find_rules().with_threads(threads)).unwrap();
        assert_eq!(d.manifest.digest(), expected, "threads {threads}");
        assert_eq!(d.manifest.len(), 9);
    }
    let d = digest(&dir.0, &find_rules()).unwrap();
    let skipped: Vec<(&str, SkipReason)> = d
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("a-fifo", SkipReason::NotRegular),
            ("dangling", SkipReason::Symlink),
            ("link-outside", SkipReason::Symlink),
            ("link-to-dir", SkipReason::Symlink),
            ("link-to-file", SkipReason::Symlink),
        ]
    );
    // Nothing outside the root and nothing behind a link was hashed.
    assert!(d
        .manifest
        .files()
        .iter()
        .all(|f| !f.path.starts_with("link") && f.path != "secret.txt"));
    assert!(d.manifest.files().iter().any(|f| f.path == ".git/HEAD"));
}

#[test]
fn refuse_policy_names_the_first_symlink_before_hashing() {
    let dir = TempDir::new("refuse");
    let outside = TempDir::new("refuse-out");
    tricky(&dir.0, &outside.0);
    let err = digest(
        &dir.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::Refuse),
    )
    .unwrap_err();
    match &err {
        DirError::Symlink { path, target } => {
            assert_eq!(path, "dangling");
            assert_eq!(target.as_deref(), Some(Path::new("does-not-exist")));
        }
        other => panic!("expected a symlink refusal, got {other:?}"),
    }
    assert!(err.to_string().contains("\"dangling\""), "{err}");
    // Without symlinks the refuse policy hashes as usual.
    let plain = TempDir::new("plain");
    write(&plain.0, "a", b"a\n");
    let d = digest(
        &plain.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::Refuse),
    )
    .unwrap();
    assert_eq!(d.manifest.digest(), coreutils_digest(&plain.0));
}

#[test]
fn clear_errors_for_bad_roots_and_names() {
    let dir = TempDir::new("bad");
    assert!(matches!(
        digest(&dir.0, &DirOptions::default()),
        Err(DirError::Empty { .. })
    ));
    write(&dir.0, "file", b"x");
    assert!(matches!(
        digest(&dir.0.join("file"), &DirOptions::default()),
        Err(DirError::NotADirectory { .. })
    ));
    let missing = digest(&dir.0.join("missing"), &DirOptions::default()).unwrap_err();
    assert!(matches!(missing, DirError::Io { .. }));
    assert!(missing.to_string().contains("missing"), "{missing}");
    // A backslash cannot be a DPM-1 path (sha256sum would escape the line): refused, named.
    write(&dir.0, "a\\b", b"x");
    let err = digest(&dir.0, &DirOptions::default()).unwrap_err();
    assert!(
        matches!(err, DirError::Manifest(_)) && err.to_string().contains("a\\\\b"),
        "{err}"
    );
}

#[test]
fn progress_runs_on_the_caller_and_can_cancel() {
    let dir = TempDir::new("progress");
    for i in 0..64 {
        write(&dir.0, &format!("f{i:02}"), &vec![i as u8; 300_000]);
    }
    let caller = std::thread::current().id();
    let mut last = None;
    let d = hash_directory(&dir.0, &DirOptions::default(), |p| {
        assert_eq!(std::thread::current().id(), caller);
        last = Some(*p);
        ControlFlow::Continue(())
    })
    .unwrap();
    let last = last.expect("a final progress report");
    assert_eq!(last.bytes_hashed, 64 * 300_000);
    assert_eq!(last.total_bytes, 64 * 300_000);
    assert_eq!(last.files_hashed, 64);
    assert_eq!(d.manifest.total_bytes(), 64 * 300_000);
    let err = hash_directory(&dir.0, &DirOptions::default(), |_| ControlFlow::Break(()));
    assert!(matches!(err, Err(DirError::Cancelled)));
}

/// The coreutils re-check over an explicit file list (what the CLI prints with
/// `--list-files`): `sha256sum` follows links.
fn coreutils_over(root: &Path, paths: &[&str]) -> String {
    let list = root.with_extension("list");
    fs::write(
        &list,
        paths.iter().map(|p| format!("{p}\n")).collect::<String>(),
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("xargs -d '\\n' -a \"$1\" sha256sum | sha256sum")
        .arg("sh")
        .arg(&list)
        .current_dir(root)
        .output()
        .unwrap();
    let _ = fs::remove_file(&list);
    assert!(out.status.success(), "{out:?}");
    format!(
        "sha256:{}",
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    )
}

#[test]
fn the_cli_rules_ignore_git_refuse_links_and_follow_them_when_asked() {
    let dir = TempDir::new("rules");
    let outside = TempDir::new("rules-out");
    tricky(&dir.0, &outside.0);
    write(&dir.0, ".datapilotignore", b"big/\n*.bin\n");
    // The default: refuse, naming the first link in path order.
    match digest(&dir.0, &DirOptions::default()) {
        Err(DirError::Symlink { path, .. }) => assert_eq!(path, "dangling"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Following: a dangling link is an error naming it; once gone, a link leaving the root.
    match digest(
        &dir.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::Follow),
    ) {
        Err(DirError::DanglingSymlink { path }) => assert_eq!(path, "dangling"),
        other => panic!("expected a dangling link error, got {other:?}"),
    }
    fs::remove_file(dir.0.join("dangling")).unwrap();
    match digest(
        &dir.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::Follow),
    ) {
        Err(DirError::SymlinkOutsideRoot { path, .. }) => assert_eq!(path, "link-outside"),
        other => panic!("expected an outside-the-root error, got {other:?}"),
    }
    let d = digest(
        &dir.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::FollowOutsideRoot),
    )
    .unwrap();
    let paths: Vec<&str> = d.manifest.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".datapilotignore",
            ".hidden",
            "README.md",
            "donn\u{e9}es/\u{e9}.csv",
            "empty",
            "link-outside/secret.txt",
            "link-to-dir/part-0001.csv",
            "link-to-file",
            "train/part-0001.csv",
            "with space/a b.txt",
        ],
        ".git/, big/ and *.bin left out; links followed"
    );
    assert_eq!(d.excluded, 4, ".git, big, two x.bin");
    assert_eq!(d.manifest.digest(), coreutils_over(&dir.0, &paths));
    // A loop.
    symlink("..", dir.0.join("train/up")).unwrap();
    match digest(
        &dir.0,
        &DirOptions::default().with_symlinks(SymlinkPolicy::FollowOutsideRoot),
    ) {
        Err(DirError::SymlinkLoop { path }) => assert_eq!(path, "train/up"),
        other => panic!("expected a loop error, got {other:?}"),
    }
}
