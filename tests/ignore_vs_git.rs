//! The ignore-file matcher (`datapilot::ignore`) against git itself: for generated trees and
//! rule sets, the files a walk keeps (not entering ignored directories) must be exactly what
//! `git ls-files --others --exclude-standard` lists for the same tree with the same lines in
//! `.gitignore`. Skipped (with a message) when git is not installed.

#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use datapilot::ignore::IgnoreRules;

const TREE: &[&str] = &[
    "a.txt",
    "a.log",
    "keep.log",
    "b/a.txt",
    "b/c/d.tmp",
    "b/c/e.bin",
    "build/out.o",
    "src/build/x.rs",
    "docs/readme.md",
    "docs/sub/deep.md",
    "x/docs/readme.md",
    "logs/1.log",
    "logs/important",
    "logs/sub/2.log",
    "tmp/a.bin",
    "p/q/tmp/b.bin",
    "n1",
    "nx",
    "cache/c",
    "a/cache/c",
    "ca/che",
    "#hash",
    "!bang",
    "data/train/img_001.JPEG",
    "data/val/img_9.jpeg",
    "deep/a/b/c/z",
    "deep/z",
    "z",
    ".hidden",
    ".hf/cache/blob",
    "[x].txt",
    "sp ace.txt",
];

const RULE_SETS: &[&str] = &[
    "",
    "*.log\n!keep.log\n",
    "/build\ncache/\ndocs/*.md\n",
    "logs/**\n!logs/important\n**/tmp/*.bin\n",
    "deep/**/z\n[abc].txt\nn[!0-9]\n\\#hash\n\\!bang\n",
    "*.jpeg\n*.JPEG\n!data/val/\n.h*\n",
    "b/\n!b/a.txt\nsp\\ ace.txt\n\\[x\\].txt\n",
    "*\n!*/\n!*.txt\n",
    "**/c\n/z\nca*/\n",
];

fn walk(root: &Path, rel: &str, rules: &IgnoreRules, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = e.file_type().unwrap().is_dir();
        if rules.is_ignored(&path, is_dir) {
            continue;
        }
        if is_dir {
            walk(root, &path, rules, out);
        } else {
            out.insert(path);
        }
    }
}

#[test]
fn the_matcher_keeps_what_git_keeps() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("git is not installed: skipping the comparison with git");
        return;
    }
    for (i, text) in RULE_SETS.iter().enumerate() {
        let tmp = std::env::temp_dir().join(format!("datapilot-ignore-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let root = tmp.as_path();
        for f in TREE {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
        std::fs::write(root.join(".gitignore"), text).unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(root)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        git(&["init", "-q"]);
        let listed = git(&["ls-files", "-z", "--others", "--exclude-standard"]);
        let expected: BTreeSet<String> = listed
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let rules = IgnoreRules::with_file(text.as_bytes()).unwrap();
        let mut ours = BTreeSet::new();
        walk(root, "", &rules, &mut ours);
        assert_eq!(ours, expected, "rule set {i}:\n{text}");
        // A flat list (a browser's folder pick) judged path by path agrees with the walk.
        let flat: BTreeSet<String> = TREE
            .iter()
            .map(|s| s.to_string())
            .chain([".gitignore".to_string()])
            .filter(|p| !rules.excludes(p))
            .collect();
        assert_eq!(flat, expected, "rule set {i} (flat list):\n{text}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
