//! Builds artifacts in dependency order, independent ones concurrently.
//!
//! An artifact starts once every artifact it `requires` is built; at most `concurrency` builds
//! run at once. A failure stops new builds from starting (those already running finish), and
//! what was built stays built: the caller gets every finished image with the first error.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use skiff_build::ArtifactSpec;
use skiff_types::image::BuiltImage;

use crate::RunnerError;

/// The order builds may start in: each artifact after its requirements.
pub fn build_order(artifacts: &[ArtifactSpec]) -> Result<Vec<usize>, RunnerError> {
    let index: BTreeMap<&str, usize> = artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.image.as_str(), i))
        .collect();
    for artifact in artifacts {
        for requirement in &artifact.requires {
            if !index.contains_key(requirement.image.as_str()) {
                return Err(RunnerError::UnknownRequirement {
                    image: artifact.image.clone(),
                    missing: requirement.image.clone(),
                });
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        i: usize,
        artifacts: &[ArtifactSpec],
        index: &BTreeMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), RunnerError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut chain: Vec<String> = stack[start..]
                    .iter()
                    .map(|&s| artifacts[s].image.clone())
                    .collect();
                chain.push(artifacts[i].image.clone());
                return Err(RunnerError::Cycle { chain });
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        stack.push(i);
        for requirement in &artifacts[i].requires {
            if let Some(&j) = index.get(requirement.image.as_str()) {
                visit(j, artifacts, index, marks, stack, order)?;
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; artifacts.len()];
    let mut order = Vec::with_capacity(artifacts.len());
    for i in 0..artifacts.len() {
        visit(
            i,
            artifacts,
            &index,
            &mut marks,
            &mut Vec::new(),
            &mut order,
        )?;
    }
    Ok(order)
}

/// The artifacts and what each `requires`: every walk of those edges (build order, what a
/// selection needs, what depends on a change) in one place.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactGraph<'a> {
    artifacts: &'a [ArtifactSpec],
}

impl<'a> ArtifactGraph<'a> {
    /// The graph of `artifacts` (configuration order).
    pub fn new(artifacts: &'a [ArtifactSpec]) -> ArtifactGraph<'a> {
        ArtifactGraph { artifacts }
    }

    /// The index of the artifact building `image`.
    pub fn position(&self, image: &str) -> Option<usize> {
        self.artifacts.iter().position(|a| a.image == image)
    }

    /// The order builds may start in: each artifact after its requirements. Fails on a
    /// requirement no artifact builds, or a cycle.
    pub fn order(&self) -> Result<Vec<usize>, RunnerError> {
        build_order(self.artifacts)
    }

    /// `roots` and everything they require, directly or not.
    pub fn closure(&self, roots: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
        let mut wanted = BTreeSet::new();
        let mut stack: Vec<usize> = roots.into_iter().collect();
        while let Some(i) = stack.pop() {
            if wanted.insert(i) {
                stack.extend(
                    self.artifacts[i]
                        .requires
                        .iter()
                        .filter_map(|r| self.position(&r.image)),
                );
            }
        }
        wanted
    }

    /// Whether the artifact at `index` requires `image`, directly or not.
    pub fn requires(&self, index: usize, image: &str) -> bool {
        self.closure([index])
            .into_iter()
            .any(|i| self.artifacts[i].requires.iter().any(|r| r.image == image))
    }

    /// `images` and every artifact that requires one of them, directly or not, in
    /// configuration order.
    pub fn with_dependents(&self, images: &BTreeSet<String>) -> Vec<String> {
        let mut wanted: BTreeSet<&str> = images.iter().map(String::as_str).collect();
        loop {
            let before = wanted.len();
            for artifact in self.artifacts {
                if artifact
                    .requires
                    .iter()
                    .any(|r| wanted.contains(r.image.as_str()))
                {
                    wanted.insert(&artifact.image);
                }
            }
            if wanted.len() == before {
                break;
            }
        }
        self.artifacts
            .iter()
            .filter(|a| wanted.contains(a.image.as_str()))
            .map(|a| a.image.clone())
            .collect()
    }

    /// The artifacts that require `image` directly.
    pub fn required_by(&self, image: &str) -> Vec<String> {
        self.artifacts
            .iter()
            .filter(|a| a.requires.iter().any(|r| r.image == image))
            .map(|a| a.image.clone())
            .collect()
    }
}

/// The outcome of a scheduled run: what was built (in completion order) and the first error.
#[derive(Debug)]
pub struct Scheduled<E> {
    /// Built images, by artifact index.
    pub built: BTreeMap<usize, BuiltImage>,
    /// The first failure, if any; later artifacts were not started.
    pub error: Option<E>,
}

/// Run `job` for every artifact, each after its requirements, at most `concurrency` at once.
/// `job` receives the artifact's index and the built references of its requirements, keyed
/// by alias (requirements without an alias are only ordered).
pub async fn run<E, F, Fut>(
    artifacts: &[ArtifactSpec],
    concurrency: usize,
    job: F,
) -> Result<Scheduled<E>, RunnerError>
where
    F: Fn(usize, BTreeMap<String, String>) -> Fut,
    Fut: Future<Output = Result<BuiltImage, E>>,
{
    build_order(artifacts)?;
    let index: BTreeMap<&str, usize> = artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.image.as_str(), i))
        .collect();
    let requirements: Vec<BTreeSet<usize>> = artifacts
        .iter()
        .map(|a| {
            a.requires
                .iter()
                .filter_map(|r| index.get(r.image.as_str()).copied())
                .collect()
        })
        .collect();
    let limit = concurrency.max(1);
    let job = Arc::new(job);
    let mut built: BTreeMap<usize, BuiltImage> = BTreeMap::new();
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let mut running = FuturesUnordered::new();
    let mut error = None;
    loop {
        if error.is_none() {
            let ready: Vec<usize> = (0..artifacts.len())
                .filter(|i| {
                    !started.contains(i) && requirements[*i].iter().all(|r| built.contains_key(r))
                })
                .collect();
            for i in ready {
                if running.len() >= limit {
                    break;
                }
                started.insert(i);
                let required = artifacts[i].requirement_args(|image| {
                    let j = index.get(image)?;
                    Some(built.get(j)?.reference.to_string())
                });
                let job = Arc::clone(&job);
                running.push(async move { (i, job(i, required).await) });
            }
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(image) => {
                built.insert(i, image);
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    Ok(Scheduled { built, error })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_build::artifact::{BuilderSpec, Requirement};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn artifact(image: &str, requires: &[(&str, Option<&str>)]) -> ArtifactSpec {
        ArtifactSpec {
            image: image.into(),
            context: "/ctx".into(),
            builder: BuilderSpec::Unsupported {
                kind: "test".into(),
            },
            requires: requires
                .iter()
                .map(|(i, a)| Requirement {
                    image: (*i).into(),
                    alias: a.map(Into::into),
                })
                .collect(),
            platforms: vec![],
        }
    }

    fn image(name: &str) -> BuiltImage {
        BuiltImage {
            image_name: name.into(),
            reference: format!("{name}:t").parse().unwrap(),
            image_id: None,
        }
    }

    #[test]
    fn cycles_are_named() {
        let artifacts = [
            artifact("a", &[("b", None)]),
            artifact("b", &[("c", None)]),
            artifact("c", &[("a", None)]),
        ];
        assert_eq!(
            build_order(&artifacts).unwrap_err().to_string(),
            "artifacts require each other in a cycle: a → b → c → a"
        );
        let artifacts = [artifact("a", &[("ghost", None)])];
        assert!(matches!(
            build_order(&artifacts),
            Err(RunnerError::UnknownRequirement { .. })
        ));
    }

    #[tokio::test]
    async fn requirements_first_with_aliases_and_bounded_concurrency() {
        let artifacts = [
            artifact("app", &[("base", Some("BASE")), ("tools", None)]),
            artifact("base", &[]),
            artifact("tools", &[]),
            artifact("other", &[]),
        ];
        let log = Mutex::new(Vec::new());
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let outcome = run(&artifacts, 2, |i, required| {
            let log = &log;
            let running = &running;
            let peak = &peak;
            let name = artifacts[i].image.clone();
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                log.lock()
                    .unwrap()
                    .push(format!("start {name} {required:?}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                log.lock().unwrap().push(format!("end {name}"));
                Ok::<_, String>(image(&name))
            }
        })
        .await
        .unwrap();
        assert!(outcome.error.is_none());
        assert_eq!(outcome.built.len(), 4);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        let log = log.into_inner().unwrap();
        let position = |entry: &str| log.iter().position(|l| l == entry).unwrap();
        assert!(position("end base") < position("start app {\"BASE\": \"base:t\"}"));
        assert!(position("end tools") < position("start app {\"BASE\": \"base:t\"}"));
    }

    #[tokio::test]
    async fn a_failure_stops_dependents_and_keeps_what_was_built() {
        let artifacts = [
            artifact("base", &[]),
            artifact("app", &[("base", None)]),
            artifact("ok", &[]),
        ];
        let outcome = run(&artifacts, 1, |i, _| {
            let name = artifacts[i].image.clone();
            async move {
                if name == "base" {
                    Err(format!("{name} broke"))
                } else {
                    Ok(image(&name))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome.error.as_deref(), Some("base broke"));
        assert!(!outcome.built.values().any(|b| b.image_name == "app"));
    }

    #[test]
    fn the_graph_walks_requirements_both_ways() {
        let artifacts = [
            artifact("web", &[("base", None)]),
            artifact("base", &[("tools", None)]),
            artifact("tools", &[]),
            artifact("other", &[]),
        ];
        let graph = ArtifactGraph::new(&artifacts);
        assert_eq!(graph.order().unwrap(), [2, 1, 0, 3]);
        assert_eq!(
            graph.closure([0]).into_iter().collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(graph.requires(0, "tools"));
        assert!(!graph.requires(2, "web"));
        assert_eq!(
            graph.with_dependents(&BTreeSet::from(["tools".to_owned()])),
            ["web", "base", "tools"]
        );
        assert_eq!(graph.required_by("base"), ["web"]);
        assert_eq!(graph.position("other"), Some(3));
    }
}
