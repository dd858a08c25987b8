//! `skiff build`: load the configuration, build every artifact, report the images.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use skiff_runner::build::{BuildOptions, BuildStage};
use skiff_runner::project::{Project, RunContext};
use skiff_types::image::BuiltImage;

use crate::args::{BuildArgs, Cli, Verbosity};
use crate::console::ConsoleReporter;

/// Where the artifact cache lives unless `--cache-file` says otherwise.
pub(crate) fn default_cache_file(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = env
        .get("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("skiff").join("artifacts.json"))
}

/// `{"builds":[{"imageName":…,"tag":…}]}`, as Skaffold's `--file-output`.
pub fn builds_json(images: &[BuiltImage]) -> String {
    let builds: Vec<_> = images
        .iter()
        .map(|b| json!({ "imageName": b.image_name, "tag": b.reference.to_string() }))
        .collect();
    json!({ "builds": builds }).to_string()
}

pub fn run(cli: &Cli, args: &BuildArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let options = cli
        .global
        .load_options(cli.command.name(), env.clone(), cwd.clone());
    let loaded = skiff_config::load(&options)?;
    let show_warnings = cli.global.verbosity >= Verbosity::Warn;
    if show_warnings {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let project = Project::resolve(&loaded.file, &loaded.configs)?;
    let context = RunContext::resolve(&project, cli.global.run_flags(&cwd, None, options.env));
    let build_options = BuildOptions {
        default_repo: cli.global.default_repo.clone(),
        push: args.push,
        cache_artifacts: args.cache_artifacts,
        cache_file: args.cache_file.clone().or_else(|| default_cache_file(&env)),
        concurrency: args.build_concurrency,
        tag: args.tag.clone(),
        only: args.build_image.clone(),
        docker_host: context.docker_host,
        docker_config: context.docker_config,
        kube_context: context.kube_context,
        docker_daemon_build: cli.global.docker_daemon_build,
        work_dir: Some(cwd.clone()),
        env: context.env,
        ..BuildOptions::default()
    };
    let reporter = ConsoleReporter::new(args.quiet, show_warnings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let env = build_options.env.clone();
    let outcome = runtime.block_on(async {
        let outcome = BuildStage::new()
            .build(&project.build, &build_options, &reporter)
            .await?;
        if !args.skip_tests {
            skiff_runner::test::run_tests(&project.test, &outcome.images, &env, &reporter).await?;
        }
        anyhow::Ok(outcome)
    })?;
    let json = builds_json(&outcome.images);
    if let Some(path) = &args.file_output {
        crate::write_file(path, &format!("{json}\n"))?;
    }
    if args.quiet {
        crate::write_stdout(&format!("{json}\n"))?;
    }
    Ok(())
}
