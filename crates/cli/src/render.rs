//! `skiff render`: load the configuration, choose the images (`--digest-source`, `--images`,
//! `--build-artifacts`), render every manifest source, print the objects as one YAML stream.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use skiff_runner::build::BuildOptions;
use skiff_runner::project::{Project, RunContext};
use skiff_runner::render::{DigestSource, RenderRunOptions, RenderStage};
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};

use crate::args::{Cli, ImageSourceArgs, RenderArgs, Verbosity};
use crate::build::default_cache_file;

/// Events on stderr (stdout holds the YAML): warnings, `--loud` build progress, and messages
/// at the `-v` level asked for.
#[derive(Debug)]
pub(crate) struct StderrReporter {
    verbosity: Verbosity,
    loud: bool,
    lock: Mutex<()>,
}

impl Reporter for StderrReporter {
    fn report(&self, event: Event) {
        let text = match &event {
            Event::Message { level, text, .. } => {
                let wanted = match level {
                    Level::Warning => Verbosity::Warn,
                    Level::Info => Verbosity::Info,
                    Level::Debug => Verbosity::Debug,
                };
                if self.verbosity < wanted {
                    return;
                }
                match level {
                    Level::Warning => format!("warning: {text}"),
                    _ => text.clone(),
                }
            }
            other => {
                if !(self.loud || self.verbosity >= Verbosity::Info) {
                    return;
                }
                match crate::console::line(other) {
                    Some((line, _)) => line,
                    None => return,
                }
            }
        };
        let _guard = self.lock.lock();
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

/// `--label k=v` pairs.
pub fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for label in labels {
        let Some((key, value)) = label.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("--label {label:?}: expected KEY=VALUE");
        };
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// `--images`: `NAME=REFERENCE`, `NAME=TAG` (the name tagged, `--default-repo` applied), or a
/// reference whose repository is the artifact's name.
pub fn parse_images(
    images: &[String],
    default_repo: Option<&str>,
) -> anyhow::Result<Vec<BuiltImage>> {
    let mut out = Vec::new();
    for entry in images {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let built = match entry.split_once('=') {
            Some((name, value)) => {
                if name.is_empty() || value.is_empty() {
                    bail!("--images {entry:?}: expected NAME=TAG or NAME=IMAGE");
                }
                let reference: ImageRef = if value.contains(['/', ':', '@']) {
                    value.parse().with_context(|| {
                        format!("--images {entry:?}: {value:?} is not an image reference")
                    })?
                } else {
                    skiff_build::tag::tagged(
                        &skiff_build::tag::apply_default_repo(name, default_repo),
                        value,
                    )
                    .with_context(|| format!("--images {entry:?}"))?
                };
                BuiltImage {
                    image_name: name.to_owned(),
                    reference,
                    image_id: None,
                }
            }
            None => {
                let reference: ImageRef = entry
                    .parse()
                    .with_context(|| format!("--images {entry:?} is not an image reference"))?;
                BuiltImage {
                    image_name: reference.repository().to_owned(),
                    reference,
                    image_id: None,
                }
            }
        };
        out.retain(|b: &BuiltImage| b.image_name != built.image_name);
        out.push(built);
    }
    Ok(out)
}

/// `{"builds":[{"imageName":…,"tag":…}]}`, as `skiff build --file-output` and Skaffold write it.
pub fn parse_build_artifacts(text: &str, source: &str) -> anyhow::Result<Vec<BuiltImage>> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{source} is not JSON build output"))?;
    let Some(builds) = value.get("builds").and_then(|b| b.as_array()) else {
        bail!("{source}: expected {{\"builds\": [{{\"imageName\": …, \"tag\": …}}]}}");
    };
    let mut out = Vec::new();
    for (i, build) in builds.iter().enumerate() {
        let field = |name: &str| {
            build
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{source}: builds[{i}] has no {name}"))
        };
        let name = field("imageName")?;
        let tag = field("tag")?;
        out.push(BuiltImage {
            image_name: name.to_owned(),
            reference: tag
                .parse()
                .with_context(|| format!("{source}: builds[{i}].tag {tag:?}"))?,
            image_id: None,
        });
    }
    Ok(out)
}

fn read_build_artifacts(path: &Path, cwd: &Path) -> anyhow::Result<Vec<BuiltImage>> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read --build-artifacts from standard input")?;
        return parse_build_artifacts(&text, "standard input");
    }
    let path = cwd.join(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_build_artifacts(&text, &path.display().to_string())
}

/// Everything a command that renders needs, gathered once: the loaded configuration, the
/// stages' settings, the render run's options and a reporter.
pub(crate) struct Prepared {
    pub cwd: PathBuf,
    pub project: Project,
    pub context: RunContext,
    pub options: RenderRunOptions,
    pub reporter: StderrReporter,
}

/// Load the configuration and turn the flags into a render run's options.
pub(crate) fn prepare(
    cli: &Cli,
    source: &ImageSourceArgs,
    offline: bool,
    env: BTreeMap<String, String>,
) -> anyhow::Result<Prepared> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let load = cli
        .global
        .load_options(cli.command.name(), env.clone(), cwd.clone());
    let loaded = skiff_config::load(&load)?;
    if cli.global.verbosity >= Verbosity::Warn {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let project = Project::resolve(&loaded.file, &loaded.configs)?;
    let context = RunContext::resolve(
        &project,
        cli.global
            .run_flags(&cwd, source.run_id.clone(), load.env.clone()),
    );

    let default_repo = cli.global.default_repo.clone();
    let mut prebuilt = match &source.build_artifacts {
        Some(path) => read_build_artifacts(path, &cwd)?,
        None => Vec::new(),
    };
    for image in parse_images(&source.images, default_repo.as_deref())? {
        prebuilt.retain(|b| b.image_name != image.image_name);
        prebuilt.push(image);
    }
    let digest_source = match &source.digest_source {
        Some(source) => Some(source.parse::<DigestSource>()?),
        // Offline, there is no cluster to decide by: tags, as for a local cluster.
        None if offline => Some(DigestSource::Tag),
        None => None,
    };
    let search_path = context
        .env
        .get("PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let options = RenderRunOptions {
        digest_source,
        prebuilt,
        build: BuildOptions {
            default_repo,
            push: None,
            cache_artifacts: source.cache_artifacts,
            cache_file: source
                .cache_file
                .clone()
                .or_else(|| default_cache_file(&env)),
            concurrency: None,
            tag: source.tag.clone(),
            only: Vec::new(),
            docker_host: context.docker_host.clone(),
            docker_config: context.docker_config.clone(),
            kube_context: context.kube_context.clone(),
            docker_daemon_build: cli.global.docker_daemon_build,
            work_dir: Some(cwd.clone()),
            env: context.env.clone(),
            ..BuildOptions::default()
        },
        run_id: Some(context.run_id.clone()),
        labels: parse_labels(&source.labels)?,
        without_run_labels: false,
        without_deploy_namespace: false,
        namespace: context.namespace.clone(),
        offline,
        kube_context: context.kube_context_name.clone(),
        kubeconfig: context.kubeconfig.clone(),
        search_path,
    };
    let reporter = StderrReporter {
        verbosity: cli.global.verbosity,
        loud: source.loud,
        lock: Mutex::new(()),
    };
    Ok(Prepared {
        cwd,
        project,
        context,
        options,
        reporter,
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cli: &Cli, args: &RenderArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut prepared = prepare(cli, &args.source, args.offline, env)?;
    // As `skaffold render`: no run labels, unless asked for with skiff's own `--run-id`.
    prepared.options.without_run_labels = args.source.run_id.is_none();
    prepared.options.without_deploy_namespace = true;
    let outcome = runtime()?.block_on(RenderStage::new().render(
        prepared.project.render()?,
        &prepared.project.build,
        &prepared.options,
        &prepared.reporter,
    ))?;
    let text = outcome.manifests.to_yaml_stream();
    match &args.output {
        Some(path) => crate::write_file(&prepared.cwd.join(path), &text),
        None => crate::write_stdout(&text),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn images_flag_forms() {
        let images = parse_images(
            &[
                "web=v1".into(),
                "localhost:5000/api=localhost:5000/api:v2".into(),
                "localhost:5000/db:v3".into(),
                "web=v4".into(),
            ],
            Some("registry.example.com"),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = images
            .iter()
            .map(|b| (b.image_name.clone(), b.reference.to_string()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("localhost:5000/api".into(), "localhost:5000/api:v2".into()),
                ("localhost:5000/db".into(), "localhost:5000/db:v3".into()),
                ("web".into(), "registry.example.com/web:v4".into()),
            ]
        );
        assert!(parse_images(&["=v1".into()], None).is_err());
        assert!(parse_images(&["web=Bad Ref/x".into()], None).is_err());
    }

    #[test]
    fn build_artifacts_file() {
        let images = parse_build_artifacts(
            r#"{"builds":[{"imageName":"web","tag":"localhost:5000/web:v1@sha256:aaaa"}]}"#,
            "b.json",
        )
        .unwrap();
        assert_eq!(images[0].image_name, "web");
        assert_eq!(images[0].reference.digest(), Some("sha256:aaaa"));
        let error = parse_build_artifacts(r#"{"builds":[{"imageName":"web"}]}"#, "b.json")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "b.json: builds[0] has no tag");
        assert!(parse_build_artifacts("[]", "b.json").is_err());
    }

    #[test]
    fn labels() {
        let labels = parse_labels(&["team=blue".into(), "empty=".into()]).unwrap();
        assert_eq!(labels["team"], "blue");
        assert_eq!(labels["empty"], "");
        assert!(parse_labels(&["novalue".into()]).is_err());
    }
}
