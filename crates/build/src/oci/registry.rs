//! A small client for the OCI distribution API: what pushing and pulling images needs.
//!
//! Blobs are checked with `HEAD` before upload and skipped when the registry has them, mounted
//! from another repository of the same registry when their origin is known, else uploaded in
//! one `POST` + `PUT` (monolithic upload). Authentication follows the registry's
//! `WWW-Authenticate` challenge: anonymous first, then `Basic` with the credentials of the Docker
//! config (including credential helpers), or a `Bearer` token fetched from the challenge's realm
//! (anonymously or with those credentials) and cached per repository scope.
//!
//! Plain HTTP is used only for loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) and
//! those listed in `insecureRegistries`; every other registry is reached over TLS (rustls with
//! the `ring` provider and the system's roots).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use skiff_types::image::ImageRef;

use super::image::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::layer::sha256_digest;
use crate::BuildError;
use crate::credentials::{Credentials, DockerConfig, normalize_registry};

/// Manifest media types asked for when pulling.
const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The limit for requests that carry no blob (checks, upload starts, manifests, tokens): a
/// registry that accepts connections but has stopped answering fails the push within it, while
/// blob uploads and downloads keep the client's long limit.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A repository in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// The registry host as written (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// The repository path in it (`team/app`, `library/alpine`).
    pub name: String,
}

impl Repository {
    /// The repository `reference` names (Docker Hub when it names no registry).
    pub fn of(reference: &ImageRef) -> Repository {
        match reference.registry() {
            Some(registry) => Repository {
                registry: registry.to_owned(),
                name: reference.repository()[registry.len() + 1..].to_owned(),
            },
            None => {
                let name = reference.repository();
                Repository {
                    registry: "docker.io".to_owned(),
                    name: if name.contains('/') {
                        name.to_owned()
                    } else {
                        format!("library/{name}")
                    },
                }
            }
        }
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A fetched manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` the registry sent.
    pub media_type: String,
    /// The document.
    pub bytes: Vec<u8>,
    /// Its digest.
    pub digest: String,
}

/// What uploading one blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it already.
    Existed,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// A distribution API client; cheap to share, caches tokens.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: Vec<String>,
    config: Option<Arc<DockerConfig>>,
    /// `Authorization` header values by (registry, scope).
    auth: Arc<Mutex<BTreeMap<(String, String), String>>>,
    /// [`SMALL_REQUEST_TIMEOUT`], shorter in tests.
    small_timeout: Duration,
}

/// The scope of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

impl RegistryClient {
    /// A client that reaches `insecure_registries` (and loopback registries) over plain HTTP
    /// and authenticates with the credentials of `config`.
    pub fn new(
        insecure_registries: &[String],
        config: Option<Arc<DockerConfig>>,
    ) -> Result<RegistryClient, BuildError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| BuildError::Registry {
                registry: "-".into(),
                action: "setting up the HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(RegistryClient {
            http,
            insecure: insecure_registries
                .iter()
                .map(|r| normalize_registry(r))
                .collect(),
            config,
            auth: Arc::default(),
            small_timeout: SMALL_REQUEST_TIMEOUT,
        })
    }

    /// The same client with another limit for requests that carry no blob.
    #[cfg(test)]
    pub(crate) fn with_small_request_timeout(mut self, timeout: Duration) -> RegistryClient {
        self.small_timeout = timeout;
        self
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.contains(&normalize_registry(registry))
    }

    fn base_url(&self, registry: &str) -> String {
        if registry == "docker.io" || registry == "index.docker.io" {
            return "https://registry-1.docker.io".into();
        }
        let scheme = if self.is_plain_http(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}")
    }

    /// Whether the repository holds the blob `digest`.
    pub async fn blob_exists(&self, repo: &Repository, digest: &str) -> Result<bool, BuildError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(&repo.registry),
            repo.name
        );
        let action = format!("checking blob {digest} in {}", repo.name);
        let response = self
            .send(repo, Access::Push, &action, || {
                self.http.head(&url).timeout(self.small_timeout)
            })
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(status_error(repo, &action, status, response).await),
        }
    }

    /// Pushes one blob unless the repository has it; mounts it from `mount_from` (another
    /// repository of the same registry) when given and the registry agrees. `data` is called
    /// only when the blob must be uploaded.
    pub async fn push_blob<F, Fut>(
        &self,
        repo: &Repository,
        digest: &str,
        mount_from: Option<&str>,
        data: F,
    ) -> Result<BlobPush, BuildError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<Vec<u8>>, BuildError>>,
    {
        if self.blob_exists(repo, digest).await? {
            return Ok(BlobPush::Existed);
        }
        let base = self.base_url(&repo.registry);
        let action = format!("starting the upload of {digest} to {}", repo.name);
        let mut url = format!("{base}/v2/{}/blobs/uploads/", repo.name);
        if let Some(from) = mount_from.filter(|f| *f != repo.name) {
            url.push_str(&format!("?mount={digest}&from={from}"));
        }
        let response = self
            .send(repo, Access::Push, &action, || {
                self.http.post(&url).timeout(self.small_timeout)
            })
            .await?;
        let location = match response.status() {
            StatusCode::CREATED => return Ok(BlobPush::Mounted),
            StatusCode::ACCEPTED => {
                location(&base, response.headers()).ok_or_else(|| BuildError::Registry {
                    registry: repo.registry.clone(),
                    action: action.clone(),
                    reason: "the registry answered 202 without a Location header".into(),
                })?
            }
            status => return Err(status_error(repo, &action, status, response).await),
        };
        let bytes = data().await?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={digest}");
        let action = format!(
            "uploading blob {digest} ({} bytes) to {}",
            bytes.len(),
            repo.name
        );
        let response = self
            .send(repo, Access::Push, &action, || {
                self.http
                    .put(&put_url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.as_ref().clone())
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(BlobPush::Uploaded),
            status => Err(status_error(repo, &action, status, response).await),
        }
    }

    /// Stores `bytes` (of `media_type`) as the manifest `reference` (a tag or digest) and
    /// returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, BuildError> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            self.base_url(&repo.registry),
            repo.name
        );
        let action = format!("storing the manifest {}:{reference}", repo.name);
        let response = self
            .send(repo, Access::Push, &action, || {
                self.http
                    .put(&url)
                    .timeout(self.small_timeout)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| sha256_digest(bytes))),
            status => Err(status_error(repo, &action, status, response).await),
        }
    }

    /// Fetches the manifest or index `reference` (a tag or digest).
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<FetchedManifest, BuildError> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            self.base_url(&repo.registry),
            repo.name
        );
        let action = format!("fetching the manifest {}:{reference}", repo.name);
        let response = self
            .send(repo, Access::Pull, &action, || {
                self.http
                    .get(&url)
                    .timeout(self.small_timeout)
                    .header(ACCEPT, ACCEPTED_MANIFESTS)
            })
            .await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            return Err(status_error(repo, &action, status, response).await);
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_owned());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(repo, &action, &e))?
            .to_vec();
        let digest = sha256_digest(&bytes);
        let media_type = if media_type == "application/json" || media_type.is_empty() {
            sniff_media_type(&bytes)
        } else {
            media_type
        };
        Ok(FetchedManifest {
            media_type,
            bytes,
            digest,
        })
    }

    /// Fetches the blob `digest` and checks it.
    pub async fn get_blob(&self, repo: &Repository, digest: &str) -> Result<Vec<u8>, BuildError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(&repo.registry),
            repo.name
        );
        let action = format!("fetching blob {digest} from {}", repo.name);
        let response = self
            .send(repo, Access::Pull, &action, || self.http.get(&url))
            .await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            return Err(status_error(repo, &action, status, response).await);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(repo, &action, &e))?
            .to_vec();
        if sha256_digest(&bytes) != digest {
            return Err(BuildError::Registry {
                registry: repo.registry.clone(),
                action,
                reason: "the content does not match its digest".into(),
            });
        }
        Ok(bytes)
    }

    /// Sends a request, answering one authentication challenge.
    async fn send(
        &self,
        repo: &Repository,
        access: Access,
        action: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BuildError> {
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", repo.name),
            Access::Push => format!("repository:{}:pull,push", repo.name),
        };
        let key = (repo.registry.clone(), scope.clone());
        let cached = self.auth.lock().ok().and_then(|m| m.get(&key).cloned());
        let with_auth = |header: Option<&String>| {
            let builder = request();
            match header {
                Some(value) => builder.header(AUTHORIZATION, value),
                None => builder,
            }
        };
        let response = with_auth(cached.as_ref())
            .send()
            .await
            .map_err(|e| transport(repo, action, &e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let header = self.authorize(repo, &challenge, &scope, action).await?;
        if let Ok(mut map) = self.auth.lock() {
            map.insert(key, header.clone());
        }
        let response = with_auth(Some(&header))
            .send()
            .await
            .map_err(|e| transport(repo, action, &e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(BuildError::Registry {
                registry: repo.registry.clone(),
                action: action.to_owned(),
                reason: self.refused_credentials(&repo.registry),
            });
        }
        Ok(response)
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, BuildError> {
        match &self.config {
            Some(config) => config.credentials_for(registry),
            None => Ok(None),
        }
    }

    fn refused_credentials(&self, registry: &str) -> String {
        match self.credentials(registry) {
            Ok(Some(credentials)) => format!(
                "the registry refused the credentials of user {:?} (from the Docker config); check them with `docker login {registry}`",
                credentials.username.unwrap_or_default()
            ),
            _ => format!(
                "the registry requires authentication and the Docker config has no credentials for {registry}; run `docker login {registry}`"
            ),
        }
    }

    /// The `Authorization` value answering `challenge`.
    async fn authorize(
        &self,
        repo: &Repository,
        challenge: &str,
        scope: &str,
        action: &str,
    ) -> Result<String, BuildError> {
        let registry = repo.registry.as_str();
        let credentials = {
            let config = self.config.clone();
            let registry = registry.to_owned();
            tokio::task::spawn_blocking(move || match config {
                Some(config) => config.credentials_for(&registry),
                None => Ok(None),
            })
            .await
            .map_err(|e| BuildError::Registry {
                registry: repo.registry.clone(),
                action: action.to_owned(),
                reason: format!("looking up credentials failed: {e}"),
            })??
        };
        let (scheme, params) = parse_challenge(challenge);
        let fail = |reason: String| BuildError::Registry {
            registry: registry.to_owned(),
            action: action.to_owned(),
            reason,
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = credentials.as_ref().and_then(basic_pair) else {
                return Err(fail(self.refused_credentials(registry)));
            };
            return Ok(basic_header(&user, &password));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(fail(format!(
                "the registry asks for `{challenge}` authentication, which skiff does not speak (Basic and Bearer only)"
            )));
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| fail(format!("the Bearer challenge `{challenge}` has no realm")))?;
        let mut token_request = self.http.get(realm.as_str()).timeout(self.small_timeout);
        let mut query: Vec<(&str, String)> = vec![("scope", scope.to_owned())];
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        if let Some(credentials) = &credentials {
            if let Some((user, password)) = basic_pair(credentials) {
                token_request = token_request.header(AUTHORIZATION, basic_header(&user, &password));
            }
        }
        let response = token_request.query(&query).send().await.map_err(|e| {
            transport(
                repo,
                &format!("{action} (getting a token from {realm})"),
                &e,
            )
        })?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "the token service {realm} answered {}; {}",
                response.status(),
                self.refused_credentials(registry)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = response
            .json_body()
            .await
            .map_err(|e| fail(format!("the token service {realm} sent no token: {e}")))?;
        let token = token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(format!("the token service {realm} sent an empty token")))?;
        Ok(format!("Bearer {token}"))
    }
}

/// JSON bodies without reqwest's `json` feature.
trait JsonBody {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> Result<T, String>;
}

impl JsonBody for reqwest::Response {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        let bytes = self.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

fn basic_pair(credentials: &Credentials) -> Option<(String, String)> {
    match (
        &credentials.username,
        &credentials.password,
        &credentials.identity_token,
    ) {
        (Some(user), Some(password), _) => Some((user.clone(), password.clone())),
        (_, _, Some(token)) => Some(("<token>".to_owned(), token.clone())),
        _ => None,
    }
}

fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `Bearer realm="…",service="…"` → ("Bearer", {realm, service}).
fn parse_challenge(challenge: &str) -> (String, BTreeMap<String, String>) {
    let challenge = challenge.trim();
    let (scheme, rest) = challenge.split_once(' ').unwrap_or((challenge, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    (scheme.to_owned(), params)
}

fn location(base: &str, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LOCATION)?.to_str().ok()?;
    Some(
        if value.starts_with("http://") || value.starts_with("https://") {
            value.to_owned()
        } else {
            format!("{base}{value}")
        },
    )
}

/// Whether `registry` (`host[:port]`) is on loopback.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn sniff_media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(t),
            ..
        }) => t,
        Ok(Probe {
            manifests: Some(_), ..
        }) => INDEX_MEDIA_TYPE.to_owned(),
        _ => MANIFEST_MEDIA_TYPE.to_owned(),
    }
}

fn transport(repo: &Repository, action: &str, error: &reqwest::Error) -> BuildError {
    let mut reason = error.to_string();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        reason.push_str(&format!(": {inner}"));
        causes.push(inner.to_string());
        source = inner.source();
    }
    if error.is_connect() {
        // reqwest's own words repeat the URL and say "client error (Connect)"; the causes
        // under them ("tcp connect error: Connection refused (os error 111)") are what matter.
        causes.retain(|c| c != "client error (Connect)");
        let detail = if causes.is_empty() {
            reason
        } else {
            causes.join(": ")
        };
        return BuildError::RegistryUnreachable {
            registry: repo.registry.clone(),
            action: action.to_owned(),
            cause: format!("cannot connect ({detail})"),
        };
    }
    if error.is_timeout() {
        return BuildError::RegistryUnreachable {
            registry: repo.registry.clone(),
            action: action.to_owned(),
            cause: format!("the registry did not answer in time ({reason})"),
        };
    }
    BuildError::Registry {
        registry: repo.registry.clone(),
        action: action.to_owned(),
        reason,
    }
}

async fn status_error(
    repo: &Repository,
    action: &str,
    status: StatusCode,
    response: reqwest::Response,
) -> BuildError {
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("errors")?.as_array().map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                            e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    let hint = match status {
        StatusCode::FORBIDDEN => "; the credentials lack permission for this repository",
        StatusCode::NOT_FOUND => "; check the image name and tag",
        StatusCode::METHOD_NOT_ALLOWED => "; the registry does not accept pushes (read-only?)",
        _ => "",
    };
    BuildError::Registry {
        registry: repo.registry.clone(),
        action: action.to_owned(),
        reason: format!(
            "HTTP {status}{}{hint}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.trim())
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["realm"], "https://auth.example/token");
        assert_eq!(params["service"], "registry.example");
        assert_eq!(params["scope"], "repository:a/b:pull,push");
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(params["realm"], "Registry Realm");
    }

    #[test]
    fn loopback_registries_use_plain_http_others_tls() {
        let client = RegistryClient::new(&["my.registry:5000".into()], None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(client.base_url("localhost:5001"), "http://localhost:5001");
        assert_eq!(client.base_url("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(
            client.base_url("my.registry:5000"),
            "http://my.registry:5000"
        );
        assert_eq!(client.base_url("gcr.io"), "https://gcr.io");
        assert_eq!(client.base_url("10.0.0.1:5000"), "https://10.0.0.1:5000");
        assert_eq!(client.base_url("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn repositories_from_references() {
        let r: ImageRef = "127.0.0.1:5000/team/app:v1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Repository::of(&r).name, "team/app");
        let r: ImageRef = "alpine".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Repository::of(&r).to_string(), "docker.io/library/alpine");
    }
}
