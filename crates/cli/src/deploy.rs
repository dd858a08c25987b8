//! `skiff deploy` and `skiff delete`: render, then deploy (and wait until ready) or delete.

use std::collections::BTreeMap;

use skiff_render::{RawYamlSource, Source};
use skiff_runner::deploy::DeployRunOptions;
use skiff_runner::project::RunContext;
use skiff_runner::render::{DigestSource, RenderSettings, RenderStage};

use skiff_types::event::{Event, Level, Reporter};

use crate::args::{ApplyArgs, Cli, DeployArgs, ExecArgs, ImageSourceArgs, TestArgs, VerifyArgs};
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
        port_proxy: false,
    }
}

pub fn run(cli: &Cli, args: &DeployArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, false, env)?;
    let settings = &prepared.project.deploy;
    let mut options = run_options(&prepared.context, true);
    options.force = args.rollout.force;
    options.status_check = args.rollout.status_check;
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
    options.force = args.rollout.force;
    options.status_check = args.rollout.status_check;
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

/// A run ID of its own for one `verify` or `exec`, so that stopping its containers touches
/// nothing else.
fn one_off_run_id(context: &RunContext, what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{what}-{nanos:x}", context.run_id)
}

/// `skiff verify`: every `verify` test's container to completion; fails naming those that
/// did not pass.
pub fn verify(cli: &Cli, args: &VerifyArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, true, env)?;
    let tests = &prepared.project.verify;
    if tests.is_empty() {
        anyhow::bail!("the configuration has no `verify` tests");
    }
    let console = ConsoleReporter::new(false, true);
    let run_id = one_off_run_id(&prepared.context, "verify");
    runtime()?.block_on(skiff_runner::verify::verify(
        tests,
        &prepared.options.prebuilt,
        prepared.context.docker_host.as_deref(),
        &run_id,
        &console,
    ))?;
    Ok(())
}

/// `skiff test`: the `test` section against the images of `--build-artifacts`/`--images`, the
/// others by the tags their taggers compute now (as `skaffold test`: nothing is built).
pub fn test(cli: &Cli, args: &TestArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, true, env)?;
    let tests = &prepared.project.test;
    if tests.is_empty() {
        anyhow::bail!("the configuration has no `test` section");
    }
    let console = ConsoleReporter::new(false, true);
    runtime()?.block_on(async {
        let (images, _) = RenderStage::new()
            .images(&prepared.project.build, &prepared.options, &console)
            .await?;
        let took =
            skiff_runner::test::run_tests(tests, &images, &prepared.context.env, &console).await?;
        match took {
            Some(took) => console.report(Event::Message {
                source: "test",
                level: Level::Info,
                text: format!("tests passed in {:.1} s", took.as_secs_f64()),
            }),
            None => anyhow::bail!(
                "no test ran: the `test` section names {}, which no artifact or --images \
                 entry provides",
                tests
                    .tests
                    .iter()
                    .map(|t| t.image.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        Ok(())
    })
}

/// `skiff exec ACTION`: the custom action's containers to completion.
pub fn exec(cli: &Cli, args: &ExecArgs, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let prepared = prepare(cli, &args.source, true, env)?;
    let actions = &prepared.project.actions;
    let Some(action) = actions.iter().find(|a| a.name == args.action) else {
        let names: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
        anyhow::bail!(
            "no custom action `{}`; the configuration has: {}",
            args.action,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let console = ConsoleReporter::new(false, true);
    let run_id = one_off_run_id(&prepared.context, "exec");
    runtime()?.block_on(skiff_runner::verify::exec(
        action,
        &prepared.options.prebuilt,
        prepared.context.docker_host.as_deref(),
        &run_id,
        &console,
    ))?;
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
