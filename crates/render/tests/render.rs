//! The render stage through its public API: images, labels and namespaces on every kind,
//! raw YAML files, kustomize through `kubectl kustomize`, helm through a stand-in `helm`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_render::{
    HelmChart, HelmFlags, HelmRelease, HelmSource, InlineSource, KustomizeSource, ManifestRenderer,
    RawYamlSource, RenderError, RenderOptions, Renderer, ResourceFilter, ResourceSelector, Source,
    UnsupportedSource,
};
use skiff_types::event::{CollectingReporter, Event, NullReporter};
use skiff_types::image::BuiltImage;
use skiff_types::manifest::{Manifest, ManifestSet};
use skiff_types::template::Template;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn built(name: &str, reference: &str) -> BuiltImage {
    BuiltImage {
        image_name: name.into(),
        reference: reference.parse().unwrap(),
        image_id: None,
    }
}

fn inline(yaml: &str) -> Source {
    Source::Inline(InlineSource {
        origin: "test.yaml".into(),
        yaml: yaml.into(),
        default_namespace: None,
    })
}

fn options(sources: Vec<Source>) -> RenderOptions {
    RenderOptions {
        sources,
        run_id: Some("run-1".into()),
        ..RenderOptions::default()
    }
}

async fn render_with(
    options: RenderOptions,
    images: &[BuiltImage],
) -> Result<ManifestSet, RenderError> {
    ManifestRenderer::new(options)
        .render(images, &NullReporter)
        .await
}

async fn render(yaml: &str, images: &[BuiltImage]) -> ManifestSet {
    render_with(options(vec![inline(yaml)]), images)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The artifact every kind test uses, and what it is built as.
fn app() -> Vec<BuiltImage> {
    vec![built("app", "localhost:5000/app:built")]
}

/// `yaml` of a single rendered object, parsed for assertions.
fn value(manifest: &Manifest) -> serde_yaml::Value {
    serde_yaml::from_str(&manifest.yaml).unwrap_or_else(|e| panic!("{e}\n{}", manifest.yaml))
}

/// `path` is dot-separated; keys holding dots are written in brackets:
/// `metadata.labels.[skaffold.dev/run-id]`.
fn at<'v>(value: &'v serde_yaml::Value, path: &str) -> &'v serde_yaml::Value {
    let mut parts = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(bracketed) = rest.strip_prefix('[') {
            let (key, after) = bracketed.split_once(']').unwrap();
            parts.push(key);
            rest = after.strip_prefix('.').unwrap_or(after);
        } else {
            let (key, after) = rest.split_once('.').unwrap_or((rest, ""));
            parts.push(key);
            rest = after;
        }
    }
    let mut node = value;
    for part in parts {
        node = match part.parse::<usize>() {
            Ok(i) => &node[i],
            Err(_) => &node[part],
        };
    }
    node
}

fn text<'v>(value: &'v serde_yaml::Value, path: &str) -> &'v str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {value:?}"))
}

fn pod_spec(kind_header: &str, path_to_spec: &str) -> String {
    // `path_to_spec` like "spec.template.spec": builds the nesting around a pod spec.
    let parts: Vec<&str> = path_to_spec.split('.').collect();
    let mut yaml = format!("{kind_header}metadata:\n  name: thing\n");
    for (depth, part) in parts.iter().enumerate() {
        yaml.push_str(&"  ".repeat(depth));
        yaml.push_str(part);
        yaml.push_str(":\n");
    }
    let pad = "  ".repeat(parts.len());
    yaml.push_str(&format!(
        "{pad}initContainers:\n{pad}- name: init\n{pad}  image: app:old\n{pad}containers:\n{pad}- name: main\n{pad}  image: app\n{pad}- name: sidecar\n{pad}  image: envoyproxy/envoy:v1.29\n{pad}ephemeralContainers:\n{pad}- name: debug\n{pad}  image: app@sha256:{}\n",
        "a".repeat(64)
    ));
    yaml
}

#[tokio::test]
async fn every_kind_gets_its_images_replaced() {
    let cases = [
        ("apiVersion: v1\nkind: Pod\n", "spec"),
        (
            "apiVersion: apps/v1\nkind: Deployment\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: apps/v1\nkind: ReplicaSet\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: apps/v1\nkind: DaemonSet\n",
            "spec.template.spec",
        ),
        ("apiVersion: batch/v1\nkind: Job\n", "spec.template.spec"),
        (
            "apiVersion: batch/v1\nkind: CronJob\n",
            "spec.jobTemplate.spec.template.spec",
        ),
        (
            "apiVersion: batch/v1beta1\nkind: CronJob\n",
            "spec.jobTemplate.spec.template.spec",
        ),
        (
            "apiVersion: extensions/v1beta1\nkind: Deployment\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: v1\nkind: ReplicationController\n",
            "spec.template.spec",
        ),
        ("apiVersion: v1\nkind: PodTemplate\n", "template.spec"),
        (
            "apiVersion: serving.knative.dev/v1\nkind: Service\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: agones.dev/v1\nkind: Fleet\n",
            "spec.template.spec.template.spec",
        ),
        // Kinds skiff does not know: their pod templates still get the images.
        (
            "apiVersion: example.com/v1\nkind: Worker\n",
            "spec.template.spec",
        ),
        (
            "apiVersion: example.com/v1\nkind: Schedule\n",
            "spec.jobTemplate.spec.template.spec",
        ),
    ];
    let digest = format!("app@sha256:{}", "a".repeat(64));
    for (header, path) in cases {
        let rendered = render(&pod_spec(header, path), &app()).await;
        assert_eq!(rendered.manifests.len(), 1);
        let object = value(&rendered.manifests[0]);
        let spec = at(&object, path);
        let context = format!("{header}{}", rendered.manifests[0].yaml);
        assert_eq!(
            text(spec, "initContainers.0.image"),
            "localhost:5000/app:built",
            "{context}"
        );
        assert_eq!(
            text(spec, "containers.0.image"),
            "localhost:5000/app:built",
            "{context}"
        );
        assert_eq!(
            text(spec, "containers.1.image"),
            "envoyproxy/envoy:v1.29",
            "{context}"
        );
        // A digest-pinned image of the artifact's repository is the artifact too.
        assert_eq!(
            text(spec, "ephemeralContainers.0.image"),
            "localhost:5000/app:built",
            "{context}"
        );
        assert_ne!(text(spec, "ephemeralContainers.0.image"), digest);
    }
}

#[tokio::test]
async fn images_match_by_repository_only() {
    let digest = "b".repeat(64);
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: localhost:5000/app:v0.1\n  - name: b\n    image: localhost:5000/app-other:v1\n  - name: c\n    image: docker.io/library/redis@sha256:{digest}\n  - name: d\n    image: localhost:5000/app\n  - name: e\n    image: \"{{{{.Values.image}}}}\"\n  - name: f\n    image: localhost:5000/apps/app\n"
    );
    let images = [built(
        "localhost:5000/app",
        &format!("localhost:5000/app:v2@sha256:{digest}"),
    )];
    let rendered = render(&yaml, &images).await;
    let pod = value(&rendered.manifests[0]);
    let pinned = format!("localhost:5000/app:v2@sha256:{digest}");
    assert_eq!(text(&pod, "spec.containers.0.image"), pinned);
    assert_eq!(
        text(&pod, "spec.containers.1.image"),
        "localhost:5000/app-other:v1"
    );
    assert_eq!(
        text(&pod, "spec.containers.2.image"),
        format!("docker.io/library/redis@sha256:{digest}")
    );
    assert_eq!(text(&pod, "spec.containers.3.image"), pinned);
    assert_eq!(text(&pod, "spec.containers.4.image"), "{{.Values.image}}");
    assert_eq!(
        text(&pod, "spec.containers.5.image"),
        "localhost:5000/apps/app"
    );
}

#[tokio::test]
async fn default_repo_images_replace_the_configured_name() {
    // With `--default-repo localhost:5000` the artifact `gcr.io/acme/web` is built as
    // `localhost:5000/gcr_io_acme_web:…`; manifests still name `gcr.io/acme/web`.
    let images = [built(
        "gcr.io/acme/web",
        "localhost:5000/gcr_io_acme_web:abc123",
    )];
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: gcr.io/acme/web\n      - name: unrelated\n        image: localhost:5000/gcr_io_acme_web:old\n";
    let rendered = render(yaml, &images).await;
    let object = value(&rendered.manifests[0]);
    assert_eq!(
        text(&object, "spec.template.spec.containers.0.image"),
        "localhost:5000/gcr_io_acme_web:abc123"
    );
    assert_eq!(
        text(&object, "spec.template.spec.containers.1.image"),
        "localhost:5000/gcr_io_acme_web:old"
    );
}

#[tokio::test]
async fn images_outside_transformed_kinds_stay() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  image: app\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  image: app\n";
    let rendered = render(yaml, &app()).await;
    assert!(rendered.manifests[0].yaml.contains("  image: app\n"));
    assert!(rendered.manifests[1].yaml.contains("  image: app\n"));
}

#[tokio::test]
async fn resource_selector_adds_and_removes_fields() {
    let yaml = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  app:\n    image: app\n  podTemplate:\n    metadata:\n      labels: {a: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    metadata:\n      labels: {a: b}\n    spec:\n      containers:\n      - name: c\n        image: app\n";
    let mut options = options(vec![inline(yaml)]);
    options.resource_selector = ResourceSelector {
        allow: vec![ResourceFilter {
            group_kind: "Widget.example.com".into(),
            image: vec![".spec.app.image".into()],
            labels: vec![".spec.podTemplate.metadata.labels".into()],
        }],
        deny: vec![ResourceFilter {
            group_kind: "Deployment.apps".into(),
            image: vec![".*".into()],
            labels: vec![],
        }],
    };
    let rendered = render_with(options, &app()).await.unwrap();
    let widget = value(&rendered.manifests[0]);
    assert_eq!(text(&widget, "spec.app.image"), "localhost:5000/app:built");
    assert_eq!(
        text(
            &widget,
            "spec.podTemplate.metadata.labels.[skaffold.dev/run-id]"
        ),
        "run-1"
    );
    let deployment = value(&rendered.manifests[1]);
    assert_eq!(
        text(&deployment, "spec.template.spec.containers.0.image"),
        "app"
    );
}

#[tokio::test]
async fn labels_go_on_objects_and_pod_templates_but_not_immutable_ones() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  labels:\n    app: d\n    skaffold.dev/run-id: kept\nspec:\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers: []\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    metadata:\n      labels: {app: j}\n    spec:\n      containers: []\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: []\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  template:\n    metadata: {}\n    spec:\n      containers: []\n  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n";
    let mut options = options(vec![inline(yaml)]);
    options.labels = BTreeMap::from([("team".to_owned(), "blue".to_owned())]);
    let rendered = render_with(options, &[]).await.unwrap();
    let objects: Vec<serde_yaml::Value> = rendered.manifests.iter().map(value).collect();
    let run_id = "skaffold.dev/run-id";
    let managed = "app.kubernetes.io/managed-by";

    let deployment = &objects[0];
    // An existing label is kept, as Skaffold does.
    assert_eq!(
        text(deployment, &format!("metadata.labels.[{run_id}]")),
        "kept"
    );
    assert_eq!(
        text(deployment, &format!("metadata.labels.[{managed}]")),
        "skiff"
    );
    assert_eq!(text(deployment, "metadata.labels.team"), "blue");
    assert_eq!(text(deployment, "metadata.labels.app"), "d");
    assert_eq!(
        text(
            deployment,
            &format!("spec.template.metadata.labels.[{run_id}]")
        ),
        "run-1"
    );
    assert_eq!(
        text(deployment, "spec.template.metadata.labels.team"),
        "blue"
    );

    let job = &objects[1];
    assert_eq!(text(job, &format!("metadata.labels.[{run_id}]")), "run-1");
    assert!(at(job, &format!("spec.template.metadata.labels.[{run_id}]")).is_null());
    assert_eq!(text(job, "spec.template.metadata.labels.app"), "j");

    let cron = &objects[2];
    assert_eq!(text(cron, &format!("metadata.labels.[{run_id}]")), "run-1");
    // A CronJob's templates may change.
    assert!(at(cron, "spec.jobTemplate.spec.template.metadata.labels").is_null());

    let stateful = &objects[3];
    assert_eq!(
        text(
            stateful,
            &format!("spec.template.metadata.labels.[{run_id}]")
        ),
        "run-1"
    );
    assert!(at(stateful, "spec.volumeClaimTemplates.0.metadata.labels").is_null());

    let config_map = &objects[4];
    assert_eq!(
        text(config_map, &format!("metadata.labels.[{managed}]")),
        "skiff"
    );
}

#[tokio::test]
async fn cron_job_templates_that_have_metadata_get_labels() {
    let yaml = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  jobTemplate:\n    metadata: {}\n    spec:\n      template:\n        metadata:\n          labels: {app: c}\n        spec:\n          containers: []\n";
    let rendered = render(yaml, &[]).await;
    let cron = value(&rendered.manifests[0]);
    assert_eq!(
        text(
            &cron,
            "spec.jobTemplate.metadata.labels.[skaffold.dev/run-id]"
        ),
        "run-1"
    );
    assert_eq!(
        text(
            &cron,
            "spec.jobTemplate.spec.template.metadata.labels.[skaffold.dev/run-id]"
        ),
        "run-1"
    );
}

#[tokio::test]
async fn skiff_labels_can_be_left_out() {
    let mut options = options(vec![inline(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )]);
    options.add_skiff_labels = false;
    let rendered = render_with(options, &[]).await.unwrap();
    assert_eq!(
        rendered.manifests[0].yaml,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
    );
}

#[tokio::test]
async fn namespaces_only_on_namespaced_objects_without_one() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pinned\n  namespace: other\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: empty\n  namespace: \"\"\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
    let mut options = options(vec![Source::Inline(InlineSource {
        origin: "ns.yaml".into(),
        yaml: yaml.into(),
        default_namespace: Some("from-config".into()),
    })]);
    let rendered = render_with(options.clone(), &[]).await.unwrap();
    let namespaces: Vec<Option<&str>> = rendered
        .manifests
        .iter()
        .map(|m| m.namespace.as_deref())
        .collect();
    assert_eq!(
        namespaces,
        [
            None,
            None,
            Some("from-config"),
            Some("other"),
            Some("from-config"),
            None,
            Some("from-config")
        ]
    );
    // The namespace goes right after the name.
    assert!(
        rendered.manifests[2]
            .yaml
            .contains("metadata:\n  name: web\n  namespace: from-config\n"),
        "{}",
        rendered.manifests[2].yaml
    );
    assert!(!rendered.manifests[0].yaml.contains("namespace:"));

    // `-n` wins over the config's default namespace, never over one in the manifest.
    options.namespace = Some("cli".into());
    let rendered = render_with(options, &[]).await.unwrap();
    assert_eq!(rendered.manifests[2].namespace.as_deref(), Some("cli"));
    assert_eq!(rendered.manifests[3].namespace.as_deref(), Some("other"));
    assert_eq!(rendered.manifests[0].namespace, None);
}

#[tokio::test]
async fn raw_yaml_files_in_glob_order() {
    let base = fixtures().join("raw");
    let source = Source::RawYaml(RawYamlSource {
        base_dir: base.clone(),
        globs: vec!["k8s/*.yaml".into()],
        default_namespace: None,
        unmatched_is_warning: false,
    });
    let images = [built("localhost:5000/api", "localhost:5000/api:v3")];
    let rendered = render_with(options(vec![source]), &images).await.unwrap();
    let ids: Vec<String> = rendered.manifests.iter().map(Manifest::id).collect();
    assert_eq!(
        ids,
        ["Deployment/api", "Service/api", "ConfigMap/api-config"]
    );
    assert_eq!(
        rendered.manifests[0].origin,
        base.join("k8s/app.yaml").display().to_string()
    );
    assert!(
        rendered.manifests[0]
            .yaml
            .contains("image: localhost:5000/api:v3\n")
    );
    // Scalars stay as written.
    assert!(rendered.manifests[2].yaml.contains("mode: \"dev\"\n"));
}

#[tokio::test]
async fn an_unmatched_default_glob_is_a_warning_any_other_an_error() {
    let source = Source::RawYaml(RawYamlSource {
        base_dir: fixtures().join("raw"),
        globs: vec!["k8s/*.yaml".into(), "deploy/*.yml".into()],
        default_namespace: None,
        unmatched_is_warning: true,
    });
    let reporter = CollectingReporter::default();
    let rendered = ManifestRenderer::new(options(vec![source]))
        .render(&[], &reporter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!rendered.manifests.is_empty());
    let warnings: Vec<String> = reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } if text.contains("did not match any file") => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("deploy/*.yml did not match any file"),
        "{warnings:?}"
    );

    let source = Source::RawYaml(RawYamlSource {
        base_dir: fixtures().join("raw"),
        globs: vec!["deploy/app.yml".into()],
        default_namespace: None,
        unmatched_is_warning: true,
    });
    let error = render_with(options(vec![source]), &[]).await.unwrap_err();
    assert!(
        matches!(&error, RenderError::NoMatch { glob, .. } if glob == "deploy/app.yml"),
        "{error}"
    );
    assert!(error.to_string().contains("`deploy/app.yml`"), "{error}");

    // Where Skaffold's validation fails (any list but its default), so does skiff.
    let source = Source::RawYaml(RawYamlSource {
        base_dir: fixtures().join("raw"),
        globs: vec!["k8s/*.yaml".into(), "deploy/*.yml".into()],
        default_namespace: None,
        unmatched_is_warning: false,
    });
    let error = render_with(options(vec![source]), &[]).await.unwrap_err();
    assert!(
        matches!(&error, RenderError::NoMatch { glob, .. } if glob == "deploy/*.yml"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_yaml_names_file_document_and_line() {
    let source = Source::RawYaml(RawYamlSource {
        base_dir: fixtures().join("raw"),
        globs: vec!["bad.yaml".into()],
        default_namespace: None,
        unmatched_is_warning: false,
    });
    let error = render_with(options(vec![source]), &[]).await.unwrap_err();
    let message = error.to_string();
    let RenderError::Yaml {
        origin,
        document,
        line,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(origin.ends_with("bad.yaml"), "{message}");
    assert_eq!(*document, 2, "{message}");
    assert!(line.is_some_and(|l| (10..=12).contains(&l)), "{message}");
    assert!(message.contains("bad.yaml:"), "{message}");
    assert!(message.contains("document 2"), "{message}");
}

#[tokio::test]
async fn documents_that_are_not_objects_are_named() {
    let error = render_with(
        options(vec![inline(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- just\n- a list\n",
        )]),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "test.yaml:5: document 2 is a list, not a Kubernetes object (a mapping with apiVersion and kind)"
    );
    let error = render_with(
        options(vec![inline("metadata:\n  name: orphan\nkind: Service\n")]),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "test.yaml:1: document 1 (metadata.name `orphan`) is not a Kubernetes object: it has no `apiVersion`"
    );
}

#[tokio::test]
async fn lists_are_flattened_and_empty_documents_dropped() {
    let yaml = "---\n# nothing\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let rendered = render(yaml, &[]).await;
    let names: Vec<_> = rendered
        .manifests
        .iter()
        .map(|m| m.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[tokio::test]
async fn unsupported_sources_are_refused_by_name() {
    let error = render_with(
        options(vec![Source::Unsupported(UnsupportedSource {
            kind: "manifests.kpt".into(),
            detail: "kpt/".into(),
        })]),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("manifests.kpt is not supported by skiff yet (kpt/)"),
        "{error}"
    );
}

#[tokio::test]
async fn output_is_deterministic_and_keeps_key_order() {
    let yaml = "kind: ConfigMap\napiVersion: v1\ndata:\n  z: \"1\"\n  a: \"2\"\nmetadata:\n  name: order\n";
    let first = render(yaml, &[]).await;
    let second = render(yaml, &[]).await;
    assert_eq!(first, second);
    assert_eq!(
        first.manifests[0].yaml,
        "kind: ConfigMap\napiVersion: v1\ndata:\n  z: \"1\"\n  a: \"2\"\nmetadata:\n  name: order\n  labels:\n    app.kubernetes.io/managed-by: skiff\n    skaffold.dev/run-id: run-1\n"
    );
}

#[tokio::test]
async fn large_inputs_render_the_same_as_small_ones() {
    // Large enough to be split across threads.
    let mut documents = Vec::new();
    for i in 0..600 {
        documents.push(format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\nspec:\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n      - name: main\n        image: app:{i}\n        args: [\"--index\", \"{i}\", \"--padding\", \"{}\"]\n",
            "x".repeat(400)
        ));
    }
    let whole = render(&documents.join("---\n"), &app()).await;
    let mut pieces = Vec::new();
    for document in &documents {
        pieces.extend(render(document, &app()).await.manifests);
    }
    assert_eq!(whole.manifests.len(), 600);
    assert_eq!(whole.manifests, pieces);
}

#[tokio::test]
async fn kustomize_overlays_through_kubectl() {
    let kubectl = ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("kubectl").is_file());
    let Some(dir) = kubectl else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubectl is required in CI");
        }
        eprintln!("skipping: no kubectl");
        return;
    };
    let source = Source::Kustomize(KustomizeSource {
        base_dir: fixtures().join("kustomize"),
        paths: vec!["overlays/dev".into()],
        build_args: vec![],
        default_namespace: Some("dev".into()),
    });
    let mut options = options(vec![source]);
    // Only kubectl's directory: a `kustomize` binary elsewhere must not be picked up.
    options.search_path = vec![dir.clone()];
    options.env = BTreeMap::from([
        ("PATH".to_owned(), dir.display().to_string()),
        (
            "HOME".to_owned(),
            std::env::temp_dir().display().to_string(),
        ),
    ]);
    let reporter = CollectingReporter::default();
    let rendered = ManifestRenderer::new(options)
        .render(
            &[built("localhost:5000/web", "localhost:5000/web:v7")],
            &reporter,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = rendered.manifests.iter().map(Manifest::id).collect();
    assert_eq!(ids, ["dev/Service/dev-web", "dev/Deployment/dev-web"]);
    let deployment = value(&rendered.manifests[1]);
    assert_eq!(at(&deployment, "spec.replicas").as_u64(), Some(3));
    assert_eq!(
        text(&deployment, "spec.template.spec.containers.0.image"),
        "localhost:5000/web:v7"
    );
    assert_eq!(
        text(&deployment, "spec.template.metadata.labels.env"),
        "dev"
    );
    assert_eq!(
        text(
            &deployment,
            "spec.template.metadata.labels.[skaffold.dev/run-id]"
        ),
        "run-1"
    );
    assert_eq!(
        rendered.manifests[0].origin,
        "kustomize path `overlays/dev`"
    );
    let said_which = reporter.events().into_iter().any(|e| {
        matches!(e, Event::Message { text, .. } if text.contains("kubectl") && text.contains("kustomize"))
    });
    assert!(said_which, "{:?}", reporter.events());
}

#[tokio::test]
async fn kustomize_without_any_tool_is_a_clear_error() {
    let source = Source::Kustomize(KustomizeSource {
        base_dir: fixtures().join("kustomize"),
        paths: vec!["overlays/dev".into()],
        build_args: vec![],
        default_namespace: None,
    });
    let mut options = options(vec![source]);
    options.search_path = vec![PathBuf::from("/nonexistent/bin")];
    let error = render_with(options, &[]).await.unwrap_err().to_string();
    assert_eq!(
        error,
        "kustomize path `overlays/dev` needs `kustomize` or `kubectl`, which is not installed (looked in: /nonexistent/bin); install it or put it on PATH"
    );
}

fn helm_source(base_dir: &Path) -> HelmSource {
    HelmSource {
        base_dir: base_dir.to_path_buf(),
        releases: vec![HelmRelease {
            name: "web".into(),
            chart: HelmChart::Path("charts/web".into()),
            version: Some("1.2.3".into()),
            namespace: Some("team".into()),
            values_files: vec![Template::parse("values.yaml").unwrap()],
            set_values: BTreeMap::from([("replicas".into(), "2".into())]),
            set_value_templates: BTreeMap::from([
                (
                    "image.repository".into(),
                    Template::parse("{{.IMAGE_REPO_localhost_5000_web}}").unwrap(),
                ),
                (
                    "image.tag".into(),
                    Template::parse("{{.IMAGE_TAG_localhost_5000_web}}").unwrap(),
                ),
                ("owner".into(), Template::parse("{{.USER}}").unwrap()),
            ]),
            set_files: BTreeMap::new(),
            create_namespace: false,
            skip_build_dependencies: false,
        }],
        flags: HelmFlags {
            template: vec!["--skip-tests".into()],
            ..HelmFlags::default()
        },
        default_namespace: None,
    }
}

#[cfg(unix)]
#[tokio::test]
async fn helm_is_called_with_skaffolds_command_line() {
    use std::os::unix::fs::PermissionsExt;
    // A stand-in `helm` that records its arguments and prints a manifest.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("calls.log");
    std::fs::write(
        bin.join("helm"),
        format!(
            "#!/bin/sh\necho \"$PWD|$*\" >> {}\ncase \"$*\" in *template*) printf 'apiVersion: apps/v1\\nkind: Deployment\\nmetadata:\\n  name: web\\nspec:\\n  template:\\n    spec:\\n      containers:\\n      - name: web\\n        image: localhost:5000/web\\n' ;; esac\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("helm"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();

    let mut options = options(vec![Source::Helm(helm_source(&project))]);
    options.search_path = vec![PathBuf::from("/nonexistent"), bin.clone()];
    options.env = BTreeMap::from([
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("USER".to_owned(), "dev".to_owned()),
    ]);
    options.kube_context = Some("skiff-devenv".into());
    let images = [built("localhost:5000/web", "localhost:5000/web:abc")];
    let rendered = render_with(options.clone(), &images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = std::fs::read_to_string(&log).unwrap();
    let project = project.display();
    assert_eq!(
        calls,
        format!(
            "{project}|--kube-context skiff-devenv dep build charts/web\n{project}|--kube-context skiff-devenv template web charts/web --skip-tests --version 1.2.3 --set replicas=2 --set image.repository=localhost:5000/web --set image.tag=abc --set owner=dev -f values.yaml --namespace team\n"
        )
    );
    let manifest = &rendered.manifests[0];
    assert_eq!(manifest.origin, "helm release `web`");
    // The release's namespace is the objects' namespace.
    assert_eq!(manifest.namespace.as_deref(), Some("team"));
    assert!(
        manifest.yaml.contains("image: localhost:5000/web:abc\n"),
        "{}",
        manifest.yaml
    );

    // Offline: no cluster flags; `-n` wins over the release namespace.
    std::fs::remove_file(&log).unwrap();
    options.offline = true;
    options.namespace = Some("cli".into());
    let rendered = render_with(options, &images).await.unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(!calls.contains("--kube-context"), "{calls}");
    assert!(calls.contains("--namespace cli\n"), "{calls}");
    assert_eq!(rendered.manifests[0].namespace.as_deref(), Some("cli"));
}

#[cfg(unix)]
#[tokio::test]
async fn a_failing_helm_reports_its_command_and_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("helm"),
        "#!/bin/sh\necho 'Error: chart \"charts/web\" not found' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("helm"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut source = helm_source(dir.path());
    source.releases[0].skip_build_dependencies = true;
    source.releases[0].set_value_templates.clear();
    let mut options = options(vec![Source::Helm(source)]);
    options.search_path = vec![dir.path().to_path_buf()];
    let error = render_with(options, &[]).await.unwrap_err().to_string();
    assert!(
        error.starts_with("helm release `web`: `helm template web charts/web"),
        "{error}"
    );
    assert!(error.contains("exit status: 1"), "{error}");
    assert!(
        error.ends_with("Error: chart \"charts/web\" not found"),
        "{error}"
    );
}

#[tokio::test]
async fn missing_helm_names_the_release() {
    let mut options = options(vec![Source::Helm(helm_source(Path::new("/project")))]);
    options.search_path = vec![
        PathBuf::from("/nonexistent/bin"),
        PathBuf::from("/also/missing"),
    ];
    let error = render_with(options, &[]).await.unwrap_err();
    assert!(
        matches!(error, RenderError::ToolMissing { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "helm release `web` needs `helm`, which is not installed (looked in: /nonexistent/bin:/also/missing); install it or put it on PATH"
    );
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    const SAMPLE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: app:1\n        args: [\"a\", 'b']\n        env:\n        - name: X\n          value: |\n            text\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: batch/v1\n  kind: Job\n  metadata: {name: j}\n  spec:\n    template:\n      spec:\n        containers: [{name: j, image: app}]\n";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Proptest cases: `default`, or `SKIFF_FUZZ_CASES` for a longer fuzzing run
    /// (`SKIFF_FUZZ_CASES=100000 cargo test ... fuzz`).
    fn fuzz_cases(default: u32) -> u32 {
        std::env::var("SKIFF_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(fuzz_cases(300)))]

        #[test]
        fn arbitrary_text(text in "\\PC{0,300}") {
            let _ = runtime().block_on(render_with(options(vec![inline(&text)]), &app()));
        }

        #[test]
        fn mutated_manifests(
            edits in proptest::collection::vec((any::<usize>(), "[-:\\[\\]{}#|>'\"&*!? \\n\\ta-z0-9]{0,3}"), 1..6),
        ) {
            let mut text = SAMPLE.to_owned();
            for (at, insert) in edits {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if insert.is_empty() {
                    let end = (at + 3).min(text.len());
                    if text.is_char_boundary(end) {
                        text.replace_range(at..end, "");
                    }
                } else {
                    text.insert_str(at, &insert);
                }
            }
            let result = runtime().block_on(render_with(options(vec![inline(&text)]), &app()));
            if let Ok(rendered) = result {
                // What renders is valid YAML, one object per document.
                for manifest in &rendered.manifests {
                    let parsed: serde_yaml::Value = serde_yaml::from_str(&manifest.yaml)
                        .unwrap_or_else(|e| panic!("{e}\n{}", manifest.yaml));
                    prop_assert!(parsed.is_mapping());
                }
            }
        }
    }
}

#[tokio::test]
async fn hooks_run_before_and_after_and_with_change_replace_the_manifests() {
    use skiff_render::hooks::{HostHook, PostRenderHook, RenderHooks};
    let dir = tempfile::tempdir().unwrap();
    let sh = |script: &str| HostHook {
        command: vec!["sh".into(), "-c".into(), script.into()],
        os: vec![],
        dir: Some(dir.path().to_path_buf()),
    };
    let mut options = options(vec![inline(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: web\n",
    )]);
    options.env = BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap())]);
    options.hooks = RenderHooks {
        before: vec![sh("echo before > before.txt; echo pre-render says hi")],
        after: vec![
            PostRenderHook {
                host: sh("cat > seen.yaml; echo post-render says hi"),
                with_change: false,
            },
            PostRenderHook {
                host: sh("sed 's/name: web$/name: changed/'"),
                with_change: true,
            },
            PostRenderHook {
                host: HostHook {
                    os: vec!["windows".into()],
                    ..sh("exit 1")
                },
                with_change: true,
            },
        ],
    };
    let reporter = CollectingReporter::default();
    let rendered = ManifestRenderer::new(options)
        .render(&[built("web", "web:v1")], &reporter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.path().join("before.txt").is_file());
    // The after hook saw the rendered objects: image and labels applied.
    let seen = std::fs::read_to_string(dir.path().join("seen.yaml")).unwrap();
    assert!(seen.contains("image: web:v1"), "{seen}");
    assert!(seen.contains("skaffold.dev/run-id: run-1"), "{seen}");
    assert_eq!(rendered.manifests.len(), 1);
    assert_eq!(rendered.manifests[0].name.as_deref(), Some("changed"));
    assert!(rendered.manifests[0].yaml.contains("image: web:v1"));
    let said: Vec<String> = reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } if text.contains("says hi") => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        said,
        [
            "[pre-render hook] pre-render says hi",
            "[post-render hook] post-render says hi"
        ]
    );

    // A failing hook fails the render, naming it.
    let mut options = options_for_failure();
    options.hooks.before = vec![HostHook {
        command: vec!["sh".into(), "-c".into(), "echo broken >&2; exit 3".into()],
        os: vec![],
        dir: None,
    }];
    let error = ManifestRenderer::new(options)
        .render(&[], &NullReporter)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("manifests.hooks.before"), "{error}");
    assert!(error.contains("broken"), "{error}");
}

fn options_for_failure() -> RenderOptions {
    let mut options = options(vec![]);
    options.env = BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap())]);
    options
}
