//! Removing containers and networks: a run's own, leftovers of earlier runs, and `skiff delete`.

use super::*;

pub(super) fn report_deleted(reporter: &dyn Reporter, removed: &[ResourceRef]) {
    for resource in removed {
        let object = if resource.kind == "Container" {
            resource.name.clone()
        } else {
            resource.to_string()
        };
        reporter.report(Event::Deployed {
            object,
            action: "deleted".to_owned(),
        });
    }
}

/// Removes, for `skiff delete`, every container and network on the engine at `docker_host`
/// that carries `app.kubernetes.io/managed-by=skiff` — and `skaffold.dev/run-id=<run_id>` when
/// a run id is given. Containers are stopped with [`DEFAULT_STOP_GRACE`] first. Nothing
/// lacking these labels is touched, whatever its name.
///
/// Returns what was removed (kinds `Container` and `Network`).
pub async fn delete_labelled(
    docker_host: Option<&str>,
    run_id: Option<&str>,
) -> Result<Vec<ResourceRef>, DeployError> {
    let (docker, endpoint) = connect_engine(docker_host).await?;
    remove_labelled(&docker, &endpoint, run_id, DEFAULT_STOP_GRACE)
        .await
        .map_err(|(_, error)| error)
}

/// Removes, for `skiff delete`, the containers on the engine at `docker_host` that run one of
/// `images` (the artifact image names of `deploy.docker.images`, as in [`IMAGE_LABEL`]) and
/// carry skiff's labels, whatever their run; then the networks of those runs. Containers of
/// other projects' images, and anything without skiff's labels, are never touched.
///
/// Reports each removal as [`Event::Deployed`] (`deleted`), also those before an error, and
/// returns what was removed (kinds `Container` and `Network`).
pub async fn delete_labelled_images(
    docker_host: Option<&str>,
    images: &[String],
    reporter: &dyn Reporter,
) -> Result<Vec<ResourceRef>, DeployError> {
    let (docker, endpoint) = connect_engine(docker_host).await?;
    match remove_leftovers(&docker, &endpoint, images, None, DEFAULT_STOP_GRACE).await {
        Ok(removed) => {
            report_deleted(reporter, &removed);
            Ok(removed)
        }
        Err((removed, error)) => {
            report_deleted(reporter, &removed);
            Err(error)
        }
    }
}

/// Stops and removes skiff's containers running one of `images` whose run is not `keep_run`,
/// then the networks of their runs that no container uses anymore. On error, also says what
/// was removed before it.
pub(super) async fn remove_leftovers(
    docker: &Docker,
    endpoint: &str,
    images: &[String],
    keep_run: Option<&str>,
    grace: Duration,
) -> Result<Vec<ResourceRef>, (Vec<ResourceRef>, DeployError)> {
    let containers = skiffs_containers(docker, endpoint, None)
        .await
        .map_err(|error| (Vec::new(), error))?;
    let mut runs = BTreeSet::new();
    let containers: Vec<(String, String)> = containers
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.as_ref()?;
            let image = labels.get(IMAGE_LABEL)?;
            let run = labels.get(RUN_ID_LABEL)?;
            if !images.contains(image) || keep_run == Some(run.as_str()) {
                return None;
            }
            runs.insert(run.clone());
            id_and_name(c)
        })
        .collect();
    let mut removal = Removal::default();
    removal
        .containers(docker, endpoint, &containers, grace)
        .await;
    for run in &runs {
        // A network still in use serves a container of that run running another project's
        // image: it stays.
        removal.networks(docker, endpoint, Some(run), true).await;
    }
    removal.finish()
}

/// Stops and removes labelled containers, then labelled networks. On error, also says what
/// was removed before it.
pub(super) async fn remove_labelled(
    docker: &Docker,
    endpoint: &str,
    run_id: Option<&str>,
    grace: Duration,
) -> Result<Vec<ResourceRef>, (Vec<ResourceRef>, DeployError)> {
    let containers: Vec<(String, String)> = skiffs_containers(docker, endpoint, run_id)
        .await
        .map_err(|error| (Vec::new(), error))?
        .into_iter()
        .filter_map(id_and_name)
        .collect();
    let mut removal = Removal::default();
    removal
        .containers(docker, endpoint, &containers, grace)
        .await;
    removal.networks(docker, endpoint, run_id, false).await;
    removal.finish()
}

/// The engine's containers (running or not) that carry skiff's labels — of run `run_id`, or
/// of every run — and [`IMAGE_LABEL`]. The engine filters by label; each is checked again
/// rather than trusting a filter.
pub(super) async fn skiffs_containers(
    docker: &Docker,
    endpoint: &str,
    run_id: Option<&str>,
) -> Result<Vec<bollard::models::ContainerSummary>, DeployError> {
    let mut labels = label_filters(run_id);
    labels.push(IMAGE_LABEL.to_owned());
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..Default::default()
        }))
        .await
        .map_err(|e| engine_error(endpoint, "list skiff's containers".to_owned(), &e))?;
    Ok(containers
        .into_iter()
        .filter(|c| is_skiffs_container(c.labels.as_ref(), run_id))
        .collect())
}

/// A listed container's ID and name (its ID when it has no name).
pub(super) fn id_and_name(
    container: bollard::models::ContainerSummary,
) -> Option<(String, String)> {
    let id = container.id?;
    let name = container
        .names
        .and_then(|names| names.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.clone());
    Some((id, name))
}

/// What a cleanup removed so far, and its first error: a cleanup goes on past errors.
#[derive(Default)]
pub(super) struct Removal {
    pub(super) removed: Vec<ResourceRef>,
    pub(super) first_error: Option<DeployError>,
}

impl Removal {
    /// Stops `containers` (ID, name) concurrently, then removes each.
    pub(super) async fn containers(
        &mut self,
        docker: &Docker,
        endpoint: &str,
        containers: &[(String, String)],
        grace: Duration,
    ) {
        let stops = containers
            .iter()
            .map(|(id, name)| stop_container(docker, endpoint, id, name, grace));
        for (result, (id, name)) in join_all(stops).await.into_iter().zip(containers) {
            // A container that cannot be stopped is still removed, by force.
            drop(result);
            match remove_container(docker, endpoint, id, name).await {
                Ok(()) => self.removed.push(container_ref(name)),
                Err(e) => {
                    self.first_error.get_or_insert(e);
                }
            }
        }
    }

    /// Removes skiff's networks of run `run_id` (of every run: `None`); with `in_use_stays`, a
    /// network the engine refuses to remove because a container uses it is left without error.
    pub(super) async fn networks(
        &mut self,
        docker: &Docker,
        endpoint: &str,
        run_id: Option<&str>,
        in_use_stays: bool,
    ) {
        let filters = HashMap::from([("label".to_owned(), label_filters(run_id))]);
        let networks = match docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(networks) => networks,
            Err(e) => {
                self.first_error.get_or_insert(engine_error(
                    endpoint,
                    "list skiff's networks".to_owned(),
                    &e,
                ));
                return;
            }
        };
        for network in networks {
            if !is_skiffs(network.labels.as_ref(), run_id) {
                continue;
            }
            let (Some(id), Some(name)) = (network.id, network.name) else {
                continue;
            };
            match docker.remove_network(&id).await {
                Ok(())
                | Err(EngineError::DockerResponseServerError {
                    status_code: 404, ..
                }) => self.removed.push(ResourceRef {
                    api_version: DOCKER_API_VERSION.to_owned(),
                    kind: "Network".to_owned(),
                    namespace: None,
                    name,
                }),
                Err(EngineError::DockerResponseServerError {
                    status_code: 403 | 409,
                    ..
                }) if in_use_stays => {}
                Err(e) => {
                    self.first_error.get_or_insert(engine_error(
                        endpoint,
                        format!("remove network {name}"),
                        &e,
                    ));
                }
            }
        }
    }

    pub(super) fn finish(self) -> Result<Vec<ResourceRef>, (Vec<ResourceRef>, DeployError)> {
        match self.first_error {
            Some(error) => Err((self.removed, error)),
            None => Ok(self.removed),
        }
    }
}

/// Stops a container: `SIGTERM`, `grace`, then `SIGKILL`. A container that is gone or already
/// stopped is fine.
pub(super) async fn stop_container(
    docker: &Docker,
    endpoint: &str,
    id: &str,
    name: &str,
    grace: Duration,
) -> Result<(), DeployError> {
    let options = StopContainerOptions {
        t: Some(grace_seconds(grace)),
        signal: None,
    };
    match docker.stop_container(id, Some(options)).await {
        Ok(())
        | Err(EngineError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(stop) => match docker
            .kill_container(id, Some(KillContainerOptions::default()))
            .await
        {
            Ok(())
            | Err(EngineError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(_) => Err(engine_error(
                endpoint,
                format!("stop container {name}"),
                &stop,
            )),
        },
    }
}

/// Removes a container with its anonymous volumes. A container that is gone is fine.
pub(super) async fn remove_container(
    docker: &Docker,
    endpoint: &str,
    id: &str,
    name: &str,
) -> Result<(), DeployError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(())
        | Err(EngineError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // Already being removed.
        Err(EngineError::DockerResponseServerError {
            status_code: 409,
            message,
        }) if message.contains("already in progress") => Ok(()),
        Err(e) => Err(engine_error(
            endpoint,
            format!("remove container {name}"),
            &e,
        )),
    }
}
