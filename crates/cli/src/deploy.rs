//! `skiff deploy` and `skiff delete`: render, then deploy (and wait until ready) or delete.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use skiff_deploy::kubernetes::client::KubeTarget;
use skiff_runner::deploy::{DeployRunOptions, deploy_settings};
use skiff_runner::render::{DigestSource, RenderStage};

use crate::args::{Cli, DeployArgs, ImageSourceArgs};
use crate::console::ConsoleReporter;
use crate::render::{prepare, runtime};

pub(crate) fn run_options(
    cli: &Cli,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    run_id: Option<String>,
    kube_context: Option<String>,
) -> DeployRunOptions {
    DeployRunOptions {
        run_id: run_id.unwrap_or_default(),
        force: false,
        status_check: None,
        kubeconfig: cli.global.kubeconfig.as_ref().map(|k| cwd.join(k)),
        default_kubeconfigs: KubeTarget::kubeconfig_search_path(
            env.get("KUBECONFIG").map(OsStr::new),
            env.get("HOME").map(Path::new),
        ),
        kube_context,
        namespace: cli.global.namespace.clone(),
        docker_host: env.get("DOCKER_HOST").filter(|v| !v.is_empty()).cloned(),
    }
}

pub fn run(cli: &Cli, args: &DeployArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, false, env.clone())?;
    let settings = deploy_settings(&prepared.loaded.configs);
    let mut options = run_options(
        cli,
        &env,
        &prepared.cwd,
        prepared.options.run_id.clone(),
        prepared.options.kube_context.clone(),
    );
    options.force = args.force;
    options.status_check = args.status_check;
    let console = ConsoleReporter::new(false, true);
    runtime()?.block_on(async {
        let rendered = RenderStage::new()
            .render(
                &prepared.render_settings,
                &prepared.build_settings,
                &prepared.options,
                &prepared.reporter,
            )
            .await?;
        skiff_runner::deploy::deploy(
            &settings,
            &rendered.manifests,
            &rendered.images,
            &options,
            &console,
        )
        .await
    })?;
    Ok(())
}

pub fn delete(cli: &Cli, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    // Deleting needs the objects' identities, not their images: render offline as written.
    let source = ImageSourceArgs {
        digest_source: Some(DigestSource::None.as_str().to_owned()),
        images: Vec::new(),
        build_artifacts: None,
        labels: Vec::new(),
        run_id: None,
        tag: None,
        cache_artifacts: false,
        cache_file: None,
        loud: false,
    };
    let prepared = prepare(cli, &source, true, env.clone())?;
    let settings = deploy_settings(&prepared.loaded.configs);
    let options = run_options(
        cli,
        &env,
        &prepared.cwd,
        None,
        prepared.options.kube_context.clone(),
    );
    let console = ConsoleReporter::new(false, true);
    let deleted = runtime()?.block_on(async {
        let rendered = RenderStage::new()
            .render(
                &prepared.render_settings,
                &prepared.build_settings,
                &prepared.options,
                &prepared.reporter,
            )
            .await?;
        let deleted =
            skiff_runner::deploy::delete(&settings, &rendered.manifests, &options, &console)
                .await?;
        let builders = skiff_runner::build::delete_builder_containers(
            &prepared.build_settings,
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
