//! Include/exclude globs, their base directories, and the directory walk.
//!
//! Each include pattern is made absolute (relative ones start at the current directory) and
//! split at its first component holding a glob character: the part before is the base
//! directory (the one inotify watches), the rest bounds how deep the walk goes (`**`: any depth,
//! up to [`MAX_DEPTH`]). `*` does not cross `/`. Exclude patterns without `/` match the file
//! name, the others the whole path.
use std::{
    collections::HashSet,
    fs,
    path::{Component, Path, PathBuf},
};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::TailError;

/// How deep a `**` walk goes below its base directory.
const MAX_DEPTH: usize = 32;

/// A directory to walk and watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    pub(crate) dir: PathBuf,
    /// Levels of directories below `dir` that may hold matches (1: only `dir` itself).
    pub(crate) depth: usize,
}

impl Root {
    /// Whether the watch must cover subdirectories.
    pub(crate) fn recursive(&self) -> bool {
        self.depth > 1
    }
}

/// The compiled include and exclude patterns.
#[derive(Debug)]
pub(crate) struct Globs {
    include: GlobSet,
    exclude_path: GlobSet,
    exclude_name: GlobSet,
    roots: Vec<Root>,
}

fn compile(pattern: &str) -> Result<globset::Glob, TailError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|source| TailError::Glob {
            pattern: pattern.to_owned(),
            source,
        })
}

fn build(set: GlobSetBuilder, pattern: &str) -> Result<GlobSet, TailError> {
    set.build().map_err(|source| TailError::Glob {
        pattern: pattern.to_owned(),
        source,
    })
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{', '\\'])
}

/// The base directory and depth of an absolute pattern.
fn root_of(pattern: &Path) -> Root {
    let mut dir = PathBuf::new();
    let mut rest: Vec<&str> = Vec::new();
    for c in pattern.components() {
        let s = c.as_os_str().to_str().unwrap_or("");
        if rest.is_empty() && !(matches!(c, Component::Normal(_)) && has_meta(s)) {
            dir.push(c);
        } else {
            rest.push(s);
        }
    }
    if rest.is_empty() {
        // A literal path: watch its directory.
        let parent = pattern.parent().unwrap_or(Path::new("/")).to_path_buf();
        return Root {
            dir: parent,
            depth: 1,
        };
    }
    let depth = if rest.iter().any(|s| s.contains("**")) {
        MAX_DEPTH
    } else {
        rest.len()
    };
    Root { dir, depth }
}

impl Globs {
    /// Compiles the patterns; errors name the bad one.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, TailError> {
        if include.iter().all(|p| p.trim().is_empty()) {
            return Err(TailError::NoInclude);
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut set = GlobSetBuilder::new();
        let mut roots: Vec<Root> = Vec::new();
        for p in include.iter().filter(|p| !p.trim().is_empty()) {
            let abs = cwd.join(p);
            let abs_str = abs.to_string_lossy().into_owned();
            set.add(compile(&abs_str)?);
            let root = root_of(&abs);
            match roots.iter_mut().find(|r| r.dir == root.dir) {
                Some(r) => r.depth = r.depth.max(root.depth),
                None => roots.push(root),
            }
        }
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in exclude.iter().filter(|p| !p.trim().is_empty()) {
            if p.contains('/') {
                let abs = cwd.join(p).to_string_lossy().into_owned();
                by_path.add(compile(&abs)?);
            } else {
                by_name.add(compile(p)?);
            }
        }
        let first = include.first().map(String::as_str).unwrap_or("");
        let first_ex = exclude.first().map(String::as_str).unwrap_or("");
        Ok(Self {
            include: build(set, first)?,
            exclude_path: build(by_path, first_ex)?,
            exclude_name: build(by_name, first_ex)?,
            roots,
        })
    }

    /// The directories to watch and walk.
    pub(crate) fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// Whether a file path is included and not excluded.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path)
            && !self.exclude_path.is_match(path)
            && !path
                .file_name()
                .is_some_and(|n| self.exclude_name.is_match(Path::new(n)))
    }

    /// The regular files (following symlinks) that match now, sorted by path.
    pub(crate) fn walk(&self) -> Vec<(PathBuf, fs::Metadata)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for root in &self.roots {
            self.walk_dir(&root.dir, root.depth, &mut seen, &mut out);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn walk_dir(
        &self,
        dir: &Path,
        depth: usize,
        seen: &mut HashSet<PathBuf>,
        out: &mut Vec<(PathBuf, fs::Metadata)>,
    ) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let may_be_dir = ft.is_dir() || ft.is_symlink();
            if self.matches(&path) {
                if let Ok(meta) = fs::metadata(&path) {
                    if meta.is_file() {
                        if seen.insert(path.clone()) {
                            out.push((path, meta));
                        }
                        continue;
                    }
                }
            }
            if depth > 1 && may_be_dir && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                self.walk_dir(&path, depth - 1, seen, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(inc: &[&str], exc: &[&str]) -> Globs {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Globs::new(&s(inc), &s(exc)).unwrap()
    }

    #[test]
    fn roots_and_depths() {
        let g = globs(
            &[
                "/var/log/app/*.log",
                "/var/log/app/x/y.log",
                "/a/**/b/*.log",
            ],
            &[],
        );
        assert_eq!(
            g.roots(),
            &[
                Root {
                    dir: "/var/log/app".into(),
                    depth: 1
                },
                Root {
                    dir: "/var/log/app/x".into(),
                    depth: 1
                },
                Root {
                    dir: "/a".into(),
                    depth: MAX_DEPTH
                },
            ]
        );
        assert_eq!(root_of(Path::new("/var/*/x/*.log")).depth, 3);
    }

    #[test]
    fn matching_and_excludes() {
        let g = globs(&["/l/*.log", "/l/**/deep/*.txt"], &["*.gz*", "/l/skip-*"]);
        assert!(g.matches(Path::new("/l/a.log")));
        assert!(!g.matches(Path::new("/l/sub/a.log")), "* does not cross /");
        assert!(g.matches(Path::new("/l/x/y/deep/a.txt")));
        assert!(!g.matches(Path::new("/l/skip-a.log")));
        assert!(!g.matches(Path::new("/l/a.gz.log")));
    }

    #[test]
    fn bad_glob_is_named() {
        let err = Globs::new(&["/var/log/[a.log".into()], &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/var/log/[a.log") && msg.contains("fix the pattern"),
            "{msg}"
        );
        assert!(matches!(Globs::new(&[], &[]), Err(TailError::NoInclude)));
    }

    #[test]
    fn walk_finds_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::create_dir_all(d.join("c.log")).unwrap();
        fs::write(d.join("x.log"), b"").unwrap();
        fs::write(d.join("a/b/y.log"), b"").unwrap();
        fs::write(d.join("a/z.txt"), b"").unwrap();
        std::os::unix::fs::symlink(d.join("x.log"), d.join("link.log")).unwrap();
        let p = |s: &str| d.join(s).to_string_lossy().into_owned();
        let g = Globs::new(&[p("*.log"), p("**/*.log")], &[]).unwrap();
        let found: Vec<PathBuf> = g.walk().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            found,
            vec![d.join("a/b/y.log"), d.join("link.log"), d.join("x.log")]
        );
    }
}
