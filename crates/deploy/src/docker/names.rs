//! Container names and the labels that mark skiff's containers.

use super::*;

/// The `docker stop -t` seconds for a grace period, rounded up.
pub(super) fn grace_seconds(grace: Duration) -> i32 {
    let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

pub(super) fn container_ref(name: &str) -> ResourceRef {
    ResourceRef {
        api_version: DOCKER_API_VERSION.to_owned(),
        kind: "Container".to_owned(),
        namespace: None,
        name: name.to_owned(),
    }
}

pub(super) fn run_labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (RUN_ID_LABEL.to_owned(), run_id.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ])
}

/// The engine's `label=` filters selecting skiff's objects (of one run).
pub(super) fn label_filters(run_id: Option<&str>) -> Vec<String> {
    let mut filters = vec![format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")];
    if let Some(run_id) = run_id {
        filters.push(format!("{RUN_ID_LABEL}={run_id}"));
    }
    filters
}

/// Whether `labels` mark an object as skiff's (and of run `run_id`, when given).
pub(super) fn is_skiffs(labels: Option<&HashMap<String, String>>, run_id: Option<&str>) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && run_id.is_none_or(|id| labels.get(RUN_ID_LABEL).map(String::as_str) == Some(id))
}

/// Whether `labels` mark a container this module started: skiff's labels (of run `run_id`)
/// and [`IMAGE_LABEL`]. Kubernetes pod containers on the same engine (dockershim copies a
/// pod's labels, skiff's among them, onto its sandbox container) are never selected.
pub(super) fn is_skiffs_container(
    labels: Option<&HashMap<String, String>>,
    run_id: Option<&str>,
) -> bool {
    is_skiffs(labels, run_id)
        && labels.is_some_and(|l| {
            l.contains_key(IMAGE_LABEL) && !l.keys().any(|k| k.starts_with("io.kubernetes."))
        })
}

/// The last path component of an image name, without tag or digest.
pub(super) fn image_basename(image_name: &str) -> &str {
    let name = image_name.split('@').next().unwrap_or(image_name);
    let base = name.rsplit('/').next().unwrap_or(name);
    base.split(':').next().unwrap_or(base)
}

/// Lower-case, with characters Docker names cannot hold replaced by `-`, runs of `-` collapsed
/// and leading and trailing punctuation trimmed.
pub(super) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

pub(super) fn container_name_for(short_name: &str, run_id: &str, generation: u64) -> String {
    let run: String = sanitize(run_id)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let short_name = if short_name.is_empty() {
        "app"
    } else {
        short_name
    };
    format!("skiff-{short_name}-{run}-{generation}")
}

/// Image name → short name: the sanitized basename, or the sanitized whole name when two
/// images share a basename.
pub(super) fn short_names(images: &[String]) -> BTreeMap<String, String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for image in images {
        *counts.entry(sanitize(image_basename(image))).or_default() += 1;
    }
    images
        .iter()
        .map(|image| {
            let base = sanitize(image_basename(image));
            let short = if counts.get(&base).copied().unwrap_or(0) > 1 {
                sanitize(&image.replace(['/', ':'], "-"))
            } else {
                base
            };
            (image.clone(), short)
        })
        .collect()
}
