//! `skiff deploy` and `skiff delete`: render, then deploy (and wait until ready) or delete.

use std::collections::BTreeMap;

use skiff_render::{RawYamlSource, Source};
use skiff_runner::deploy::DeployRunOptions;
use skiff_runner::project::RunContext;
use skiff_runner::render::{DigestSource, RenderSettings, RenderStage};

use crate::args::{ApplyArgs, Cli, DeployArgs, ImageSourceArgs};
use crate::console::ConsoleReporter;
use crate::render::{prepare, runtime};

/// The deploy options of a run against `context`.
pub(crate) fn run_options(context: &RunContext, with_run_id: bool) -> DeployRunOptions {
    DeployRunOptions {
        run_id: if with_run_id {
            context.run_id.clone()
        } else {
            String::new()
        },
        force: false,
        status_check: None,
        kubeconfig: context.kubeconfig.clone(),
        default_kubeconfigs: context.default_kubeconfigs.clone(),
        kube_context: context.kube_context_name.clone(),
        namespace: context.namespace.clone(),
        docker_host: context.docker_host.clone(),
        env: context.env.clone(),
        work_dir: context.work_dir.clone(),
    }
}

pub fn run(cli: &Cli, args: &DeployArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, false, env)?;
    let settings = &prepared.project.deploy;
    let mut options = run_options(&prepared.context, true);
    options.force = args.force;
    options.status_check = args.status_check;
    let console = ConsoleReporter::new(false, true);
    runtime()?.block_on(async {
        let rendered = RenderStage::new()
            .render(
                prepared.project.render()?,
                &prepared.project.build,
                &prepared.options,
                &prepared.reporter,
            )
            .await?;
        skiff_runner::deploy::deploy(
            settings,
            &rendered.manifests,
            &rendered.images,
            &options,
            &console,
        )
        .await
    })?;
    Ok(())
}

/// `skiff apply FILE…`: the files' objects as they are (images untouched), labelled with the
/// run, applied to the configuration's cluster, then waited for.
pub fn apply(cli: &Cli, args: &ApplyArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &as_written(), true, env)?;
    let mut settings = prepared.project.deploy.clone();
    // Rendered manifests go to the cluster; `deploy.docker` has nothing to run from them.
    settings.kubernetes = true;
    settings.docker_images.clear();
    let mut options = run_options(&prepared.context, true);
    options.force = args.force;
    options.status_check = args.status_check;
    let files = RenderSettings {
        sources: vec![Source::RawYaml(RawYamlSource {
            base_dir: prepared.cwd.clone(),
            globs: args
                .files
                .iter()
                .map(|f| prepared.cwd.join(f).to_string_lossy().into_owned())
                .collect(),
            default_namespace: None,
            unmatched_is_warning: false,
        })],
        ..RenderSettings::default()
    };
    let console = ConsoleReporter::new(false, true);
    runtime()?.block_on(async {
        let rendered = RenderStage::new()
            .render(
                &files,
                &prepared.project.build,
                &prepared.options,
                &prepared.reporter,
            )
            .await?;
        skiff_runner::deploy::deploy(&settings, &rendered.manifests, &[], &options, &console).await
    })?;
    Ok(())
}

/// Image sources that leave every image as written (for deleting and applying).
fn as_written() -> ImageSourceArgs {
    ImageSourceArgs {
        digest_source: Some(DigestSource::None.as_str().to_owned()),
        images: Vec::new(),
        build_artifacts: None,
        labels: Vec::new(),
        run_id: None,
        tag: None,
        cache_artifacts: false,
        cache_file: None,
        loud: false,
    }
}

pub fn delete(cli: &Cli, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    // Deleting needs the objects' identities, not their images: render offline as written.
    let prepared = prepare(cli, &as_written(), true, env)?;
    let settings = &prepared.project.deploy;
    let options = run_options(&prepared.context, false);
    let console = ConsoleReporter::new(false, true);
    let deleted = runtime()?.block_on(async {
        let rendered = RenderStage::new()
            .render(
                prepared.project.render()?,
                &prepared.project.build,
                &prepared.options,
                &prepared.reporter,
            )
            .await?;
        let deleted =
            skiff_runner::deploy::delete(settings, &rendered.manifests, &options, &console).await?;
        let builders = skiff_runner::build::delete_builder_containers(
            &prepared.project.build,
            options.docker_host.as_deref(),
            &console,
        )
        .await?;
        anyhow::Ok(deleted.len() + builders.len())
    })?;
    // Each deletion was reported as it happened.
    if deleted == 0 {
        crate::write_stdout("Nothing to delete\n")?;
    }
    Ok(())
}
