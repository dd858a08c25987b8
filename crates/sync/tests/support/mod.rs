//! Helpers for the sync tests against the real engine and cluster: images assembled `FROM
//! scratch` (a static sleeper compiled here, or the host's static busybox), unique names, and
//! guards that remove what a test created.

#![allow(dead_code, clippy::print_stderr, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Label key of the run id (as `skiff_deploy::RUN_ID_LABEL`).
pub const RUN_ID_LABEL: &str = "skaffold.dev/run-id";

/// The static busybox `scripts/devenv/up` installs.
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether `CI=true`: a missing part fails instead of skipping.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `DOCKER_HOST`, passed to the library.
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
}

/// Whether the engine answers and `docker`, `gcc` and busybox exist; else skip (or fail in CI).
pub fn engine_available(test: &str) -> bool {
    let missing = if !docker()
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("no Docker engine answers `docker version`".to_owned())
    } else if Command::new("gcc").arg("--version").output().is_err() {
        Some("`gcc` is not installed".to_owned())
    } else if !Path::new(BUSYBOX).is_file() {
        Some(format!(
            "{BUSYBOX} is missing (scripts/devenv/up installs busybox-static)"
        ))
    } else {
        None
    };
    let Some(missing) = missing else {
        return true;
    };
    assert!(
        !ci(),
        "{test}: {missing}. CI=true requires a Docker engine (`scripts/devenv/up docker`)"
    );
    eprintln!("skipping {test}: {missing}");
    false
}

/// A random lower-case hex string.
pub fn unique() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

pub fn docker() -> Command {
    let mut command = Command::new("docker");
    command.env("DOCKER_BUILDKIT", "0");
    command
}

pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

const SLEEPER_C: &str = "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n";

/// A static binary that sleeps forever, compiled once.
pub fn sleeper() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let binary = dir.join("skiff-sync-sleeper");
        if !binary.is_file() {
            let scratch = dir.join(format!("skiff-sync-sleeper-{}", unique()));
            let source = scratch.with_extension("c");
            std::fs::write(&source, SLEEPER_C).unwrap();
            run(Command::new("gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&scratch)
                .arg(&source));
            std::fs::rename(&scratch, &binary).unwrap();
            let _ = std::fs::remove_file(source);
        }
        binary
    })
}

/// Builds `reference` `FROM scratch`: the sleeper as entrypoint, `/srv/www/msg.txt` = "old",
/// and `extra` Dockerfile lines.
pub fn build_scratch_image(reference: &str, extra: &str) {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(sleeper(), context.path().join("sleeper")).unwrap();
    std::fs::write(context.path().join("msg.txt"), "old").unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY sleeper /sleeper\nCOPY msg.txt /srv/www/msg.txt\n{extra}\nENTRYPOINT [\"/sleeper\"]\n"
        ),
    )
    .unwrap();
    run(docker()
        .args(["build", "-q", "-t", reference])
        .arg(context.path()));
}

/// Builds `reference` `FROM scratch` with the static busybox installed in `/bin` (so `sh`,
/// `tar`, `rm`, `head` exist), `/srv/www/msg.txt` = "old", sleeping.
pub fn build_busybox_image(reference: &str) {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(BUSYBOX, context.path().join("busybox")).unwrap();
    std::fs::write(context.path().join("msg.txt"), "old").unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY msg.txt /srv/www/msg.txt\nENV PATH=/bin\nENTRYPOINT [\"/bin/busybox\", \"sleep\", \"100000\"]\n",
    )
    .unwrap();
    run(docker()
        .args(["build", "-q", "-t", reference])
        .arg(context.path()));
}

/// Removes containers and images on drop (images with `--no-prune`: parents are shared).
#[derive(Debug, Default)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub images: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker().args(["rm", "-f", container]).output();
        }
        for image in &self.images {
            let _ = docker().args(["rmi", "-f", "--no-prune", image]).output();
        }
    }
}

/// A file's content in a container, read with `docker cp` (works on scratch images).
pub fn read_in_container(container: &str, path: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let copied = docker()
        .args(["cp", &format!("{container}:{path}")])
        .arg(&out)
        .output()
        .ok()?;
    if !copied.status.success() {
        return None;
    }
    std::fs::read_to_string(out).ok()
}
