//! Secrets never leak: registry credentials (a `config.json` `auths` entry and a credential
//! helper) and kubeconfig secrets (a bearer token, a client key) each contain a marker string;
//! real failures are driven through the `skiff` binary — a push refused by a test-started
//! registry requiring basic auth, an API server refusing the token, one nobody listens on, a
//! client key that does not parse — and the marker must appear in no output, no event log and
//! no error message.
//!
//! Needs the Docker engine, `docker-registry` and `htpasswd` (registry part) and the local
//! cluster (kubeconfig part); without them a test is skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::{docker_available, missing, unique};

/// The kube API server of `$KUBECONFIG` (`https://host:port`) and its CA file.
fn api_server() -> Option<(String, String)> {
    let Some(path) = std::env::var_os("KUBECONFIG").filter(|k| Path::new(k).is_file()) else {
        missing("KUBECONFIG names no kubeconfig file");
        return None;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let field = |key: &str| {
        let start = text.find(key)? + key.len();
        let rest = text[start..].trim_start_matches([' ', '"']);
        let end = rest.find(['"', ',', '}', '\n'])?;
        Some(rest[..end].trim().to_owned())
    };
    Some((field("server:")?, field("certificate-authority:")?))
}

/// What one `skiff` run printed and logged.
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
    event_log: String,
}

impl Outcome {
    fn text(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- event log\n{}",
            self.stdout, self.stderr, self.event_log
        )
    }

    /// No marker anywhere — also not base64-encoded (as in an `auth` field or a header).
    fn assert_no_secret(&self, secrets: &[&str]) {
        let text = self.text();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
    }
}

/// Runs `skiff args` in `dir` with `env`; a run still going after `timeout` (a `dev` loop
/// that survives the failure) is interrupted and given time to exit.
fn skiff(dir: &Path, args: &[&str], env: &[(&str, &Path)], timeout: Duration) -> Outcome {
    // Outside the project: a file written in the watched context would trigger iterations.
    let logs = tempfile::tempdir().unwrap();
    let event_log = logs.path().join("events.jsonl");
    let mut command = Command::new(skiff_e2e::skiff_bin());
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", logs.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if matches!(args.first(), Some(&"dev" | &"run")) {
        command.arg(format!("--event-log={}", event_log.display()));
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let status = wait(&mut child, timeout);
    let outcome = Outcome {
        success: status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        event_log: std::fs::read_to_string(&event_log).unwrap_or_default(),
    };
    eprintln!("skiff {args:?}:\n{}", outcome.text());
    outcome
}

fn reader(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Registry credentials.

struct TestRegistry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `docker-registry` of this test, on a free loopback port, requiring basic auth for
/// `skiff` / `password`.
fn auth_registry(password: &str) -> Option<TestRegistry> {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = match Command::new("htpasswd")
        .args(["-Bbn", "skiff", password])
        .output()
    {
        Ok(output) if output.status.success() => output.stdout,
        Ok(output) => panic!("htpasswd: {}", String::from_utf8_lossy(&output.stderr)),
        Err(e) => {
            missing(&format!("htpasswd (apache2-utils): {e}"));
            return None;
        }
    };
    std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {}}}\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\nhttp: {{addr: \"{address}\"}}\n",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display(),
        ),
    )
    .unwrap();
    let child = match Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            missing(&format!("docker-registry: {e}"));
            return None;
        }
    };
    let registry = TestRegistry {
        child,
        address,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&registry.address).is_ok() {
            return Some(registry);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not start on {}", registry.address);
}

/// A `FROM scratch` project pushing `image` (local build, `push: true`), run by `deploy.docker`
/// in profile `docker`.
fn registry_project(dir: &Path, image: &str) {
    std::fs::write(dir.join("data.txt"), "data\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY data.txt /data.txt\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("skaffold.yaml"),
        format!(
            "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  local:\n    push: true\n  artifacts:\n  - image: {image}\nprofiles:\n- name: docker\n  deploy:\n    docker:\n      images: [{image}]\n"
        ),
    )
    .unwrap();
}

fn remove_images(image: &str) {
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker images -q {image} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
            ),
        ])
        .status();
}

#[test]
fn registry_credentials_never_appear_in_output_or_event_log() {
    if !docker_available() {
        return;
    }
    let Some(registry) = auth_registry("the-right-password") else {
        return;
    };
    let marker = unique("SKIFFMARKERPW");
    let helper_marker = unique("SKIFFMARKERHELPER");
    let dir = tempfile::tempdir().unwrap();
    let image = format!("{}/secrets/app", registry.address);
    registry_project(dir.path(), &image);

    // `auths`: user `skiff` with the marker as its (wrong) password.
    let auths = dir.path().join("auths");
    std::fs::create_dir_all(&auths).unwrap();
    let auth = base64(format!("skiff:{marker}").as_bytes());
    std::fs::write(
        auths.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.address
        ),
    )
    .unwrap();
    let secrets = [marker.as_str(), auth.as_str()];

    let build = skiff(
        dir.path(),
        &["build", "--push"],
        &[("DOCKER_CONFIG", &auths)],
        Duration::from_secs(120),
    );
    assert!(
        !build.success,
        "the registry must refuse:\n{}",
        build.text()
    );
    assert!(
        build.text().contains("refused the credentials"),
        "the error names the registry:\n{}",
        build.text()
    );
    build.assert_no_secret(&secrets);

    let diagnose = skiff(
        dir.path(),
        &["diagnose"],
        &[("DOCKER_CONFIG", &auths)],
        Duration::from_secs(60),
    );
    assert!(diagnose.success, "{}", diagnose.text());
    diagnose.assert_no_secret(&secrets);

    let dev = skiff(
        dir.path(),
        &["dev", "-p", "docker"],
        &[("DOCKER_CONFIG", &auths)],
        Duration::from_secs(30),
    );
    assert!(
        dev.text().contains("refused the credentials"),
        "dev tried the push:\n{}",
        dev.text()
    );
    dev.assert_no_secret(&secrets);

    // A credential helper printing the marker as its secret.
    let helper_dir = dir.path().join("helper");
    std::fs::create_dir_all(&helper_dir).unwrap();
    let helper = helper_dir.join("docker-credential-skiffmarker");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread registry\necho '{{\"ServerURL\":\"'\"$registry\"'\",\"Username\":\"skiff\",\"Secret\":\"{helper_marker}\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        helper_dir.join("config.json"),
        format!(
            r#"{{"credHelpers":{{"{}":"skiffmarker"}}}}"#,
            registry.address
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let path = PathBuf::from(path);
    let helper_secrets = [
        helper_marker.as_str(),
        &base64(format!("skiff:{helper_marker}").as_bytes()),
    ];
    for args in [&["build", "--push"][..], &["dev", "-p", "docker"][..]] {
        let run = skiff(
            dir.path(),
            args,
            &[("DOCKER_CONFIG", &helper_dir), ("PATH", &path)],
            Duration::from_secs(30),
        );
        // `build` fails; `dev` survives the failed iteration and ends on the interrupt.
        assert!(
            args[0] == "dev" || !run.success,
            "the registry must refuse:\n{}",
            run.text()
        );
        assert!(
            run.text().contains("refused the credentials"),
            "the push was tried:\n{}",
            run.text()
        );
        run.assert_no_secret(&helper_secrets);
    }
    remove_images(&image);
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig secrets.

fn kube_project(dir: &Path, namespace: &str) {
    std::fs::write(
        dir.join("cm.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: secrets-test\n  namespace: {namespace}\ndata:\n  a: b\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nmanifests:\n  rawYaml: [cm.yaml]\ndeploy:\n  kubectl: {}\n",
    )
    .unwrap();
}

/// A kubeconfig for `server` whose user is `user` (YAML flow mapping).
fn kubeconfig(dir: &Path, name: &str, server: &str, ca: Option<&str>, user: &str) -> PathBuf {
    let cluster = match ca {
        Some(ca) => format!("{{server: \"{server}\", certificate-authority: \"{ca}\"}}"),
        None => format!("{{server: \"{server}\", insecure-skip-tls-verify: true}}"),
    };
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {cluster}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn kubeconfig_token_and_client_key_never_appear_in_output_or_event_log() {
    let Some((server, ca)) = api_server() else {
        return;
    };
    let token = unique("SKIFFMARKERTOKEN");
    let key_marker = unique("SKIFFMARKERKEY");
    let dir = tempfile::tempdir().unwrap();
    kube_project(dir.path(), &unique("skiff-secrets"));

    // A client key that is no key: the marker is its body, also base64-encoded in the file.
    let key_pem = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{key_marker}{key_marker}\n-----END EC PRIVATE KEY-----\n"
    );
    let key_data = base64(key_pem.as_bytes());
    let cert_pem = "-----BEGIN CERTIFICATE-----\nMIIBnotacert\n-----END CERTIFICATE-----\n";
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let cases = [
        // The real API server refuses the token (401).
        kubeconfig(
            dir.path(),
            "refused.yaml",
            &server,
            Some(&ca),
            &format!("{{token: \"{token}\"}}"),
        ),
        // Nothing listens.
        kubeconfig(
            dir.path(),
            "unreachable.yaml",
            &format!("https://127.0.0.1:{closed}"),
            None,
            &format!("{{token: \"{token}\"}}"),
        ),
        // A client key that cannot be parsed.
        kubeconfig(
            dir.path(),
            "badkey.yaml",
            &server,
            Some(&ca),
            &format!(
                "{{client-certificate-data: \"{}\", client-key-data: \"{key_data}\"}}",
                base64(cert_pem.as_bytes())
            ),
        ),
    ];
    let secrets = [token.as_str(), key_marker.as_str(), key_data.as_str()];
    for kubeconfig in &cases {
        for args in [
            &["deploy"][..],
            &["delete"][..],
            &["dev"][..],
            &["diagnose"][..],
        ] {
            let run = skiff(
                dir.path(),
                args,
                &[("KUBECONFIG", kubeconfig)],
                Duration::from_secs(45),
            );
            if args[0] != "diagnose" {
                assert!(
                    !run.success,
                    "{args:?} with {} must fail:\n{}",
                    kubeconfig.display(),
                    run.text()
                );
            }
            run.assert_no_secret(&secrets);
        }
    }
}
