//! Which files of a directory a dataset version leaves out: an ignore file in gitignore syntax.
//!
//! Every client that turns a directory into a DPM-1 manifest (the CLI and the Node API through
//! the wasm build, the browser from a picked folder, Rust and Python natively) filters paths
//! through this one matcher, so they agree on the file list and hence on the id. The rules
//! (pinned in `docs/formats.md`, "Which files a directory digest covers"):
//!
//! - The ignore file is [`IGNORE_FILE`] at the root of the directory, only there (ignore files
//!   in subdirectories are ordinary files). It is itself a file of the dataset unless it
//!   ignores itself, so the rules that made a version travel with it and the id stays
//!   reproducible from the version's own files.
//! - [`DEFAULT_RULES`] come first: `.git/` is ignored (a repository's object store is not
//!   data). A line `!.git/` in the ignore file brings it back.
//! - gitignore syntax: blank lines and `#` comments are skipped; `\#` and `\!` escape a
//!   leading `#` or `!`; trailing spaces are dropped unless escaped with `\`; `!` re-includes;
//!   a trailing `/` matches directories only; a pattern with a `/` at its start or middle is
//!   anchored at the root, one without matches a name at any depth; `*` and `?` match within
//!   one path segment, `[a-z]`, `[!0-9]` / `[^0-9]` match one character of a class, `**` as a
//!   whole segment matches any number of segments (`**/x`, `a/**/b`, and `a/**`, which
//!   matches what is inside `a` but not `a` itself). The last matching line decides.
//! - A file inside an ignored directory is ignored whatever later lines say (git's rule: the
//!   walk does not enter the directory).
//!
//! The matcher is checked against `git ls-files --others --exclude-standard` over generated
//! trees (`tests/ignore_vs_git.rs`).

/// The name of the ignore file at the root of a dataset directory.
pub const IGNORE_FILE: &str = ".datapilotignore";

/// Rules applied before the ignore file's own.
pub const DEFAULT_RULES: &str = ".git/\n";

/// Longest ignore file accepted, in bytes (an ignore file is a short list of patterns; a huge
/// one is a mistake, and every path is matched against every line).
pub const MAX_IGNORE_FILE_BYTES: usize = 256 * 1024;

/// One line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// `!pattern`: re-include.
    negated: bool,
    /// Trailing `/`: directories only.
    dir_only: bool,
    /// A `/` at the start or middle: matched against the whole path, not just the name.
    anchored: bool,
    /// The pattern's segments.
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments.
    AnySegments,
    /// A glob within one segment.
    Glob(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[...]`: (negated, ranges)
    Class(bool, Vec<(char, char)>),
}

/// A parsed set of ignore rules: [`DEFAULT_RULES`] followed by an ignore file's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// Why an ignore file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgnoreError {
    /// The file is larger than [`MAX_IGNORE_FILE_BYTES`].
    #[error("{IGNORE_FILE} is larger than {MAX_IGNORE_FILE_BYTES} bytes")]
    TooLarge,
    /// The file is not UTF-8.
    #[error("{IGNORE_FILE} is not UTF-8 text")]
    NotUtf8,
}

impl IgnoreRules {
    /// Only the defaults (a directory without an ignore file).
    pub fn defaults() -> Self {
        Self::parse(DEFAULT_RULES)
    }

    /// The defaults followed by the lines of an ignore file's bytes.
    pub fn with_file(bytes: &[u8]) -> Result<Self, IgnoreError> {
        if bytes.len() > MAX_IGNORE_FILE_BYTES {
            return Err(IgnoreError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| IgnoreError::NotUtf8)?;
        let mut rules = Self::defaults();
        rules.rules.extend(Self::parse(text).rules);
        Ok(rules)
    }

    /// Parses lines of gitignore syntax (without the defaults).
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .filter_map(|line| parse_line(line.strip_suffix('\r').unwrap_or(line)))
            .collect();
        Self { rules }
    }

    /// Whether any rule is set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative, `/`-separated, no leading `/`) is ignored, judged on its own
    /// (a walk does not ask about what is inside an ignored directory).
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(name) = segs.last() else {
            return false;
        };
        let mut ignored = false;
        for rule in &self.rules {
            if rule.dir_only && !is_dir {
                continue;
            }
            let hit = if rule.anchored {
                match_segments(&rule.segments, &segs)
            } else {
                match &rule.segments[..] {
                    [Segment::Glob(g)] => match_glob(g, name),
                    _ => false,
                }
            };
            if hit {
                ignored = !rule.negated;
            }
        }
        ignored
    }

    /// Whether `path` or one of its parent directories is ignored: the question for a flat
    /// list of files (a browser's folder pick) that was not produced by a walk.
    pub fn excludes(&self, path: &str) -> bool {
        let mut end = 0;
        for (i, c) in path.char_indices() {
            if c == '/' && i > end {
                if self.is_ignored(&path[..i], true) {
                    return true;
                }
                end = i;
            }
        }
        self.is_ignored(path, false)
    }
}

fn parse_line(line: &str) -> Option<Rule> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut s = line;
    let negated = s.starts_with('!');
    if negated {
        s = &s[1..];
    }
    // Trailing spaces are dropped unless the last one is escaped.
    let trimmed = s.trim_end_matches(' ');
    let s = if trimmed.ends_with('\\') && trimmed.len() < s.len() {
        &s[..trimmed.len() + 1]
    } else {
        trimmed
    };
    let s = s
        .strip_prefix('\\')
        .filter(|r| r.starts_with(['#', '!']))
        .unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let dir_only = s.ends_with('/');
    let s = s.trim_end_matches('/');
    if s.is_empty() {
        return None;
    }
    let anchored = s.contains('/');
    let s = s.strip_prefix('/').unwrap_or(s);
    let segments = s
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p == "**" {
                Segment::AnySegments
            } else {
                Segment::Glob(tokens(p))
            }
        })
        .collect::<Vec<_>>();
    if segments.is_empty() {
        return None;
    }
    Some(Rule {
        negated,
        dir_only,
        anchored,
        segments,
    })
}

fn tokens(p: &str) -> Vec<Token> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(Token::Char(chars[i + 1]));
                i += 2;
                continue;
            }
            '*' => {
                // `**` inside a segment (`a**b`) is a plain `*`.
                while i + 1 < chars.len() && chars[i + 1] == '*' {
                    i += 1;
                }
                out.push(Token::Star);
            }
            '?' => out.push(Token::One),
            '[' => {
                if let Some((class, next)) = class(&chars, i) {
                    out.push(class);
                    i = next;
                    continue;
                }
                out.push(Token::Char('['));
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// Parses `[...]` starting at `start`; the token and the index after `]`, or `None` if the
/// class is not closed (then `[` is literal, as in git).
fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class(negated, ranges), i + 1));
        }
        first = false;
        let lo = if c == '\\' && i + 1 < chars.len() {
            i += 1;
            chars[i]
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            ranges.push((lo, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    None
}

fn match_segments(pat: &[Segment], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((Segment::AnySegments, rest)) => {
            // A trailing `**` matches what is inside, at least one segment.
            let min = usize::from(rest.is_empty());
            (min..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((Segment::Glob(g), rest)) => match path.split_first() {
            Some((seg, tail)) => match_glob(g, seg) && match_segments(rest, tail),
            None => false,
        },
    }
}

fn match_glob(tokens: &[Token], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    glob_at(tokens, &chars)
}

fn glob_at(tokens: &[Token], s: &[char]) -> bool {
    match tokens.split_first() {
        None => s.is_empty(),
        Some((Token::Star, rest)) => (0..=s.len()).any(|k| glob_at(rest, &s[k..])),
        Some((t, rest)) => match s.split_first() {
            Some((c, tail)) => {
                let ok = match t {
                    Token::Char(x) => x == c,
                    Token::One => true,
                    Token::Class(neg, ranges) => {
                        ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg
                    }
                    Token::Star => unreachable!(),
                };
                ok && glob_at(rest, tail)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::with_file(text.as_bytes()).unwrap()
    }

    #[test]
    fn git_directories_are_ignored_by_default_and_can_be_brought_back() {
        let r = IgnoreRules::defaults();
        assert!(r.is_ignored(".git", true));
        assert!(r.is_ignored("sub/.git", true));
        assert!(
            !r.is_ignored(".git", false),
            "a file named .git (a worktree link) is kept"
        );
        assert!(r.excludes(".git/HEAD"));
        assert!(!rules("!.git/\n").is_ignored(".git", true));
    }

    #[test]
    fn names_anchors_and_directories() {
        let r = rules("*.tmp\n/build\ncache/\ndocs/*.md\n# comment\n\n");
        assert!(r.is_ignored("a.tmp", false));
        assert!(r.is_ignored("x/y/a.tmp", false));
        assert!(r.is_ignored("build", true) && r.is_ignored("build", false));
        assert!(!r.is_ignored("src/build", true), "anchored at the root");
        assert!(r.is_ignored("cache", true) && r.is_ignored("a/cache", true));
        assert!(!r.is_ignored("cache", false), "directories only");
        assert!(r.is_ignored("docs/a.md", false));
        assert!(
            !r.is_ignored("docs/x/a.md", false),
            "* stays within a segment"
        );
        assert!(!r.is_ignored("x/docs/a.md", false), "a middle / anchors");
        assert!(!r.is_ignored("# comment", false));
    }

    #[test]
    fn negation_last_match_wins_and_double_stars() {
        let r = rules("*.log\n!keep.log\nlogs/**\n!logs/important\n**/tmp/*.bin\na/**/z\n");
        assert!(r.is_ignored("x.log", false));
        assert!(!r.is_ignored("keep.log", false));
        assert!(
            !r.is_ignored("logs", true),
            "a/** is what is inside, not a itself"
        );
        assert!(r.is_ignored("logs/x", false));
        assert!(!r.is_ignored("logs/important", false));
        assert!(r.is_ignored("tmp/a.bin", false) && r.is_ignored("p/q/tmp/a.bin", false));
        assert!(r.is_ignored("a/z", false) && r.is_ignored("a/b/c/z", false));
        assert!(!r.is_ignored("b/a/z", false));
    }

    #[test]
    fn classes_escapes_and_spaces() {
        let r = rules("[abc].txt\nn[!0-9]\n\\#hash\n\\!bang\ntrail   \nesc\\ \n");
        assert!(r.is_ignored("a.txt", false) && !r.is_ignored("d.txt", false));
        assert!(r.is_ignored("nx", false) && !r.is_ignored("n5", false));
        assert!(r.is_ignored("#hash", false));
        assert!(r.is_ignored("!bang", false));
        assert!(r.is_ignored("trail", false));
        assert!(r.is_ignored("esc ", false));
    }

    #[test]
    fn inside_an_ignored_directory_stays_ignored() {
        let r = rules("out/\n!out/keep\n");
        assert!(r.excludes("out/keep"));
        assert!(!r.excludes("other/keep"));
    }

    #[test]
    fn oversized_or_binary_files_are_refused() {
        assert_eq!(
            IgnoreRules::with_file(&vec![b'x'; MAX_IGNORE_FILE_BYTES + 1]),
            Err(IgnoreError::TooLarge)
        );
        assert_eq!(
            IgnoreRules::with_file(&[0xff, 0xfe]),
            Err(IgnoreError::NotUtf8)
        );
    }
}
