//! The one way integration tests run `litert`: a [`TestContext`] is a scratch project (a
//! temporary directory with its own `.git` root, holding copies of the repository files the
//! test needs), the environment every run gets, and the insta filters its snapshots use.
//! Tests never run `litert` in the checkout, so its `litert.lock`, `snapshots/` and
//! `build/` stay as committed. (The model is uv's `crates/uv/tests/it/common`.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of `litert` did.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit code and stderr in one text, the way a snapshot should show a diagnostic.
    pub fn diagnostic(&self) -> String {
        format!("exit code: {}\n{}", self.code, self.stderr)
    }
}

/// The checkout, for reading fixtures and sources (never a working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The worker cache every test shares, so the Python environment is provisioned once per
/// machine (about 2 minutes and 2.5 GB) and reused by every test and run.
pub fn cache_dir() -> PathBuf {
    root().join("target").join("litert-cache")
}

/// Digests, free space, times and pin counts: what changes between machines and runs in
/// the output of `litert env`.
pub const ENV_FILTERS: &[(&str, &str)] = &[
    (r"\b[0-9a-f]{64}\b", "[DIGEST]"),
    (r"\b[0-9a-f]{16}\b", "[DIGEST16]"),
    (r"\d+(\.\d+)? [kKMGT]?i?B free", "[SIZE] free"),
    (r"\b\d+\.\d+s\b", "[TIME]"),
    (r"\b\d+ pins\b", "[N] pins"),
];

/// Package and Python versions, which change with the lock: the shape of the output is
/// what is tested.
pub const VERSION_FILTER: (&str, &str) = (r"\b\d+(\.\d+)+(\.post\d+)?\b", "[V]");

/// A scratch project, the environment `litert` runs in, and the filters of its snapshots.
pub struct TestContext {
    dir: tempfile::TempDir,
    /// Variables to set (`Some`) or remove (`None`), after the defaults.
    env: Vec<(String, Option<OsString>)>,
    /// Literal text in the output (temporary paths) and what it reads as in assertions.
    replacements: Vec<(String, String)>,
    filters: Vec<(String, String)>,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    /// An empty scratch project: a temporary directory that is its own `.git` root.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(".git")).expect(".git");
        Self {
            dir,
            env: Vec::new(),
            replacements: Vec::new(),
            filters: Vec::new(),
        }
    }

    /// A scratch project holding copies of the named repository files and of every file
    /// directly inside the named directories, at the same relative paths.
    pub fn scratch(dirs: &[&str], files: &[&str]) -> Self {
        let ctx = Self::new();
        let mut all: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        for d in dirs {
            for entry in std::fs::read_dir(root().join(d))
                .expect("fixture dir")
                .flatten()
            {
                if entry.path().is_file() {
                    all.push(format!("{d}/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        for rel in all {
            ctx.copy(&rel);
        }
        ctx
    }

    /// A scratch copy of the repository's example project (`recipes/`, `models/`, `data/`,
    /// `snapshots/`, `schemas/`, `litert.lock`).
    pub fn example_project() -> Self {
        let ctx = Self::new();
        for d in ["recipes", "models", "data", "snapshots", "schemas"] {
            ctx.copy_tree(d);
        }
        ctx.copy("litert.lock");
        ctx
    }

    /// The example project with the test fixtures (`tests/fixtures/`), for the recipe and
    /// model corpora, which name the examples' models and data by relative path.
    pub fn with_fixtures() -> Self {
        let ctx = Self::example_project();
        ctx.copy_tree("tests/fixtures");
        ctx
    }

    /// Copy a repository file into the project, at the same relative path.
    pub fn copy(&self, rel: &str) -> &Self {
        let dest = self.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root().join(rel), &dest).unwrap_or_else(|e| panic!("copy {rel}: {e}"));
        self
    }

    /// Copy a repository directory tree into the project, at the same relative path.
    pub fn copy_tree(&self, rel: &str) -> &Self {
        copy_tree(&root().join(rel), &self.join(rel));
        self
    }

    /// The project's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the project.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Set a variable for every run.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_string(), Some(value.into())));
        self
    }

    /// Remove a variable for every run.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.push((key.to_string(), None));
        self
    }

    /// A private, empty worker cache instead of the shared one, shown as `[CACHE]`.
    pub fn private_cache(self) -> Self {
        let cache = self.join("cache");
        std::fs::create_dir_all(&cache).expect("cache dir");
        self.env("LITERT_CACHE_DIR", &cache)
            .replace(&cache.display().to_string(), "[CACHE]")
    }

    /// Show `text` as `placeholder` in every output (a temporary path, say).
    pub fn replace(mut self, text: &str, placeholder: &str) -> Self {
        self.replacements
            .push((text.to_string(), placeholder.to_string()));
        self
    }

    /// An insta filter for this context's snapshots.
    pub fn filter(mut self, regex: &str, replacement: &str) -> Self {
        self.filters
            .push((regex.to_string(), replacement.to_string()));
        self
    }

    /// Several insta filters (e.g. [`ENV_FILTERS`]).
    pub fn filters_from(mut self, filters: &[(&str, &str)]) -> Self {
        for (regex, replacement) in filters {
            self = self.filter(regex, replacement);
        }
        self
    }

    /// This context's insta filters, as `insta::with_settings!` takes them.
    pub fn filters(&self) -> Vec<(&str, &str)> {
        self.filters
            .iter()
            .map(|(r, s)| (r.as_str(), s.as_str()))
            .collect()
    }

    /// `litert ARGS` in `dir` with the test environment: no colour, no progress lines, the
    /// shared worker cache, and nothing from the caller's `LITERT_PYTHON`, `CI` or
    /// `LITERT_PROGRESS`; then this context's own variables.
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_litert"));
        cmd.args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("LITERT_NO_PROGRESS", "1")
            .env("LITERT_CACHE_DIR", cache_dir())
            .env_remove("LITERT_PYTHON")
            .env_remove("LITERT_PROGRESS")
            .env_remove("CI");
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// [`Self::command_in`] the project's root.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(self.path(), args)
    }

    /// Run `litert ARGS` in the project's root.
    pub fn litert(&self, args: &[&str]) -> Output {
        self.litert_in(self.path(), args)
    }

    /// Run `litert ARGS` in the project's root with further variables for this run.
    pub fn litert_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.output(&mut cmd)
    }

    /// Run `litert ARGS` in `dir` (a directory of the project, or another scratch one).
    pub fn litert_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.output(&mut self.command_in(dir, args))
    }

    /// Run a command made by [`Self::command`], its output with this context's replacements.
    pub fn output(&self, cmd: &mut Command) -> Output {
        let out = cmd.output().expect("the litert binary runs");
        let clean = |bytes: &[u8]| {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            for (from, to) in &self.replacements {
                text = text.replace(from.as_str(), to);
            }
            text
        };
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }

    /// `litert check` on a corpus file of the repository, named by its relative path (as
    /// its snapshot shows it). Whatever the file holds, `check` must not panic.
    pub fn check_fixture(&self, path: &Path) -> (String, Output) {
        let rel = path
            .strip_prefix(root())
            .expect("fixture inside the repository")
            .to_string_lossy()
            .into_owned();
        let out = self.litert(&["check", &rel]);
        assert!(
            !out.stderr.contains("panicked"),
            "{rel} panicked:\n{}",
            out.stderr
        );
        (rel, out)
    }
}

/// Parse `litert apply --json` (or `test --json`) output into (id -> artifact entry).
pub fn artifacts(out: &Output) -> std::collections::BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "apply --json printed no JSON ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    v["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| (a["id"].as_str().unwrap_or_default().to_string(), a.clone()))
        .collect()
}

/// Copy a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dest);
        } else {
            std::fs::copy(&src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// `insta::assert_snapshot!` with the filters of a [`TestContext`].
#[allow(unused_macros)]
macro_rules! snapshot {
    ($ctx:expr, $($args:tt)+) => {
        insta::with_settings!({filters => $ctx.filters()}, {
            insta::assert_snapshot!($($args)+);
        })
    };
}
pub(crate) use snapshot;
