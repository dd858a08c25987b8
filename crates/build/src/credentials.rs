//! Registry credentials from the Docker client configuration (`config.json`).
//!
//! The caller finds the file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) and
//! hands its path to [`DockerConfig::load`]; this module reads no environment variables. A
//! missing file is an empty configuration.
//!
//! Credentials come, as with the Docker CLI, from a per-registry helper (`credHelpers`), else
//! the default store (`credsStore`), else the `auths` entry itself. Helpers are the programs
//! `docker-credential-<name>`, run as `docker-credential-<name> get` with the registry on
//! stdin; they are looked up in the directories given to [`DockerConfig::with_search_path`]
//! (the caller passes its `PATH`), or by the operating system when no search path was given.
//!
//! Secrets never appear in `Debug` output: [`Credentials`] and [`DockerConfig`] print
//! `<redacted>` in their place.
//!
//! ```
//! use skiff_build::credentials::DockerConfig;
//!
//! let config = DockerConfig::from_json(
//!     r#"{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpzM2NyZXQ="}}}"#,
//!     std::path::Path::new("config.json"),
//! )?;
//! let credentials = config.credentials_for("http://127.0.0.1:5000/v2/")?.expect("configured");
//! assert_eq!(credentials.username.as_deref(), Some("user"));
//! assert!(!format!("{credentials:?}").contains("s3cret"));
//! # Ok::<(), skiff_build::BuildError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use crate::BuildError;

/// The key Docker Hub credentials are stored under, by the CLI and by credential helpers.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// What is shown instead of a secret.
const REDACTED: &str = "<redacted>";

/// The username helpers return when the secret is an identity (refresh) token.
const TOKEN_USERNAME: &str = "<token>";

/// Credentials for one registry. `Debug` redacts the password and the identity token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The registry as the credentials were stored (`https://index.docker.io/v1/`, `gcr.io`).
    pub server_address: String,
    /// The user name, if any.
    pub username: Option<String>,
    /// The password or access token.
    pub password: Option<String>,
    /// An OAuth identity (refresh) token, used instead of a password.
    pub identity_token: Option<String>,
}

impl Credentials {
    /// The form the Docker engine API takes (`X-Registry-Auth`).
    pub fn to_bollard(&self) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            serveraddress: Some(self.server_address.clone()),
            identitytoken: self.identity_token.clone(),
            ..Default::default()
        }
    }

    /// Whether these carry anything to authenticate with.
    fn is_usable(&self) -> bool {
        self.password.as_deref().is_some_and(|p| !p.is_empty())
            || self
                .identity_token
                .as_deref()
                .is_some_and(|t| !t.is_empty())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server_address", &self.server_address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// The registry part of `config.json`.
#[derive(Clone, Default)]
pub struct DockerConfig {
    origin: PathBuf,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
    search_path: Option<Vec<PathBuf>>,
}

#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

/// A helper's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(default, rename = "Username")]
    username: String,
    #[serde(default, rename = "Secret")]
    secret: String,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auths: Vec<_> = self
            .auths
            .iter()
            .map(|(host, entry)| {
                let has_secret = entry.auth.is_some()
                    || entry.password.is_some()
                    || entry.identitytoken.is_some();
                (host.as_str(), if has_secret { REDACTED } else { "" })
            })
            .collect();
        f.debug_struct("DockerConfig")
            .field("origin", &self.origin)
            .field("auths", &auths)
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .field("search_path", &self.search_path)
            .finish()
    }
}

impl DockerConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig, BuildError> {
        match std::fs::read_to_string(path) {
            Ok(text) => DockerConfig::from_json(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DockerConfig {
                origin: path.to_path_buf(),
                ..DockerConfig::default()
            }),
            Err(source) => Err(BuildError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a `config.json`; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<DockerConfig, BuildError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_json::from_str(text).map_err(|e| BuildError::Io {
                path: origin.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a valid Docker config.json: {e}"),
                ),
            })?
        };
        Ok(DockerConfig {
            origin: origin.to_path_buf(),
            auths: raw.auths,
            creds_store: raw.creds_store.filter(|s| !s.is_empty()),
            cred_helpers: raw.cred_helpers,
            search_path: None,
        })
    }

    /// Looks credential helpers up in these directories only (the caller's `PATH`, split).
    pub fn with_search_path(mut self, dirs: Vec<PathBuf>) -> DockerConfig {
        self.search_path = Some(dirs);
        self
    }

    /// The file this configuration came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The registries this configuration knows about (`auths` and `credHelpers` keys),
    /// normalised with [`normalize_registry`], without duplicates.
    pub fn registries(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .auths
            .keys()
            .chain(self.cred_helpers.keys())
            .map(|k| normalize_registry(k))
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The credentials for `registry` (a host such as `127.0.0.1:5000`, `gcr.io`, `docker.io`,
    /// or a URL such as `https://index.docker.io/v1/`), or `None` when none are configured.
    ///
    /// Fails when a configured credential helper cannot be run or fails, or when an `auth`
    /// entry is not valid base64 `user:password`.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, BuildError> {
        let host = normalize_registry(registry);
        let auth_key = self
            .auths
            .keys()
            .find(|k| normalize_registry(k) == host)
            .cloned();
        let server_address = if host == "docker.io" {
            DOCKER_HUB_SERVER.to_owned()
        } else {
            auth_key.clone().unwrap_or_else(|| host.clone())
        };

        let helper = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_registry(k) == host)
            .map(|(_, helper)| (helper.as_str(), "credHelpers"))
            .or_else(|| self.creds_store.as_deref().map(|s| (s, "credsStore")));
        if let Some((helper, setting)) = helper {
            if let Some(credentials) = self.run_helper(helper, setting, &server_address)? {
                return Ok(Some(credentials));
            }
        }

        let Some(entry) = auth_key.as_ref().and_then(|k| self.auths.get(k)) else {
            return Ok(None);
        };
        let mut credentials = Credentials {
            server_address,
            username: entry.username.clone().filter(|u| !u.is_empty()),
            password: entry.password.clone().filter(|p| !p.is_empty()),
            identity_token: entry.identitytoken.clone().filter(|t| !t.is_empty()),
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.trim().is_empty()) {
            let (user, password) = decode_auth(auth).ok_or_else(|| BuildError::Io {
                path: self.origin.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "auths.\"{}\".auth is not base64 of `user:password`",
                        auth_key.as_deref().unwrap_or(&host)
                    ),
                ),
            })?;
            credentials.username = Some(user);
            credentials.password = Some(password);
        }
        Ok(credentials.is_usable().then_some(credentials))
    }

    /// The credentials for every registry this configuration knows about, keyed by server
    /// address, in the form the engine's build endpoint takes (`X-Registry-Config`) so it can
    /// pull private base images. Registries whose helper fails are left out.
    pub fn all_credentials(&self) -> HashMap<String, bollard::auth::DockerCredentials> {
        self.registries()
            .iter()
            .filter_map(|host| self.credentials_for(host).ok().flatten())
            .map(|c| (c.server_address.clone(), c.to_bollard()))
            .collect()
    }

    /// Runs `docker-credential-<helper> get` for `server`.
    fn run_helper(
        &self,
        helper: &str,
        setting: &str,
        server: &str,
    ) -> Result<Option<Credentials>, BuildError> {
        let program = format!("docker-credential-{helper}");
        let helper_error = |kind: io::ErrorKind, reason: String| BuildError::Io {
            path: PathBuf::from(&program),
            source: io::Error::new(kind, reason),
        };
        let executable = match &self.search_path {
            None => PathBuf::from(&program),
            Some(dirs) => find_executable(&program, dirs).ok_or_else(|| {
                helper_error(
                    io::ErrorKind::NotFound,
                    format!(
                        "credential helper `{program}` (`{setting}` in {}) is not on PATH; install it or remove `{setting}` from that file",
                        self.origin.display()
                    ),
                )
            })?,
        };
        let spawn = || {
            Command::new(&executable)
                .arg("get")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        let mut spawned = spawn();
        // A helper written a moment ago can still be open for writing in a process forked
        // meanwhile (a package install, another thread starting a program): the kernel then
        // refuses to run it for that moment.
        for _ in 0..10 {
            match &spawned {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    spawned = spawn();
                }
                _ => break,
            }
        }
        let mut child = spawned.map_err(|e| {
                let reason = if e.kind() == io::ErrorKind::NotFound {
                    format!(
                        "credential helper `{program}` (`{setting}` in {}) is not installed or not on PATH; install it or remove `{setting}` from that file",
                        self.origin.display()
                    )
                } else {
                    format!("cannot run credential helper `{program}`: {e}")
                };
                helper_error(e.kind(), reason)
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its input is judged by its output below.
            let _ = stdin.write_all(server.as_bytes());
        }
        let output = child.wait_with_output().map_err(|e| {
            helper_error(
                e.kind(),
                format!("credential helper `{program}` failed: {e}"),
            )
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let said = format!("{} {}", stdout.trim(), stderr.trim());
            if said.to_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            return Err(helper_error(
                io::ErrorKind::Other,
                format!(
                    "credential helper `{program} get` for {server} failed ({}): {}",
                    output.status,
                    said.trim()
                ),
            ));
        }
        let answer: HelperAnswer = serde_json::from_str(stdout.trim()).map_err(|e| {
            // The output may hold a secret: describe it, never echo it.
            helper_error(
                io::ErrorKind::InvalidData,
                format!(
                    "credential helper `{program} get` for {server} printed something that is not its JSON answer ({e})"
                ),
            )
        })?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        let credentials = if answer.username == TOKEN_USERNAME {
            Credentials {
                server_address: server.to_owned(),
                username: None,
                password: None,
                identity_token: Some(answer.secret),
            }
        } else {
            Credentials {
                server_address: server.to_owned(),
                username: Some(answer.username).filter(|u| !u.is_empty()),
                password: Some(answer.secret),
                identity_token: None,
            }
        };
        Ok(Some(credentials))
    }
}

/// The registry host a reference, host or URL names, as credentials are keyed: the scheme and
/// any path are dropped and Docker Hub's aliases become `docker.io`.
///
/// ```
/// use skiff_build::credentials::normalize_registry;
/// assert_eq!(normalize_registry("https://index.docker.io/v1/"), "docker.io");
/// assert_eq!(normalize_registry("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
/// assert_eq!(normalize_registry("GCR.io"), "gcr.io");
/// ```
pub fn normalize_registry(registry: &str) -> String {
    let trimmed = registry.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com"
        | "docker.io"
        | "" => "docker.io".to_owned(),
        _ => host,
    }
}

/// `base64("user:password")` → (user, password).
fn decode_auth(auth: &str) -> Option<(String, String)> {
    let auth = auth.trim();
    let bytes = STANDARD
        .decode(auth)
        .or_else(|_| STANDARD_NO_PAD.decode(auth.trim_end_matches('=')))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The first `dir/name` that is an executable file.
fn find_executable(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MARKER: &str = "s3cr3t-MARKER-9f2c";

    fn config(json: &str) -> DockerConfig {
        DockerConfig::from_json(json, Path::new("/test/config.json")).unwrap()
    }

    #[test]
    fn normalises_hosts() {
        assert_eq!(normalize_registry("docker.io"), "docker.io");
        assert_eq!(normalize_registry("index.docker.io"), "docker.io");
        assert_eq!(normalize_registry(DOCKER_HUB_SERVER), "docker.io");
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_registry("https://gcr.io/v2/"), "gcr.io");
        assert_eq!(normalize_registry("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn auth_field_is_decoded() {
        let auth = STANDARD.encode(format!("alice:{MARKER}"));
        let c = config(&format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#
        ));
        let creds = c.credentials_for("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(creds.username.as_deref(), Some("alice"));
        assert_eq!(creds.password.as_deref(), Some(MARKER));
        assert_eq!(creds.server_address, "127.0.0.1:5000");
        let bollard = creds.to_bollard();
        assert_eq!(bollard.password.as_deref(), Some(MARKER));
        assert_eq!(bollard.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(c.credentials_for("other.example:5000").unwrap(), None);
    }

    #[test]
    fn docker_hub_url_key_matches_docker_io() {
        let auth = STANDARD.encode("bob:pw");
        let c = config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
        ));
        let creds = c.credentials_for("docker.io").unwrap().unwrap();
        assert_eq!(creds.username.as_deref(), Some("bob"));
        assert_eq!(creds.server_address, DOCKER_HUB_SERVER);
    }

    #[test]
    fn username_password_and_identity_token() {
        let c = config(
            r#"{"auths":{
                "a.example":{"username":"u","password":"p"},
                "b.example":{"identitytoken":"tok"},
                "c.example":{}
            }}"#,
        );
        let a = c.credentials_for("a.example").unwrap().unwrap();
        assert_eq!(
            (a.username.as_deref(), a.password.as_deref()),
            (Some("u"), Some("p"))
        );
        let b = c.credentials_for("https://b.example/v2/").unwrap().unwrap();
        assert_eq!(b.identity_token.as_deref(), Some("tok"));
        assert_eq!(b.to_bollard().identitytoken.as_deref(), Some("tok"));
        assert_eq!(c.credentials_for("c.example").unwrap(), None);
    }

    #[test]
    fn bad_auth_is_an_error_without_the_secret() {
        let c = config(&format!(
            r#"{{"auths":{{"x.example":{{"auth":"{MARKER}!!"}}}}}}"#
        ));
        let err = c.credentials_for("x.example").unwrap_err().to_string();
        assert!(err.contains("x.example"), "{err}");
        assert!(!err.contains(MARKER), "{err}");
    }

    #[test]
    fn missing_file_is_empty_and_bad_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DockerConfig::load(&dir.path().join("config.json")).unwrap();
        assert!(missing.registries().is_empty());
        assert_eq!(missing.credentials_for("docker.io").unwrap(), None);

        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = DockerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");

        std::fs::write(&path, "").unwrap();
        assert!(DockerConfig::load(&path).unwrap().registries().is_empty());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let auth = STANDARD.encode(format!("alice:{MARKER}"));
        let c = config(&format!(
            r#"{{"auths":{{"r.example":{{"auth":"{auth}"}},"t.example":{{"identitytoken":"{MARKER}"}},"p.example":{{"username":"u","password":"{MARKER}"}}}}}}"#
        ));
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains(MARKER), "{shown}");
        assert!(!shown.contains(&auth), "{shown}");
        for host in ["r.example", "t.example", "p.example"] {
            let creds = c.credentials_for(host).unwrap().unwrap();
            let shown = format!("{creds:?} {creds:#?}");
            assert!(!shown.contains(MARKER), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[cfg(unix)]
    fn write_helper(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn cred_helper_is_run_with_the_registry_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(
            dir.path(),
            "test",
            &format!(
                r#"#!/bin/sh
[ "$1" = get ] || exit 2
read server
case "$server" in
  127.0.0.1:5000) printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"{MARKER}"}}' "$server" ;;
  https://index.docker.io/v1/) printf '{{"ServerURL":"%s","Username":"<token>","Secret":"refresh"}}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#
            ),
        );
        let c = config(r#"{"credHelpers":{"127.0.0.1:5000":"test"},"credsStore":"test"}"#)
            .with_search_path(vec![
                PathBuf::from("/nonexistent-dir"),
                dir.path().to_path_buf(),
            ]);
        let creds = c.credentials_for("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(creds.username.as_deref(), Some("helper-user"));
        assert_eq!(creds.password.as_deref(), Some(MARKER));
        assert!(!format!("{creds:?}").contains(MARKER));

        // credsStore serves the rest; `<token>` means an identity token.
        let hub = c.credentials_for("docker.io").unwrap().unwrap();
        assert_eq!(hub.identity_token.as_deref(), Some("refresh"));
        assert_eq!(hub.username, None);
        assert_eq!(hub.server_address, DOCKER_HUB_SERVER);

        // Not found in the helper → none.
        assert_eq!(c.credentials_for("quay.io").unwrap(), None);

        let all = c.all_credentials();
        assert!(all.contains_key("127.0.0.1:5000"), "{:?}", all.keys());
    }

    #[cfg(unix)]
    #[test]
    fn helper_falls_back_to_auths_when_it_has_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(
            dir.path(),
            "empty",
            "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
        );
        let auth = STANDARD.encode("file-user:file-pw");
        let c = config(&format!(
            r#"{{"credsStore":"empty","auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#
        ))
        .with_search_path(vec![dir.path().to_path_buf()]);
        let creds = c.credentials_for("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(creds.username.as_deref(), Some("file-user"));
    }

    #[cfg(unix)]
    #[test]
    fn failing_helper_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(
            dir.path(),
            "broken",
            "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n",
        );
        let c =
            config(r#"{"credsStore":"broken"}"#).with_search_path(vec![dir.path().to_path_buf()]);
        let err = c.credentials_for("gcr.io").unwrap_err().to_string();
        assert!(err.contains("docker-credential-broken"), "{err}");
        assert!(err.contains("keychain locked"), "{err}");
    }

    #[test]
    fn missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(r#"{"credHelpers":{"gcr.io":"nosuchhelper"}}"#)
            .with_search_path(vec![dir.path().to_path_buf()]);
        let err = c.credentials_for("gcr.io").unwrap_err().to_string();
        assert!(err.contains("docker-credential-nosuchhelper"), "{err}");
        assert!(err.contains("credHelpers"), "{err}");
        assert!(err.contains("/test/config.json"), "{err}");
        // Registries without a helper are unaffected.
        assert_eq!(c.credentials_for("127.0.0.1:5000").unwrap(), None);
    }
}
