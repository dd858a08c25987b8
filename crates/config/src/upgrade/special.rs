//! The upgrade steps Skaffold writes by hand, where a field changed shape rather than name.
//!
//! Each reads the document as it was before the step (`old`) and writes into the document the
//! generated renames already produced (`new`), as Skaffold's `Upgrade` methods read the old
//! config and patch the cloned one. Fields they consume are listed in `handled`, so that the
//! generated step's "dropped" notes do not name them.

use serde_yaml::{Mapping, Value};

use super::{Note, UpgradeError, get, mapping_at, put};

/// The hand-written part of the upgrade from `version` to the next one.
pub(super) fn step(
    version: &str,
    old: &Value,
    new: &mut Value,
    handled: &mut Vec<String>,
    notes: &mut Vec<Note>,
) -> Result<(), UpgradeError> {
    match version {
        "skaffold/v1alpha2" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                helm_values_file_path(old_p, new_p, prefix, handled);
                if let Some(Value::Mapping(kaniko)) = get(old_p, &["build", "kaniko"]) {
                    if let Some(bucket) = kaniko.get("gcsBucket") {
                        put(
                            new_p,
                            &["build", "kaniko", "buildContext", "gcsBucket"],
                            bucket.clone(),
                        );
                        handled.push(format!("{prefix}build.kaniko.gcsBucket"));
                    }
                }
                Ok(())
            })?;
        }
        "skaffold/v1alpha3" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                if let Some(Value::Bool(skip)) = get(old_p, &["build", "local", "skipPush"]) {
                    put(new_p, &["build", "local", "push"], Value::Bool(!skip));
                    handled.push(format!("{prefix}build.local.skipPush"));
                }
                Ok(())
            })?;
        }
        "skaffold/v1alpha5" => {
            each_pipeline(old, new, |old_p, _new_p, prefix| {
                if get(old_p, &["build", "acr"]).is_some() {
                    return Err(UpgradeError {
                        field: format!("{prefix}build.acr"),
                        message: "`build.acr` (Azure Container Registry builds) is not supported since skaffold/v1beta1, by Skaffold or skiff; remove it".to_owned(),
                    });
                }
                Ok(())
            })?;
        }
        "skaffold/v1beta6" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                let Some(Value::Mapping(kaniko)) = get(old_p, &["build", "kaniko"]) else {
                    return Ok(());
                };
                handled.push(format!("{prefix}build.kaniko"));
                let pick = |keys: &[&str]| -> Mapping {
                    kaniko
                        .iter()
                        .filter(|(k, _)| k.as_str().is_some_and(|k| keys.contains(&k)))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                };
                let artifact = pick(&["buildContext", "cache", "flags", "image"]);
                if let Some(Value::Sequence(artifacts)) =
                    mapping_at(new_p, &["build"]).get_mut("artifacts")
                {
                    for a in artifacts.iter_mut() {
                        if let Value::Mapping(a) = a {
                            a.insert("kaniko".into(), Value::Mapping(artifact.clone()));
                        }
                    }
                }
                let cluster = pick(&[
                    "dockerConfig",
                    "namespace",
                    "pullSecret",
                    "pullSecretName",
                    "timeout",
                ]);
                put(new_p, &["build", "cluster"], Value::Mapping(cluster));
                Ok(())
            })?;
        }
        "skaffold/v1beta8" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let Some(Value::Mapping(plugin)) = a.get("plugin") else {
                        return;
                    };
                    handled.push(format!("{prefix}build.artifacts[{i}].plugin"));
                    let name = plugin.get("name").and_then(Value::as_str).unwrap_or("");
                    let properties = plugin.get("properties").cloned().unwrap_or(Value::Null);
                    if matches!(name, "bazel" | "docker") {
                        target.insert(name.into(), properties);
                    } else {
                        notes.push(Note {
                            field: Some(format!("{prefix}build.artifacts[{i}].plugin")),
                            message: format!("builder plugin `{name}` has no equivalent after skaffold/v1beta8 (only `bazel` and `docker` carry over): it is dropped, as Skaffold drops it"),
                        });
                    }
                });
                if let Some(Value::Mapping(env)) = get(old_p, &["build", "executionEnvironment"]) {
                    handled.push(format!("{prefix}build.executionEnvironment"));
                    let name = env.get("name").and_then(Value::as_str).unwrap_or("");
                    let properties = env.get("properties").cloned().unwrap_or(Value::Null);
                    match name {
                        "googleCloudBuild" => {
                            put(new_p, &["build", "googleCloudBuild"], properties)
                        }
                        "local" => put(new_p, &["build", "local"], properties),
                        _ => {}
                    }
                }
                Ok(())
            })?;
        }
        "skaffold/v1beta9" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let Some(Value::Mapping(sync)) = a.get("sync") else {
                        return;
                    };
                    handled.push(format!("{prefix}build.artifacts[{i}].sync"));
                    let mut rules = Vec::new();
                    for (src, dest) in sync {
                        let (Some(src), Some(dest)) = (src.as_str(), dest.as_str()) else {
                            continue;
                        };
                        rules.push(sync_rule(src, dest, prefix, i, notes));
                    }
                    if rules.is_empty() {
                        target.remove("sync");
                    } else {
                        let mut manual = Mapping::new();
                        manual.insert("manual".into(), Value::Sequence(rules));
                        target.insert("sync".into(), Value::Mapping(manual));
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v1beta13" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let jib = if let Some(Value::Mapping(maven)) = a.get("jibMaven") {
                        handled.push(format!("{prefix}build.artifacts[{i}].jibMaven"));
                        let mut flags = sequence_values(maven.get("args"));
                        if let Some(profile) = maven.get("profile").and_then(Value::as_str) {
                            if !profile.is_empty() {
                                flags.push("--activate-profiles".into());
                                flags.push(profile.into());
                            }
                        }
                        jib(maven.get("module"), flags, "maven")
                    } else if let Some(Value::Mapping(gradle)) = a.get("jibGradle") {
                        handled.push(format!("{prefix}build.artifacts[{i}].jibGradle"));
                        jib(
                            gradle.get("project"),
                            sequence_values(gradle.get("args")),
                            "gradle",
                        )
                    } else {
                        return;
                    };
                    target.insert("jib".into(), jib);
                });
                Ok(())
            })?;
        }
        "skaffold/v2alpha1" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let Some(init) = get(a, &["kaniko", "buildContext", "localDir", "initImage"])
                    else {
                        return;
                    };
                    handled.push(format!("{prefix}build.artifacts[{i}].kaniko.buildContext"));
                    if let Some(Value::Mapping(kaniko)) = target.get_mut("kaniko") {
                        kaniko.insert("initImage".into(), init.clone());
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2alpha2" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                if let Some(Value::String(path)) = get(old_p, &["deploy", "kustomize", "path"]) {
                    handled.push(format!("{prefix}deploy.kustomize.path"));
                    if !path.is_empty() {
                        put(
                            new_p,
                            &["deploy", "kustomize", "paths"],
                            Value::Sequence(vec![path.clone().into()]),
                        );
                    }
                }
                Ok(())
            })?;
        }
        "skaffold/v2beta3" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, HELM_RELEASES, |i, old_r, new_r| {
                    if let Some(values) = old_r.get("values") {
                        handled.push(format!("{prefix}deploy.helm.releases[{i}].values"));
                        new_r.insert("artifactOverrides".into(), values.clone());
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2beta4" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                if let Some(secret) = get(old_p, &["build", "cluster", "pullSecret"]) {
                    handled.push(format!("{prefix}build.cluster.pullSecret"));
                    put(
                        new_p,
                        &["build", "cluster", "pullSecretPath"],
                        secret.clone(),
                    );
                }
                Ok(())
            })?;
        }
        "skaffold/v2beta12" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, HELM_RELEASES, |i, old_r, new_r| {
                    if old_r.get("remote").is_some() {
                        handled.push(format!("{prefix}deploy.helm.releases[{i}].remote"));
                    }
                    if old_r.get("remote") == Some(&Value::Bool(true)) {
                        if let Some(chart) = new_r.remove("chartPath") {
                            new_r.insert("remoteChart".into(), chart);
                        }
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2beta16" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, _| {
                    if let Some(dst) = get(a, &["docker", "secret", "dst"]) {
                        handled.push(format!("{prefix}build.artifacts[{i}].docker.secret.dst"));
                        notes.push(Note {
                            field: Some(format!("{prefix}build.artifacts[{i}].docker.secret.dst")),
                            message: format!(
                                "a Docker secret's destination is no longer supported (it was {}); it is dropped, as Skaffold drops it",
                                super::key_text(dst)
                            ),
                        });
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2beta22" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let Some(Value::Mapping(secret)) = get(a, &["docker", "secret"]) else {
                        return;
                    };
                    handled.push(format!("{prefix}build.artifacts[{i}].docker.secret"));
                    let kept: Mapping = secret
                        .iter()
                        .filter(|(k, _)| matches!(k.as_str(), Some("id" | "src")))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if let Some(Value::Mapping(docker)) = target.get_mut("docker") {
                        docker.insert(
                            "secrets".into(),
                            Value::Sequence(vec![Value::Mapping(kept)]),
                        );
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2beta27" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                for_each_item(old_p, new_p, ARTIFACTS, |i, a, target| {
                    let Some(Value::Sequence(platforms)) = get(a, &["ko", "platforms"]) else {
                        return;
                    };
                    handled.push(format!("{prefix}build.artifacts[{i}].ko.platforms"));
                    if !platforms.is_empty() {
                        target.insert("platforms".into(), Value::Sequence(platforms.clone()));
                    }
                });
                Ok(())
            })?;
        }
        "skaffold/v2beta29" => to_v3alpha1(old, new, handled)?,
        "skaffold/v3" => {
            each_pipeline(old, new, |old_p, new_p, prefix| {
                let Some(Value::Sequence(remote)) =
                    get(old_p, &["deploy", "kubectl", "remoteManifests"])
                else {
                    return Ok(());
                };
                handled.push(format!("{prefix}deploy.kubectl.remoteManifests"));
                let context = get(old_p, &["deploy", "kubeContext"]).cloned();
                let manifests: Vec<Value> = remote
                    .iter()
                    .map(|m| {
                        let mut entry = Mapping::new();
                        entry.insert("manifest".into(), m.clone());
                        if let Some(context) = &context {
                            entry.insert("kubeContext".into(), context.clone());
                        }
                        Value::Mapping(entry)
                    })
                    .collect();
                if let Some(Value::Mapping(kubectl)) = get_mut(new_p, &["deploy", "kubectl"]) {
                    kubectl.remove("remoteManifests");
                }
                let render = mapping_at(new_p, &["manifests"]);
                let list = render
                    .entry("remoteManifests".into())
                    .or_insert_with(|| Value::Sequence(Vec::new()));
                if let Value::Sequence(list) = list {
                    list.extend(manifests);
                }
                Ok(())
            })?;
        }
        _ => {}
    }
    Ok(())
}

/// `skaffold/v2beta29` → `skaffold/v3alpha1`: manifests move from the deployers to
/// `manifests` (`rawYaml`, `kustomize`, `helm`); helm's `artifactOverrides` and
/// `imageStrategy` become `setValueTemplates`; profile patches follow the moves.
fn to_v3alpha1(
    old: &Value,
    new: &mut Value,
    handled: &mut Vec<String>,
) -> Result<(), UpgradeError> {
    each_pipeline(old, new, |old_p, new_p, prefix| {
        if let Some(manifests) = get(old_p, &["deploy", "kubectl", "manifests"]) {
            handled.push(format!("{prefix}deploy.kubectl.manifests"));
            put(new_p, &["manifests", "rawYaml"], manifests.clone());
        }
        if let Some(Value::Mapping(kustomize)) = get(old_p, &["deploy", "kustomize"]) {
            handled.push(format!("{prefix}deploy.kustomize"));
            let paths = match kustomize.get("paths") {
                Some(Value::Sequence(paths)) if !paths.is_empty() => Value::Sequence(paths.clone()),
                _ => Value::Sequence(vec![".".into()]),
            };
            let render = mapping_at(new_p, &["manifests", "kustomize"]);
            render.insert("paths".into(), paths);
            if let Some(args) = kustomize.get("buildArgs") {
                render.insert("buildArgs".into(), args.clone());
            }
            merge_kustomize_into_kubectl(kustomize, new_p, prefix)?;
        }
        if get(old_p, &["deploy", "kpt"]).is_some() {
            return Err(UpgradeError {
                field: format!("{prefix}deploy.kpt"),
                message: "converting `deploy.kpt` to skaffold/v3 is not supported (by Skaffold either); move it to `manifests.kpt` and `deploy.kpt` by hand".to_owned(),
            });
        }
        if let Some(Value::Mapping(helm)) = get(old_p, &["deploy", "helm"]) {
            handled.push(format!("{prefix}deploy.helm"));
            let releases: Vec<Value> = match helm.get("releases") {
                Some(Value::Sequence(releases)) => releases.iter().map(helm_release).collect(),
                _ => Vec::new(),
            };
            let mut render = Mapping::new();
            render.insert("releases".into(), Value::Sequence(releases.clone()));
            if let Some(flags) = helm.get("flags") {
                render.insert("flags".into(), flags.clone());
            }
            put(new_p, &["manifests", "helm"], Value::Mapping(render));
            let mut deploy = Mapping::new();
            if let Some(hooks) = helm.get("hooks") {
                deploy.insert("hooks".into(), hooks.clone());
            }
            deploy.insert("releases".into(), Value::Sequence(releases));
            if let Some(flags) = helm.get("flags") {
                deploy.insert("flags".into(), flags.clone());
            }
            put(new_p, &["deploy", "helm"], Value::Mapping(deploy));
        }
        Ok(())
    })?;
    // Profile patches name fields by path: those that moved are rewritten (a patch of
    // `/deploy/helm/…` is kept for the deployer and copied for `manifests.helm`; one of a
    // release's `artifactOverrides` becomes one of its `setValueTemplates`).
    let old_releases = sequence_values(get(old, HELM_RELEASES));
    let has_helm = get(old, &["deploy", "helm"]).is_some();
    if let Some(Value::Sequence(profiles)) =
        new.as_mapping_mut().and_then(|m| m.get_mut("profiles"))
    {
        for profile in profiles.iter_mut() {
            let Some(Value::Sequence(patches)) =
                profile.as_mapping_mut().and_then(|p| p.get_mut("patches"))
            else {
                continue;
            };
            let original = patches.len();
            let mut overrides = vec![false; original];
            let mut extra = Vec::new();
            for (j, patch) in patches.iter_mut().enumerate() {
                let Value::Mapping(patch) = patch else {
                    continue;
                };
                let Some(path) = patch.get("path").and_then(Value::as_str).map(str::to_owned)
                else {
                    continue;
                };
                let Some(release) = artifact_override_release(&path) else {
                    continue;
                };
                overrides[j] = true;
                if !has_helm {
                    continue;
                }
                let moved = path
                    .replace("/deploy/helm", "/manifests/helm")
                    .replace("artifactOverrides", "setValueTemplates");
                let image = patch
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let convention = old_releases
                    .get(release)
                    .and_then(|r| r.get("imageStrategy"))
                    .and_then(|s| s.get("helm"));
                // The patch itself sets the first template; the others are added after it.
                let mut templates = override_templates(&moved, image, convention).into_iter();
                let original = patch.clone();
                if let Some((path, value)) = templates.next() {
                    patch.insert("path".into(), path.into());
                    patch.insert("value".into(), value.into());
                }
                for (path, value) in templates {
                    let mut added = original.clone();
                    added.insert("path".into(), path.into());
                    added.insert("value".into(), value.into());
                    extra.push(Value::Mapping(added));
                }
            }
            patches.extend(extra);
            let duplicates: Vec<Value> = patches
                .iter()
                .filter(|p| {
                    p.get("path").and_then(Value::as_str).is_some_and(|path| {
                        path.contains("/deploy/helm") && !path.contains("/deploy/helm/hooks")
                    })
                })
                .cloned()
                .collect();
            for (j, patch) in patches.iter_mut().enumerate().take(original) {
                let Value::Mapping(patch) = patch else {
                    continue;
                };
                let Some(path) = patch.get("path").and_then(Value::as_str).map(str::to_owned)
                else {
                    continue;
                };
                if overrides[j] || path.contains("/deploy/helm/hooks") {
                    continue;
                }
                let moved = migrate_patch_path(&path);
                if moved != path {
                    patch.insert("path".into(), moved.into());
                }
            }
            patches.extend(duplicates);
        }
    }
    Ok(())
}

/// The release index of a patch path that sets a helm release's image override
/// (`/deploy/helm/releases/0/artifactOverrides/image…`).
fn artifact_override_release(path: &str) -> Option<usize> {
    let rest = path.split("/deploy/helm/releases/").nth(1)?;
    let (index, rest) = rest.split_once('/')?;
    let index = index.parse().ok()?;
    rest.starts_with("artifactOverrides/image").then_some(index)
}

fn migrate_patch_path(path: &str) -> String {
    const MOVES: &[(&str, &str)] = &[
        ("/deploy/kubectl/manifests", "/manifests/rawYaml"),
        ("/deploy/kustomize/paths", "/manifests/kustomize/paths"),
        (
            "/deploy/kustomize/buildArgs",
            "/manifests/kustomize/buildArgs",
        ),
        ("/deploy/helm", "/manifests/helm"),
    ];
    let mut out = path.to_owned();
    for (from, to) in MOVES {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// A v2beta29 helm release as v3alpha1 reads it: `artifactOverrides` (and `imageStrategy`)
/// become `setValueTemplates` naming the image's template variables.
fn helm_release(release: &Value) -> Value {
    let Value::Mapping(old) = release else {
        return release.clone();
    };
    let mut new = old.clone();
    let overrides = new.remove("artifactOverrides");
    let strategy = new.remove("imageStrategy");
    let Some(Value::Mapping(overrides)) = overrides else {
        return Value::Mapping(new);
    };
    let convention = strategy.as_ref().and_then(|s| s.get("helm"));
    let mut templates = match new.remove("setValueTemplates") {
        Some(Value::Mapping(t)) => t,
        _ => Mapping::new(),
    };
    for (key, image) in &overrides {
        let (Some(key), Some(image)) = (key.as_str(), image.as_str()) else {
            continue;
        };
        for (key, template) in override_templates(key, image, convention) {
            templates.insert(key.into(), template.into());
        }
    }
    if !new.contains_key("setValues") {
        new.insert("setValues".into(), Value::Mapping(Mapping::new()));
    }
    if !templates.is_empty() {
        new.insert("setValueTemplates".into(), Value::Mapping(templates));
    }
    Value::Mapping(new)
}

/// What one `artifactOverrides` entry (`key: image`) becomes in `setValueTemplates`, as
/// Skaffold's v2beta29 upgrade writes it: with the helm image strategy (`convention`, the
/// release's `imageStrategy.helm`) `key.tag`, `key.registry` when it asks for an explicit
/// registry, and `key.repository`; otherwise `key` itself, fully qualified.
fn override_templates(key: &str, image: &str, convention: Option<&Value>) -> Vec<(String, String)> {
    let name = skiff_types::template::image_variable_suffix(image);
    let Some(convention) = convention else {
        return vec![(
            key.to_owned(),
            format!("{{{{.IMAGE_FULLY_QUALIFIED_{name}}}}}"),
        )];
    };
    let tag = (
        format!("{key}.tag"),
        format!("{{{{.IMAGE_TAG_{name}}}}}@{{{{.IMAGE_DIGEST_{name}}}}}"),
    );
    if convention.get("explicitRegistry") == Some(&Value::Bool(true)) {
        vec![
            tag,
            (
                format!("{key}.registry"),
                format!("{{{{.IMAGE_DOMAIN_{name}}}}}"),
            ),
            (
                format!("{key}.repository"),
                format!("{{{{.IMAGE_REPO_NO_DOMAIN_{name}}}}}"),
            ),
        ]
    } else {
        vec![
            tag,
            (
                format!("{key}.repository"),
                format!("{{{{.IMAGE_REPO_{name}}}}}"),
            ),
        ]
    }
}

/// Skaffold folds `deploy.kustomize`'s deployer settings into `deploy.kubectl`.
fn merge_kustomize_into_kubectl(
    kustomize: &Mapping,
    new_p: &mut Value,
    prefix: &str,
) -> Result<(), UpgradeError> {
    let kubectl = mapping_at(new_p, &["deploy", "kubectl"]);
    let conflict = |what: &str| UpgradeError {
        field: format!("{prefix}deploy.kustomize.{what}"),
        message: format!(
            "cannot merge `deploy.kustomize.{what}` into `deploy.kubectl`: it is already set there to another value (Skaffold refuses this too); make them equal"
        ),
    };
    if let (Some(a), Some(b)) = (
        kubectl.get("defaultNamespace"),
        kustomize.get("defaultNamespace"),
    ) {
        if a != b {
            return Err(conflict("defaultNamespace"));
        }
    }
    if let Some(namespace) = kustomize.get("defaultNamespace") {
        kubectl.insert("defaultNamespace".into(), namespace.clone());
    }
    let flag = |m: &Mapping, key: &str| -> Option<Value> {
        m.get("flags")?.as_mapping()?.get(key).cloned()
    };
    let kubectl_view = kubectl.clone();
    if flag(&kubectl_view, "disableValidation") != flag(kustomize, "disableValidation")
        && kubectl_view.contains_key("flags")
    {
        return Err(conflict("flags.disableValidation"));
    }
    let mut flags = Mapping::new();
    if let Some(v) = flag(kustomize, "disableValidation") {
        flags.insert("disableValidation".into(), v);
    }
    for key in ["global", "apply", "delete"] {
        let mut list = sequence_values(flag(&kubectl_view, key).as_ref());
        list.extend(sequence_values(flag(kustomize, key).as_ref()));
        if !list.is_empty() {
            flags.insert(key.into(), Value::Sequence(list));
        }
    }
    if !flags.is_empty() {
        kubectl.insert("flags".into(), Value::Mapping(flags));
    }
    let hook = |m: &Mapping, key: &str| -> Vec<Value> {
        sequence_values(
            m.get("hooks")
                .and_then(|h| h.as_mapping())
                .and_then(|h| h.get(key)),
        )
    };
    let mut hooks = Mapping::new();
    for key in ["before", "after"] {
        let mut list = hook(&kubectl_view, key);
        list.extend(hook(kustomize, key));
        if !list.is_empty() {
            hooks.insert(key.into(), Value::Sequence(list));
        }
    }
    if !hooks.is_empty() {
        kubectl.insert("hooks".into(), Value::Mapping(hooks));
    }
    Ok(())
}

/// v1beta9's `sync` map entry as a v1beta10 manual rule.
fn sync_rule(src: &str, dest: &str, prefix: &str, artifact: usize, notes: &mut Vec<Note>) -> Value {
    let mut rule = Mapping::new();
    let (src, dest, strip) = if let Some(directory) = simple_pattern_directory(src) {
        let (dest, strip) = simplify(dest, directory);
        (src.to_owned(), dest, strip)
    } else if let Some((before, _)) = src.split_once("***") {
        let (dest, strip) = simplify(dest, before);
        (src.replace("***", "**"), dest, strip)
    } else {
        notes.push(Note {
            field: Some(format!("{prefix}build.artifacts[{artifact}].sync")),
            message: format!("sync pattern `{src}`: since skaffold/v1beta10 the folder structure is kept, not flattened; check where its files land"),
        });
        (src.to_owned(), dest.to_owned(), String::new())
    };
    rule.insert("src".into(), src.into());
    rule.insert("dest".into(), dest.into());
    if !strip.is_empty() {
        rule.insert("strip".into(), strip.into());
    }
    Value::Mapping(rule)
}

/// For a pattern that is a directory without `*` and a last part with at most one `*`: the
/// directory (with its `/`, or empty).
fn simple_pattern_directory(src: &str) -> Option<&str> {
    let (directory, last) = match src.rfind('/') {
        Some(i) => (&src[..=i], &src[i + 1..]),
        None => ("", src),
    };
    let simple = !directory.contains('*') && !last.is_empty() && last.matches('*').count() <= 1;
    simple.then_some(directory)
}

fn simplify(dest: &str, strip: &str) -> (String, String) {
    if strip.is_empty() || strip == "/" || dest.is_empty() {
        return (dest.to_owned(), strip.to_owned());
    }
    let mut with_slash = dest.to_owned();
    if !with_slash.ends_with('/') {
        with_slash.push('/');
    }
    if with_slash.ends_with(strip) {
        let trimmed = with_slash
            .strip_suffix(strip.trim_start_matches('/'))
            .unwrap_or(&with_slash)
            .to_owned();
        let trimmed = if trimmed.is_empty() {
            ".".to_owned()
        } else {
            trimmed
        };
        return (trimmed, String::new());
    }
    (dest.to_owned(), strip.to_owned())
}

fn jib(project: Option<&Value>, flags: Vec<Value>, kind: &str) -> Value {
    let mut jib = Mapping::new();
    if let Some(project) = project.filter(|p| p.as_str().is_some_and(|p| !p.is_empty())) {
        jib.insert("project".into(), project.clone());
    }
    if !flags.is_empty() {
        jib.insert("args".into(), Value::Sequence(flags));
    }
    jib.insert("type".into(), kind.into());
    Value::Mapping(jib)
}

fn sequence_values(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Sequence(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// The v1alpha2 config a v1alpha1 one upgrades to (Skaffold rebuilds it field by field).
pub(super) fn from_v1alpha1(old: &Value, notes: &mut Vec<Note>) -> Value {
    let mut new = Mapping::new();
    new.insert("apiVersion".into(), "skaffold/v1alpha2".into());
    if let Some(kind) = get(old, &["kind"]) {
        new.insert("kind".into(), kind.clone());
    }
    let mut new = Value::Mapping(new);
    let mut build = Mapping::new();
    match get(old, &["build", "tagPolicy"]).and_then(Value::as_str) {
        Some("sha256") => {
            put(
                &mut new,
                &["build", "tagPolicy", "sha256"],
                Value::Mapping(Mapping::new()),
            );
        }
        Some("gitCommit") => {
            put(
                &mut new,
                &["build", "tagPolicy", "gitCommit"],
                Value::Mapping(Mapping::new()),
            );
        }
        _ => {}
    }
    let mut artifacts = Vec::new();
    if let Some(Value::Sequence(old_artifacts)) = get(old, ARTIFACTS) {
        for a in old_artifacts {
            let mut artifact = Mapping::new();
            for key in ["imageName", "workspace"] {
                if let Some(v) = a.get(key) {
                    artifact.insert(key.into(), v.clone());
                }
            }
            let dockerfile = a
                .get("dockerfilePath")
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            let args = a
                .get("buildArgs")
                .filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()));
            if dockerfile.is_some() || args.is_some() {
                let mut docker = Mapping::new();
                if let Some(d) = dockerfile {
                    docker.insert("dockerfilePath".into(), d.clone());
                }
                if let Some(args) = args {
                    docker.insert("buildArgs".into(), args.clone());
                }
                artifact.insert("docker".into(), Value::Mapping(docker));
            }
            artifacts.push(Value::Mapping(artifact));
        }
    }
    if !artifacts.is_empty() {
        build.insert("artifacts".into(), Value::Sequence(artifacts));
    }
    if let Some(Value::Mapping(gcb)) = get(old, &["build", "googleCloudBuild"]) {
        let mut kept = Mapping::new();
        if let Some(project) = gcb.get("projectId") {
            kept.insert("projectId".into(), project.clone());
        }
        build.insert("googleCloudBuild".into(), Value::Mapping(kept));
    }
    if let Some(Value::Mapping(local)) = get(old, &["build", "local"]) {
        let mut kept = Mapping::new();
        if let Some(skip) = local.get("skipPush") {
            kept.insert("skipPush".into(), skip.clone());
        }
        build.insert("local".into(), Value::Mapping(kept));
    }
    for (key, value) in build {
        mapping_at(&mut new, &["build"]).insert(key, value);
    }
    if let Some(Value::Mapping(helm)) = get(old, &["deploy", "helm"]) {
        let releases: Vec<Value> = sequence_values(helm.get("releases"))
            .into_iter()
            .map(|r| {
                let mut kept = Mapping::new();
                for key in [
                    "name",
                    "chartPath",
                    "valuesFilePath",
                    "values",
                    "namespace",
                    "version",
                ] {
                    if let Some(v) = r.get(key) {
                        kept.insert(key.into(), v.clone());
                    }
                }
                Value::Mapping(kept)
            })
            .collect();
        put(&mut new, HELM_RELEASES, Value::Sequence(releases));
    }
    if let Some(Value::Mapping(kubectl)) = get(old, &["deploy", "kubectl"]) {
        let mut paths = Vec::new();
        let mut parameters = false;
        for manifest in sequence_values(kubectl.get("manifests")) {
            paths.extend(sequence_values(manifest.get("paths")));
            parameters |= manifest.get("parameters").is_some();
        }
        if parameters {
            notes.push(Note {
                field: Some("deploy.kubectl.manifests".to_owned()),
                message: "manifest `parameters` have no equivalent after skaffold/v1alpha1: they are dropped, as Skaffold drops them; check the Kubernetes YAML".to_owned(),
            });
        }
        put(
            &mut new,
            &["deploy", "kubectl", "manifests"],
            Value::Sequence(paths),
        );
    }
    new
}

/// Calls `f` for each pipeline of a config: the top level, then each profile (matched by
/// index in `old` and `new`), with the path prefix naming it in messages.
fn each_pipeline(
    old: &Value,
    new: &mut Value,
    mut f: impl FnMut(&Value, &mut Value, &str) -> Result<(), UpgradeError>,
) -> Result<(), UpgradeError> {
    f(old, new, "")?;
    let count = match get(old, &["profiles"]) {
        Some(Value::Sequence(p)) => p.len(),
        _ => 0,
    };
    for i in 0..count {
        let Some(old_p) = get(old, &["profiles"]).and_then(|p| p.as_sequence()?.get(i)) else {
            continue;
        };
        let Some(new_p) = get_mut(new, &["profiles"]).and_then(|p| p.as_sequence_mut()?.get_mut(i))
        else {
            continue;
        };
        f(old_p, new_p, &format!("profiles[{i}]."))?;
    }
    Ok(())
}

fn get_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut current = value;
    for key in path {
        current = current.as_mapping_mut()?.get_mut(*key)?;
    }
    Some(current)
}

/// Where a pipeline lists its artifacts.
const ARTIFACTS: &[&str] = &["build", "artifacts"];

/// Where a pipeline lists its helm releases (before skaffold/v3).
const HELM_RELEASES: &[&str] = &["deploy", "helm", "releases"];

/// Calls `f` with each item of the sequence at `path` in `old_p` and, matched by index, the
/// same item in `new_p` (artifacts and releases keep their places through an upgrade).
fn for_each_item(
    old_p: &Value,
    new_p: &mut Value,
    path: &[&str],
    mut f: impl FnMut(usize, &Value, &mut Mapping),
) {
    let Some(Value::Sequence(old_items)) = get(old_p, path) else {
        return;
    };
    let Some(Value::Sequence(new_items)) = get_mut(new_p, path) else {
        return;
    };
    for (i, (old_item, new_item)) in old_items.iter().zip(new_items.iter_mut()).enumerate() {
        if let Value::Mapping(new_item) = new_item {
            f(i, old_item, new_item);
        }
    }
}

fn helm_values_file_path(
    old_p: &Value,
    new_p: &mut Value,
    prefix: &str,
    handled: &mut Vec<String>,
) {
    for_each_item(old_p, new_p, HELM_RELEASES, |i, old_r, new_r| {
        if let Some(path) = old_r.get("valuesFilePath") {
            handled.push(format!("{prefix}deploy.helm.releases[{i}].valuesFilePath"));
            if path.as_str().is_some_and(|p| !p.is_empty()) {
                new_r.insert("valuesFiles".into(), Value::Sequence(vec![path.clone()]));
            }
        }
    });
}
