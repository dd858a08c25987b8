//! skiff's render stage: the exact objects to deploy.
//!
//! A [`Renderer`] turns manifest sources — raw YAML files ([`RawYamlSource`]), kustomizations
//! ([`KustomizeSource`], built with `kustomize` or `kubectl kustomize`), helm releases
//! ([`HelmSource`], through `helm template`) — and the images just built into a
//! [`ManifestSet`], one object per YAML document, with:
//!
//! * **images** replaced: every container image (and every other `image` field) of the kinds
//!   Skaffold transforms — Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
//!   ReplicationController, PodTemplate, Knative Service, Argo Rollout and Workflow kinds,
//!   Agones, … — plus the pod templates (`spec.template.spec`,
//!   `spec.jobTemplate.spec.template.spec`) of any other kind, and the fields
//!   `resourceSelector` adds. An image is replaced when its repository is an artifact's image
//!   name as configured; its tag or digest does not matter, other images stay as written;
//! * **labels** `skaffold.dev/run-id` and `app.kubernetes.io/managed-by: skiff` (and the
//!   `--label`s) on every object and on the pod templates inside it — never on a Job's pod
//!   template or a StatefulSet's `volumeClaimTemplates`, which are immutable; labels already
//!   there are kept;
//! * a **namespace** on namespaced objects that have none.
//!
//! Multi-document YAML, `List` kinds (flattened) and empty documents are handled; bad YAML is
//! reported with its file, document and line. The output is deterministic: objects in source
//! order, keys in input order, scalars exactly as written.
//!
//! ```
//! use skiff_render::{InlineSource, ManifestRenderer, RenderOptions, Renderer, Source};
//! use skiff_types::event::NullReporter;
//! use skiff_types::image::BuiltImage;
//!
//! let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: web-app\n";
//! let renderer = ManifestRenderer::new(RenderOptions {
//!     sources: vec![Source::Inline(InlineSource {
//!         origin: "pod.yaml".into(),
//!         yaml: yaml.into(),
//!         default_namespace: None,
//!     })],
//!     run_id: Some("1234".into()),
//!     namespace: Some("dev".into()),
//!     ..RenderOptions::default()
//! });
//! let images = [BuiltImage {
//!     image_name: "web-app".into(),
//!     reference: "localhost:5000/web-app:v1".parse()?,
//!     image_id: None,
//! }];
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let rendered = runtime.block_on(renderer.render(&images, &NullReporter))?;
//! let pod = &rendered.manifests[0];
//! assert_eq!(pod.namespace.as_deref(), Some("dev"));
//! assert!(pod.yaml.contains("image: localhost:5000/web-app:v1\n"));
//! assert!(pod.yaml.contains("skaffold.dev/run-id: \"1234\"\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod glob;
pub mod helm;
pub mod hooks;
mod inputs;
mod kinds;
mod objects;
mod options;
pub mod tools;
mod transform;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;
use skiff_types::manifest::Manifest;
pub use skiff_types::manifest::ManifestSet;

pub use crate::inputs::ManifestInputs;

pub use crate::options::{
    HelmChart, HelmFlags, HelmRelease, HelmSource, InlineSource, KustomizeSource, RawYamlSource,
    RenderOptions, ResourceFilter, ResourceSelector, Source, UnsupportedSource,
};
use crate::tools::KustomizeTool;

pub use skiff_types::labels::{MANAGED_BY_LABEL, RUN_ID_LABEL};

/// Errors of the render stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A `rawYaml` entry matches no file. (Skaffold's default `k8s/*.yaml` matching nothing is
    /// only a warning, as in Skaffold.)
    #[error("manifests.rawYaml: `{glob}` matches no file (in {}); check the path and naming", dir.display())]
    NoMatch {
        /// The glob as configured.
        glob: String,
        /// The directory it is relative to.
        dir: PathBuf,
    },
    /// A `rawYaml` glob is malformed.
    #[error("manifest glob `{glob}` is malformed: {message}")]
    InvalidGlob {
        /// The glob as configured.
        glob: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest is not valid YAML.
    #[error(
        "{origin}{}: document {document}: invalid YAML: {message}{}",
        line.map(|l| format!(":{l}")).unwrap_or_default(),
        column.map(|c| format!(" (column {c})")).unwrap_or_default()
    )]
    Yaml {
        /// The file (or `helm release NAME`, `kustomize path P`).
        origin: String,
        /// 1-based index of the document in the stream.
        document: usize,
        /// 1-based line in the stream.
        line: Option<usize>,
        /// 1-based column.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A document (or `List` item) is not a mapping.
    #[error(
        "{origin}:{line}: {}document {document} is {found}, not a Kubernetes object (a mapping with apiVersion and kind)",
        item.map(|i| format!("item {i} of the list in ")).unwrap_or_default()
    )]
    NotAnObject {
        /// Where it is.
        origin: String,
        /// 1-based index of the document.
        document: usize,
        /// 1-based line where the document starts.
        line: usize,
        /// 1-based index in a `List`'s items.
        item: Option<usize>,
        /// What it is: "a list", "a scalar".
        found: String,
    },
    /// A mapping without `apiVersion` or `kind`.
    #[error(
        "{origin}:{line}: {}document {document}{} is not a Kubernetes object: it has no `{missing}`",
        item.map(|i| format!("item {i} of the list in ")).unwrap_or_default(),
        name.as_ref().map(|n| format!(" (metadata.name `{n}`)")).unwrap_or_default()
    )]
    NotKubernetesObject {
        /// Where it is.
        origin: String,
        /// 1-based index of the document.
        document: usize,
        /// 1-based line where the document starts.
        line: usize,
        /// 1-based index in a `List`'s items.
        item: Option<usize>,
        /// `apiVersion` or `kind`.
        missing: &'static str,
        /// `metadata.name`, when there is one.
        name: Option<String>,
    },
    /// A source kind skiff does not render yet.
    #[error(
        "{kind} is not supported by skiff yet ({detail}); render these manifests with their own tool and list the output under manifests.rawYaml"
    )]
    Unsupported {
        /// The kind, as spelled in skaffold.yaml (`manifests.kpt`).
        kind: String,
        /// What was configured.
        detail: String,
    },
    /// A tool a source needs is not installed.
    #[error(
        "{what} needs {tool}, which is not installed (looked in: {}); install it or put it on PATH",
        if searched.is_empty() { "nowhere: PATH is empty".to_owned() } else { searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":") }
    )]
    ToolMissing {
        /// The tool(s): "`helm`", "`kustomize` or `kubectl`".
        tool: String,
        /// What needs it: "helm release `web`".
        what: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// A tool ran and failed.
    #[error("{what}: `{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    ToolFailed {
        /// What it ran for.
        what: String,
        /// The command line.
        command: String,
        /// The exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A `manifests.hooks` command failed.
    #[error("{field}: {source}")]
    Hook {
        /// `manifests.hooks.before` or `manifests.hooks.after`.
        field: &'static str,
        /// Why.
        #[source]
        source: skiff_hooks::HookError,
    },
    /// A template (`setValueTemplates`, `valuesFiles`) could not be rendered.
    #[error("{field}: {source}")]
    Template {
        /// The field.
        field: String,
        /// Why.
        source: skiff_types::template::TemplateError,
    },
}

/// Produces the objects to deploy.
#[async_trait::async_trait]
pub trait Renderer: Send + Sync {
    /// Render every source with `images` substituted.
    async fn render(
        &self,
        images: &[BuiltImage],
        reporter: &dyn Reporter,
    ) -> Result<ManifestSet, RenderError>;
}

/// skiff's renderer: raw YAML, kustomize and helm sources, transformed as the crate
/// documentation describes.
#[derive(Debug, Clone)]
pub struct ManifestRenderer {
    options: RenderOptions,
    selector: kinds::Selector,
}

/// One YAML stream read from a source.
struct Stream {
    origin: String,
    text: String,
    /// For its namespaced objects that have none.
    namespace: Option<String>,
}

/// Streams this large are split across threads.
const PARALLEL_THRESHOLD: usize = 256 * 1024;

fn message(reporter: &dyn Reporter, level: Level, text: String) {
    reporter.report(Event::Message {
        source: "render",
        level,
        text,
    });
}

impl ManifestRenderer {
    /// A renderer for `options`.
    pub fn new(options: RenderOptions) -> ManifestRenderer {
        let selector = kinds::Selector::new(&options.resource_selector);
        ManifestRenderer { options, selector }
    }

    /// The options it renders with.
    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    /// The environment of hooks: the caller's, and Skaffold's `SKAFFOLD_KUBE_CONTEXT` and
    /// `SKAFFOLD_NAMESPACES`.
    fn hook_env(&self) -> BTreeMap<String, String> {
        let mut env = self.options.env.clone();
        if let Some(context) = &self.options.kube_context {
            env.insert("SKAFFOLD_KUBE_CONTEXT".into(), context.clone());
        }
        env.insert(
            "SKAFFOLD_NAMESPACES".into(),
            self.options.namespace.clone().unwrap_or_default(),
        );
        env
    }

    /// The labels every object gets, in order.
    fn labels(&self) -> Vec<(String, String)> {
        let mut labels = BTreeMap::new();
        if self.options.add_skiff_labels {
            labels.insert(MANAGED_BY_LABEL.to_owned(), "skiff".to_owned());
            if let Some(run_id) = &self.options.run_id {
                labels.insert(RUN_ID_LABEL.to_owned(), run_id.clone());
            }
        }
        for (key, value) in &self.options.labels {
            labels.insert(key.clone(), value.clone());
        }
        labels.into_iter().collect()
    }

    fn namespace_for(&self, source_default: Option<&str>) -> Option<String> {
        self.options
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(source_default.filter(|n| !n.is_empty() && self.options.source_namespaces))
            .map(str::to_owned)
    }

    /// Reads every source into YAML streams, running the tools they need.
    async fn streams(
        &self,
        images: &[BuiltImage],
        reporter: &dyn Reporter,
    ) -> Result<Vec<Stream>, RenderError> {
        let options = &self.options;
        let mut streams = Vec::new();
        for source in &options.sources {
            match source {
                Source::RawYaml(raw) => {
                    let namespace = self.namespace_for(raw.default_namespace.as_deref());
                    let expansion =
                        glob::expand_all(&raw.base_dir, &raw.globs, raw.unmatched_is_warning)?;
                    for unmatched in &expansion.unmatched {
                        message(
                            reporter,
                            Level::Warning,
                            format!(
                                "manifests.rawYaml: {unmatched} did not match any file (in {})",
                                raw.base_dir.display()
                            ),
                        );
                    }
                    for path in expansion.files {
                        let text =
                            std::fs::read_to_string(&path).map_err(|source| RenderError::Read {
                                path: path.clone(),
                                source,
                            })?;
                        streams.push(Stream {
                            origin: path.display().to_string(),
                            text,
                            namespace: namespace.clone(),
                        });
                    }
                }
                Source::Kustomize(kustomize) => {
                    if kustomize.paths.is_empty() {
                        continue;
                    }
                    let tool = KustomizeTool::find(&options.search_path).ok_or_else(|| {
                        RenderError::ToolMissing {
                            tool: "`kustomize` or `kubectl`".into(),
                            what: format!("kustomize path `{}`", kustomize.paths[0]),
                            searched: options.search_path.clone(),
                        }
                    })?;
                    message(
                        reporter,
                        Level::Info,
                        match &tool {
                            KustomizeTool::Kustomize(path) => {
                                format!("kustomize: using {}", path.display())
                            }
                            KustomizeTool::Kubectl(path) => format!(
                                "kustomize: no `kustomize` binary found, using `{} kustomize`",
                                path.display()
                            ),
                        },
                    );
                    let namespace = self.namespace_for(kustomize.default_namespace.as_deref());
                    for path in &kustomize.paths {
                        let command =
                            tool.command(&kustomize.base_dir, path, &kustomize.build_args);
                        let what = format!("kustomize path `{path}`");
                        message(
                            reporter,
                            Level::Debug,
                            format!("running {}", command.display()),
                        );
                        let text = command.output(&options.env, &what).await?;
                        streams.push(Stream {
                            origin: what,
                            text,
                            namespace: namespace.clone(),
                        });
                    }
                }
                Source::Helm(source) => {
                    let Some(first) = source.releases.first() else {
                        continue;
                    };
                    let helm_binary =
                        tools::find_tool(&options.search_path, "helm").ok_or_else(|| {
                            RenderError::ToolMissing {
                                tool: "`helm`".into(),
                                what: format!("helm release `{}`", first.name),
                                searched: options.search_path.clone(),
                            }
                        })?;
                    let cluster = if options.offline {
                        helm::HelmCluster::default()
                    } else {
                        helm::HelmCluster {
                            kube_context: options.kube_context.clone(),
                            kubeconfig: options.kubeconfig.clone(),
                        }
                    };
                    for release in &source.releases {
                        let what = format!("helm release `{}`", release.name);
                        if let Some(command) =
                            helm::dep_build_command(&helm_binary, source, release, &cluster)
                        {
                            message(
                                reporter,
                                Level::Debug,
                                format!("running {}", command.display()),
                            );
                            command.output(&options.env, &what).await?;
                        }
                        let command = helm::template_command(
                            &helm_binary,
                            source,
                            release,
                            images,
                            &options.env,
                            options.namespace.as_deref(),
                            &cluster,
                        )?;
                        message(
                            reporter,
                            Level::Debug,
                            format!("running {}", command.display()),
                        );
                        let text = command.output(&options.env, &what).await?;
                        let namespace =
                            helm::release_namespace(release, options.namespace.as_deref())
                                .map(str::to_owned)
                                .or_else(|| {
                                    self.namespace_for(source.default_namespace.as_deref())
                                });
                        streams.push(Stream {
                            origin: what,
                            text,
                            namespace,
                        });
                    }
                }
                Source::Inline(inline) => streams.push(Stream {
                    origin: inline.origin.clone(),
                    text: inline.yaml.clone(),
                    namespace: self.namespace_for(source.default_namespace()),
                }),
                Source::Unsupported(unsupported) => {
                    return Err(RenderError::Unsupported {
                        kind: unsupported.kind.clone(),
                        detail: unsupported.detail.clone(),
                    });
                }
            }
        }
        Ok(streams)
    }

    /// Parses, transforms and writes every document of `streams`; splits large inputs across
    /// threads (the output is the same either way).
    fn process(&self, streams: &[Stream], images: &[BuiltImage]) -> ChunkResult {
        self.process_with(streams, images, &self.labels())
    }

    fn process_with(
        &self,
        streams: &[Stream],
        images: &[BuiltImage],
        labels: &[(String, String)],
    ) -> ChunkResult {
        let transformer = transform::Transformer::new(self.selector.clone(), images, labels);
        let work: Vec<(usize, yaml::RawDocument<'_>)> = streams
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                yaml::split_documents(&s.text)
                    .into_iter()
                    .map(move |d| (i, d))
            })
            .collect();
        let total: usize = streams.iter().map(|s| s.text.len()).sum();
        let threads = if total < PARALLEL_THRESHOLD {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
        };
        let run = |chunk: &[(usize, yaml::RawDocument<'_>)]| {
            process_chunk(chunk, streams, &transformer, images.len())
        };
        if threads <= 1 || work.len() < 2 {
            return run(&work);
        }
        // Contiguous chunks of about equal size, so output order is input order.
        let target = total / threads + 1;
        let mut chunks: Vec<&[(usize, yaml::RawDocument<'_>)]> = Vec::new();
        let mut start = 0;
        let mut size = 0;
        for (i, (_, document)) in work.iter().enumerate() {
            size += document.text.len();
            if size >= target && chunks.len() + 1 < threads {
                chunks.push(&work[start..=i]);
                start = i + 1;
                size = 0;
            }
        }
        chunks.push(&work[start..]);
        let results: Vec<ChunkResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .skip(1)
                .map(|chunk| scope.spawn(|| run(chunk)))
                .collect();
            let mut results = vec![run(chunks[0])];
            for handle in handles {
                results.push(
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            results
        });
        let mut manifests = Vec::new();
        let mut used = vec![false; images.len()];
        for result in results {
            let (chunk, chunk_used) = result?;
            manifests.extend(chunk);
            for (u, c) in used.iter_mut().zip(chunk_used) {
                *u |= c;
            }
        }
        Ok((manifests, used))
    }
}

/// The objects of a run of documents, and which images they used.
type ChunkResult = Result<(Vec<Manifest>, Vec<bool>), RenderError>;

fn process_chunk(
    work: &[(usize, yaml::RawDocument<'_>)],
    streams: &[Stream],
    transformer: &transform::Transformer,
    image_count: usize,
) -> ChunkResult {
    let mut used = vec![false; image_count];
    let mut manifests = Vec::with_capacity(work.len());
    let mut objects = Vec::new();
    for (stream_index, document) in work {
        let stream = &streams[*stream_index];
        objects::read_document(&stream.origin, document, &mut objects)?;
        for mut object in objects.drain(..) {
            transformer.apply(
                &mut object.node,
                &object.api_version,
                &object.kind,
                &mut used,
            );
            let namespace = transform::set_namespace(
                &mut object.node,
                &object.kind,
                stream.namespace.as_deref(),
            );
            let name = object
                .node
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .map(|n| n.into_owned());
            manifests.push(Manifest {
                origin: stream.origin.clone(),
                api_version: object.api_version,
                kind: object.kind,
                name,
                namespace,
                yaml: yaml::emit_document(&object.node),
            });
        }
    }
    Ok((manifests, used))
}

#[async_trait::async_trait]
impl Renderer for ManifestRenderer {
    async fn render(
        &self,
        images: &[BuiltImage],
        reporter: &dyn Reporter,
    ) -> Result<ManifestSet, RenderError> {
        let hooks = &self.options.hooks;
        let env = self.hook_env();
        hooks::before(&hooks.before, &env, reporter).await?;
        let streams = self.streams(images, reporter).await?;
        let (manifests, used) = self.process(&streams, images)?;
        let mut rendered = ManifestSet { manifests };
        if !hooks.after.is_empty() {
            message(
                reporter,
                Level::Info,
                "Starting post-render hooks...".into(),
            );
            for hook in &hooks.after {
                let input = rendered.to_yaml_stream();
                let Some(output) = hooks::after(hook, &input, &env, reporter).await? else {
                    continue;
                };
                if output.trim().is_empty() {
                    return Err(RenderError::ToolFailed {
                        what: "manifests.hooks.after".into(),
                        command: hook.host.command.join(" "),
                        status: "printed nothing".into(),
                        stderr: "a post-render hook `withChange` must print the manifests to use"
                            .into(),
                    });
                }
                // What the hook printed is used as it is: images, labels and namespaces were
                // set before it ran.
                let stream = Stream {
                    origin: format!("the output of `{}`", hook.host.command.join(" ")),
                    text: output,
                    namespace: None,
                };
                rendered.manifests = self.process_with(&[stream], &[], &[])?.0;
            }
            message(reporter, Level::Info, "Completed post-render hooks".into());
        }
        for (image, used) in images.iter().zip(used) {
            if !used {
                message(
                    reporter,
                    Level::Debug,
                    format!("image {} is not used by any manifest", image.image_name),
                );
            }
        }
        Ok(rendered)
    }
}
