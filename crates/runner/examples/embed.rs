//! Embedding skiff's loop in a Rust program, with one stage swapped for our own: every artifact
//! is built by `ShellBuilder`, which shells out to `docker build`, instead of skiff's builders.
//!
//! ```sh
//! cargo run -p skiff-runner --example embed -- path/to/project   # holds skaffold.yaml
//! ```
//!
//! It loads the project's `skaffold.yaml`, runs one iteration (build, render, deploy, status
//! check) like `skiff run`, prints each event's gist, and leaves what it deployed running.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use skiff_build::{BuildError, BuildRequest, Builder};
use skiff_runner::build::{BuildOptions, BuildStage};
use skiff_runner::deploy::DeployRunOptions;
use skiff_runner::dev::{DevLoop, DevOptions};
use skiff_runner::render::{DigestSource, RenderRunOptions};
use skiff_types::event::{Event, Reporter};
use skiff_types::image::BuiltImage;

/// Our own build stage: `docker build -t <tag> <context>`, run as a child process.
struct ShellBuilder;

#[async_trait::async_trait]
impl Builder for ShellBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        _reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let tag = request.tag.to_string();
        let image = request.artifact.image.clone();
        let output = tokio::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(&request.artifact.context)
            .output()
            .await
            .map_err(|e| BuildError::Command {
                image: image.clone(),
                command: "docker build".into(),
                reason: e.to_string(),
            })?;
        if !output.status.success() {
            let reason = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(BuildError::Failed { image, reason });
        }
        println!("ShellBuilder: built {tag}");
        Ok(BuiltImage {
            image_name: image,
            reference: request.tag.clone(),
            image_id: Some(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
        })
    }
}

/// Prints the gist of each event.
struct Print;

impl Reporter for Print {
    fn report(&self, event: Event) {
        match event {
            Event::Deployed { object, action } => println!("deployed {object}: {action}"),
            Event::IterationFinished { summary, .. } => println!("{summary}"),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let project = PathBuf::from(std::env::args().nth(1).ok_or("usage: embed PROJECT_DIR")?);
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let load = skiff_config::LoadOptions {
        config_file: None,
        working_dir: project.canonicalize()?,
        profiles: Vec::new(),
        modules: Vec::new(),
        kube_context: None,
        command: "run".into(),
        env: env.clone(),
    };
    let loaded = skiff_config::load(&load)?;

    let build = BuildOptions {
        env,
        push: Some(false),
        docker_host: std::env::var("DOCKER_HOST").ok(),
        ..BuildOptions::default()
    };
    let options = DevOptions {
        render: RenderRunOptions {
            digest_source: Some(DigestSource::Tag),
            prebuilt: Vec::new(),
            build,
            run_id: Some(format!("embed-{}", std::process::id())),
            labels: BTreeMap::new(),
            without_run_labels: false,
            without_deploy_namespace: false,
            namespace: None,
            offline: true,
            kube_context: None,
            kubeconfig: None,
            search_path: Vec::new(),
        },
        deploy: DeployRunOptions {
            docker_host: std::env::var("DOCKER_HOST").ok(),
            ..DeployRunOptions::default()
        },
        port_forward: Vec::new(),
        tail: false,
        cleanup: false,
        reload: None,
        auto_build: true,
        auto_sync: true,
        auto_deploy: true,
        skip_tests: false,
    };

    // The swap: every artifact is built by ShellBuilder.
    let mut stage = BuildStage::new();
    for config in &loaded.configs {
        for artifact in config
            .config
            .build
            .iter()
            .flat_map(|b| b.artifacts.iter().flatten())
        {
            stage = stage.with_builder(artifact.image.clone(), Arc::new(ShellBuilder));
        }
    }
    let dev = DevLoop::new(&loaded.configs, options, Arc::new(Print))?.with_build_stage(stage);
    // One iteration; with no logs or port forwards to keep, `run` returns once deployed.
    // (`dev.dev(watcher, shutdown)` would loop on every change instead.)
    dev.run(std::future::pending()).await?;
    Ok(())
}
