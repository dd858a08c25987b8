//! The HTTP control API (`--rpc-http-port`), shaped after Skaffold's v2 HTTP endpoints, and
//! Enter on standard input as a manual trigger.
//!
//! - `GET /v2/events`: every event so far, then each new one as it happens, as JSON lines.
//! - `GET /v2/state`: the loop's state, aggregated from the events.
//! - `POST /v2/execute` with `{"build": true, "sync": true, "deploy": true}`: run those phases
//!   over the changes since the last iteration.
//! - `PUT /v2/auto/build|sync|deploy` with `{"enabled": false}`: switch a phase's automatic
//!   run (also at Skaffold's `/v2/build|sync|deploy/auto_execute`).

use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use skiff_runner::dev::{DevControl, ExecuteRequest, Phase};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventHub;

type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// What the API serves from.
#[derive(Debug, Clone)]
pub struct Api {
    /// Events and state.
    pub hub: Arc<EventHub>,
    /// The loop's control handle; `None` for `skiff run` (no triggers).
    pub control: Option<DevControl>,
}

/// Listen on `127.0.0.1:port` (0: any free port) and serve the API in the background until
/// the runtime stops. Returns the address listened on.
pub async fn serve(port: u16, api: Api) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot serve the HTTP API on 127.0.0.1:{port} (--rpc-http-port); choose a free port")
        })?;
    let address = listener
        .local_addr()
        .context("the API listener has no address")?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, api.clone()));
                // A client going away mid-stream is normal.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    json_response(status, body)
}

/// `POST /v2/execute`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExecuteBody {
    build: bool,
    sync: bool,
    deploy: bool,
}

/// `PUT /v2/auto/…`'s body.
#[derive(Debug, Deserialize)]
struct AutoBody {
    enabled: bool,
}

async fn body<T: serde::de::DeserializeOwned + Default>(
    request: Request<Incoming>,
    empty_ok: bool,
) -> Result<T, Response<Body>> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) && empty_ok {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

impl Default for AutoBody {
    fn default() -> Self {
        AutoBody { enabled: true }
    }
}

async fn handle(request: Request<Incoming>, api: Api) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let response = match (method, path.as_str()) {
        (Method::GET, "/v2/events") => events(&api),
        (Method::GET, "/v2/state") => {
            let mut state = api.hub.state();
            if let Some(control) = &api.control {
                state.build_state.auto_trigger = control.auto(Phase::Build);
                state.file_sync_state.auto_trigger = control.auto(Phase::Sync);
                state.deploy_state.auto_trigger = control.auto(Phase::Deploy);
            }
            match serde_json::to_string(&state) {
                Ok(text) => json_response(StatusCode::OK, text),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::POST, "/v2/execute") => match &api.control {
            None => error(StatusCode::CONFLICT, "only `skiff dev` takes triggers"),
            Some(control) => match body::<ExecuteBody>(request, true).await {
                Ok(body) => {
                    control.execute(ExecuteRequest {
                        build: body.build,
                        sync: body.sync,
                        deploy: body.deploy,
                    });
                    json_response(StatusCode::OK, "{}".to_owned())
                }
                Err(response) => response,
            },
        },
        (Method::PUT, path) => match (auto_phase(path), &api.control) {
            (None, _) => error(StatusCode::NOT_FOUND, "no such endpoint"),
            (Some(_), None) => error(StatusCode::CONFLICT, "only `skiff dev` takes triggers"),
            (Some(phase), Some(control)) => match body::<AutoBody>(request, false).await {
                Ok(body) => {
                    control.set_auto(phase, body.enabled);
                    json_response(StatusCode::OK, "{}".to_owned())
                }
                Err(response) => response,
            },
        },
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint; try GET /v2/events, GET /v2/state, POST /v2/execute, PUT /v2/auto/build",
        ),
    };
    Ok(response)
}

/// `/v2/auto/build`, `/v2/build/auto_execute` → the phase.
fn auto_phase(path: &str) -> Option<Phase> {
    let name = path
        .strip_prefix("/v2/auto/")
        .or_else(|| path.strip_prefix("/v2/")?.strip_suffix("/auto_execute"))?;
    match name {
        "build" => Some(Phase::Build),
        "sync" => Some(Phase::Sync),
        "deploy" => Some(Phase::Deploy),
        _ => None,
    }
}

/// The history, then each new event, one JSON line each, until the client goes away.
fn events(api: &Api) -> Response<Body> {
    let (history, live) = api.hub.subscribe();
    let following = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            match live.recv().await {
                Ok(line) => return Some((line, live)),
                // A slow reader misses some events rather than holding the loop back.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::stream::iter(history)
        .chain(following)
        .map(|line| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{line}\n")))));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// With `--trigger=manual`: each line on standard input (Enter on a terminal) runs an
/// iteration over the changes so far. Reads on a plain thread, so that it never holds the
/// runtime's shutdown up.
pub fn enter_triggers(control: DevControl) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                return;
            }
            control.execute(ExecuteRequest::all());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_paths() {
        assert_eq!(auto_phase("/v2/auto/build"), Some(Phase::Build));
        assert_eq!(auto_phase("/v2/sync/auto_execute"), Some(Phase::Sync));
        assert_eq!(auto_phase("/v2/auto/deploy"), Some(Phase::Deploy));
        assert_eq!(auto_phase("/v2/auto/test"), None);
        assert_eq!(auto_phase("/v2/state"), None);
    }
}
