//! skiff's dev loop as a library.
//!
//! The runner sits above the stage crates: it resolves the effective configuration once into
//! each stage's typed settings ([`project::Project`], built from [`settings`], [`render`],
//! [`deploy`] and [`sync`]), decides what one run is against ([`project::RunContext`]) and runs
//! the stages — builds in dependency order and concurrently ([`schedule`], [`build`]), then
//! render, deploy and sync. Embedders can swap any stage for their own implementation of its
//! trait, and read the loop's events as JSON and as aggregated state ([`events`]).
//!
//! [`dev::DevLoop`] runs the whole loop (`skiff run`: one iteration; `skiff dev`: one per
//! change, controlled through [`dev::DevControl`]). `examples/embed.rs` in this crate runs it
//! from Rust with a plugged-in `Builder` that shells out to `docker build`:
//! `cargo run -p skiff-runner --example embed -- PROJECT_DIR` (the test `tests/embed_example.rs`
//! builds and runs it against a real Docker engine).
//!
//! ```
//! use skiff_build::artifact::{ArtifactSpec, BuilderSpec, Requirement};
//! use skiff_runner::schedule::build_order;
//!
//! let artifact = |image: &str, requires: &[&str]| ArtifactSpec {
//!     image: image.into(),
//!     context: ".".into(),
//!     builder: BuilderSpec::Unsupported { kind: "example".into() },
//!     requires: requires.iter().map(|r| Requirement { image: (*r).into(), alias: None }).collect(),
//!     platforms: vec![],
//! };
//! let order = build_order(&[artifact("app", &["base"]), artifact("base", &[])]).unwrap();
//! assert_eq!(order, [1, 0]);
//! ```

pub mod build;
pub mod deploy;
pub mod dev;
pub mod events;
pub mod project;
pub mod render;
pub mod schedule;
pub mod settings;
pub mod sync;
pub mod test;
pub mod verify;

/// Errors of the runner: a stage's error, or one of wiring them together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] skiff_config::ConfigError),
    /// A build failed.
    #[error(transparent)]
    Build(#[from] skiff_build::BuildError),
    /// A deploy, status check or delete failed.
    #[error(transparent)]
    Deploy(#[from] skiff_deploy::DeployError),
    /// Rendering manifests failed.
    #[error(transparent)]
    Render(#[from] skiff_render::RenderError),
    /// Artifacts require each other in a cycle.
    #[error("artifacts require each other in a cycle: {}", chain.join(" → "))]
    Cycle {
        /// The images in the cycle, the first repeated at the end.
        chain: Vec<String>,
    },
    /// An artifact requires an image no artifact builds.
    #[error("artifact {image} requires {missing}, which no artifact builds")]
    UnknownRequirement {
        /// The requiring artifact.
        image: String,
        /// The missing image.
        missing: String,
    },
    /// A templated field of an artifact is malformed.
    #[error("artifact {image}: {field}: {source}")]
    Template {
        /// The artifact's image name.
        image: String,
        /// The field.
        field: String,
        /// Why.
        source: skiff_types::template::TemplateError,
    },
    /// The watcher failed.
    #[error(transparent)]
    Watch(#[from] skiff_watch::WatchError),
    /// A file sync failed.
    #[error(transparent)]
    Sync(#[from] skiff_sync::SyncError),
    /// A test of a built image failed.
    #[error("test of {image} failed: {message}")]
    Test {
        /// The image tested.
        image: String,
        /// What failed, with the end of its output.
        message: String,
    },
    /// `verify` tests or a custom action's containers did not pass.
    #[error("{what} failed:\n{}", failed.join("\n"))]
    Verify {
        /// `verify`, `action NAME`.
        what: String,
        /// One line per container that did not pass.
        failed: Vec<String>,
    },
    /// A lifecycle hook failed.
    #[error("{field}: {source}")]
    Hook {
        /// The config field the hook comes from (`build.artifacts[app].hooks.before`).
        field: String,
        /// Why.
        #[source]
        source: skiff_hooks::HookError,
    },
    /// The settings are inconsistent.
    #[error("{message}")]
    Settings {
        /// What is wrong.
        message: String,
    },
}
