//! End-to-end tests of the `skiff` binary live in this package's `tests/` directory; this
//! library gives them the binary and the workspace's paths.

pub mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory of the root `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests)
}

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(path)
}

/// The `skiff` binary, built once per test process (`cargo build -p skiff-cli --bin skiff`)
/// with the cargo that runs the tests, into the workspace's target directory
/// (`CARGO_TARGET_DIR` if set, else `<workspace>/target`). Panics with cargo's output when
/// the build fails.
pub fn skiff_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(root)
        .args([
            "build",
            "-q",
            "-p",
            "skiff-cli",
            "--bin",
            "skiff",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", Path::new(&cargo).display()));
    assert!(
        output.status.success(),
        "building skiff failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let bin = target
        .join("debug")
        .join(format!("skiff{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "cargo built skiff, but {} is not there",
        bin.display()
    );
    bin
}
