//! `ko:` artifacts: a Go program built with `go build` (`CGO_ENABLED=0`, `GOOS`/`GOARCH` of
//! the target platform, the artifact's `flags`, `ldflags`, `env`, `main` and `dir`) and put on
//! a base image (`fromImage`, default `scratch`) at `/ko-app/<name>`, which is the entrypoint —
//! ko's contract. `<name>` is the last element of the main package's import path. A `kodata`
//! directory next to the main package is copied to `/var/run/ko` (`KO_DATA_PATH`), as ko does.
//!
//! The image is assembled and delivered by [`crate::oci::DaemonlessBuilder`]; no Docker build
//! is involved.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::artifact::KoSpec;
use crate::oci::DaemonlessBuilder;
use crate::oci::image::{Image, Platform};
use crate::oci::layer::{FileSource, LayerBuilder, LayerEntry};
use crate::{BuildError, BuildRequest};

/// Where ko puts the binary.
pub const APP_DIR: &str = "/ko-app";
/// Where ko puts `kodata`.
pub const DATA_DIR: &str = "/var/run/ko";
/// The `PATH` of a base without one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directory `go build` runs in.
pub fn build_dir(context: &Path, spec: &KoSpec) -> PathBuf {
    if spec.dir.trim().is_empty() || spec.dir == "." {
        context.to_path_buf()
    } else {
        context.join(&spec.dir)
    }
}

fn main_package(spec: &KoSpec) -> &str {
    let main = spec.main.trim();
    if main.is_empty() { "." } else { main }
}

/// The binary's name: the last element of the main package's import path (the module path
/// from `go.mod` joined with the package's directory below it).
pub fn binary_name(context: &Path, spec: &KoSpec) -> Result<String, String> {
    let dir = build_dir(context, spec);
    let main = main_package(spec);
    let package_dir = crate::dockerignore::clean_path(&format!("{}/{main}", dir.to_string_lossy()));
    let package_dir = PathBuf::from(package_dir);
    let mut module_dir = Some(package_dir.as_path());
    while let Some(candidate) = module_dir {
        let go_mod = candidate.join("go.mod");
        if let Ok(text) = std::fs::read_to_string(&go_mod) {
            let module = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("module "))
                .map(|m| m.trim().trim_matches('"').to_owned())
                .ok_or_else(|| format!("{} has no `module` line", go_mod.display()))?;
            let below = package_dir
                .strip_prefix(candidate)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let import = if below.is_empty() {
                module
            } else {
                format!("{module}/{below}")
            };
            let name = import.rsplit('/').next().unwrap_or(&import);
            // A major-version suffix (`/v2`) is not the program's name.
            let name = if name.len() > 1
                && name.starts_with('v')
                && name[1..].chars().all(|c| c.is_ascii_digit())
            {
                import.rsplit('/').nth(1).unwrap_or(name)
            } else {
                name
            };
            return Ok(name.to_owned());
        }
        module_dir = candidate.parent();
    }
    Err(format!(
        "no go.mod found in {} or above; ko artifacts must be Go modules",
        package_dir.display()
    ))
}

/// Runs `go build` for `platform`, writing the binary to `out`.
pub async fn go_build(
    image: &str,
    context: &Path,
    spec: &KoSpec,
    platform: &Platform,
    env: &BTreeMap<String, String>,
    out: &Path,
) -> Result<(), BuildError> {
    let mut command = tokio::process::Command::new("go");
    command.arg("build").arg("-trimpath").args(&spec.flags);
    if !spec.ldflags.is_empty() {
        command.arg(format!("-ldflags={}", spec.ldflags.join(" ")));
    }
    command.arg("-o").arg(out).arg(main_package(spec));
    command.current_dir(build_dir(context, spec));
    command.env_clear();
    command.envs(env);
    for entry in &spec.env {
        if let Some((k, v)) = entry.split_once('=') {
            command.env(k, v);
        }
    }
    command.env("CGO_ENABLED", "0");
    command.env("GOOS", &platform.os);
    command.env("GOARCH", &platform.architecture);
    if platform.architecture == "arm" {
        if let Some(v) = platform
            .variant
            .as_deref()
            .and_then(|v| v.strip_prefix('v'))
        {
            command.env("GOARM", v);
        }
    }
    let shown = format!(
        "go build -trimpath {}{}-o {} {}",
        spec.flags
            .iter()
            .map(|f| format!("{f} "))
            .collect::<String>(),
        if spec.ldflags.is_empty() {
            String::new()
        } else {
            format!("-ldflags=\"{}\" ", spec.ldflags.join(" "))
        },
        out.display(),
        main_package(spec)
    );
    let output = command.output().await.map_err(|e| BuildError::Command {
        image: image.to_owned(),
        command: shown.clone(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "`go` is not on the PATH; install Go (Debian: golang-go)".into()
        } else {
            e.to_string()
        },
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(BuildError::Failed {
            image: image.to_owned(),
            reason: format!(
                "`{shown}` in {} failed ({}):\n{}",
                build_dir(context, spec).display(),
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    Ok(())
}

/// The layer holding the binary (and `kodata`, when present).
fn app_layer(binary: &Path, name: &str, kodata: Option<&Path>) -> Result<LayerBuilder, BuildError> {
    let mut layer = LayerBuilder::new();
    layer.add(LayerEntry::dir(APP_DIR, 0o755));
    layer.add(LayerEntry::file(
        format!("{APP_DIR}/{name}"),
        0o755,
        FileSource::Host(binary.to_path_buf()),
    ));
    if let Some(kodata) = kodata {
        layer.add(LayerEntry::dir("/var", 0o755));
        layer.add(LayerEntry::dir("/var/run", 0o755));
        layer.add(LayerEntry::dir(DATA_DIR, 0o755));
        let ignore = crate::dockerignore::DockerIgnore::empty();
        let mut entries = Vec::new();
        crate::dependencies::walk(kodata, "", &ignore, &mut |entry| {
            let target = format!("{DATA_DIR}/{}", entry.rel);
            let mode = entry.metadata.permissions().mode() & 0o7777;
            match entry.kind {
                crate::dependencies::EntryKind::Dir => entries.push(LayerEntry::dir(target, mode)),
                crate::dependencies::EntryKind::File => entries.push(LayerEntry::file(
                    target,
                    mode,
                    FileSource::Host(entry.path.clone()),
                )),
                crate::dependencies::EntryKind::Symlink => {
                    let link =
                        std::fs::read_link(&entry.path).map_err(|source| BuildError::Io {
                            path: entry.path.clone(),
                            source,
                        })?;
                    entries.push(LayerEntry::symlink(target, link.to_string_lossy()));
                }
                crate::dependencies::EntryKind::Other => {}
            }
            Ok(())
        })?;
        for entry in entries {
            layer.add(entry);
        }
    }
    Ok(layer)
}

/// Builds the binary for each platform and assembles the images.
pub(crate) async fn assemble(
    builder: &DaemonlessBuilder,
    request: &BuildRequest<'_>,
    spec: &KoSpec,
) -> Result<Vec<Image>, BuildError> {
    let artifact = request.artifact;
    let name = binary_name(&artifact.context, spec).map_err(|reason| BuildError::Failed {
        image: artifact.image.clone(),
        reason,
    })?;
    let base_ref = spec
        .from_image
        .clone()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "scratch".into());
    let platforms: Vec<Platform> = if artifact.platforms.is_empty() {
        vec![crate::oci::builder::host_platform()]
    } else {
        artifact
            .platforms
            .iter()
            .map(|p| {
                p.parse().map_err(|reason| BuildError::Failed {
                    image: artifact.image.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?
    };
    let kodata = {
        let dir = build_dir(&artifact.context, spec)
            .join(main_package(spec))
            .join("kodata");
        dir.is_dir().then_some(dir)
    };
    let scratch = tempdir_for(&artifact.image)?;
    let mut images = Vec::new();
    for platform in platforms {
        let out = scratch.join(format!("{name}-{}-{}", platform.os, platform.architecture));
        go_build(
            &artifact.image,
            &artifact.context,
            spec,
            &platform,
            request.env,
            &out,
        )
        .await?;
        let (mut image, _dirs) = builder
            .base(&base_ref, &platform, &artifact.image, false)
            .await?;
        let layer = app_layer(&out, &name, kodata.as_deref())?.build()?;
        let _ = std::fs::remove_file(&out);
        image.add_layer(&layer, &format!("ko: go build {}", main_package(spec)));
        let entry = format!("{APP_DIR}/{name}");
        let labels = spec.labels.clone();
        image.update_runtime(|c| {
            let mut env = c.env().clone().unwrap_or_default();
            let path = env
                .iter()
                .find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
                .unwrap_or_else(|| DEFAULT_PATH.to_owned());
            env.retain(|e| !e.starts_with("PATH=") && !e.starts_with("KO_DATA_PATH="));
            env.push(format!("PATH={path}:{APP_DIR}"));
            env.push(format!("KO_DATA_PATH={DATA_DIR}"));
            c.set_env(Some(env));
            c.set_entrypoint(Some(vec![entry]));
            c.set_cmd(None);
            if !labels.is_empty() {
                let mut all = c.labels().clone().unwrap_or_default();
                all.extend(labels);
                c.set_labels(Some(all));
            }
        });
        images.push(image);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(images)
}

/// A fresh private directory for build outputs.
fn tempdir_for(image: &str) -> Result<PathBuf, BuildError> {
    let safe: String = image
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("skiff-ko-{safe}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn binary_names_follow_the_import_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("go.mod"),
            "module example.com/hello/v2\n\ngo 1.19\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("cmd/server")).unwrap();
        let spec = KoSpec::default();
        assert_eq!(binary_name(dir.path(), &spec).unwrap(), "hello");
        let spec = KoSpec {
            main: "./cmd/server".into(),
            ..KoSpec::default()
        };
        assert_eq!(binary_name(dir.path(), &spec).unwrap(), "server");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            binary_name(empty.path(), &KoSpec::default())
                .unwrap_err()
                .contains("go.mod")
        );
    }
}
