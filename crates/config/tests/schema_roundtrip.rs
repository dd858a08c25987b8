//! The generated `skaffold.yaml` schema structs: a config exercising most sections parses,
//! serializes back and re-parses to the same value; unknown and missing fields are reported
//! with their location.

use skiff_config::schema::{
    BuildArgs, FlatMap, IntOrString, JIB_ARTIFACT_TYPE_VALUES, SkaffoldConfig, StringMap,
};

const RICH: &str = r#"
apiVersion: skaffold/v4beta14
kind: Config
metadata:
  name: rich-app
  labels:
    team: platform
    tier: 1
  annotations:
    owner: someone
requires:
  - path: ./base
    configs: [base-config]
    activeProfiles:
      - name: dev
        activatedBy: [local]
  - git:
      repo: https://github.com/example/shared.git
      path: skaffold.yaml
      ref: main
      sync: true
    configs: [shared]
  - googleCloudStorage:
      source: gs://my-bucket/configs/*
      path: skaffold.yaml
build:
  platforms: [linux/amd64, linux/arm64]
  insecureRegistries: [localhost:5000]
  artifacts:
    - image: docker-app
      context: services/docker
      platforms: [linux/amd64]
      docker:
        dockerfile: Dockerfile.dev
        target: runtime
        buildArgs:
          VERSION: 1.20
          DEBUG: true
          FROM_ENV:
          PLAIN: text
        cacheFrom: [docker-app:latest]
        network: host
        noCache: false
        secrets:
          - id: npmrc
            src: ~/.npmrc
        ssh: default
      sync:
        manual:
          - src: "src/**/*.js"
            dest: /app
            strip: src/
        hooks:
          before:
            - host:
                command: [echo, syncing]
          after:
            - container:
                command: [kill, "-HUP", "1"]
      hooks:
        before:
          - command: [make, generate]
            os: [linux, darwin]
            dir: services/docker
        after:
          - command: [echo, built]
    - image: custom-app
      requires:
        - image: docker-app
          alias: BASE
      custom:
        buildCommand: ./build.sh
        dependencies:
          paths: ["**/*.go"]
          ignore: [vendor/**]
    - image: ko-app
      ko:
        fromImage: gcr.io/distroless/static
        main: ./cmd/app
        dir: .
        env: [CGO_ENABLED=0]
        flags: [-v]
        ldflags: [-s, -w]
        labels:
          org.opencontainers.image.source: https://example.com
        dependencies:
          paths: ["**/*.go", go.mod]
          ignore: []
    - image: bazel-app
      bazel:
        target: //app:image.tar
        args: [--config=ci]
        platforms:
          - platform: linux/amd64
            target: //platforms:linux_amd64
    - image: jib-app
      jib:
        project: service
        type: maven
        args: [-DskipTests]
        fromImage: eclipse-temurin:17
      sync:
        auto: true
    - image: kaniko-app
      kaniko:
        dockerfile: Dockerfile
        buildArgs:
          A: "1"
          B: null
        cache:
          repo: gcr.io/proj/cache
          ttl: 24h
        env:
          - name: KEY
            value: VALUE
        volumeMounts:
          - name: docker-config
            mountPath: /kaniko/.docker
        label:
          stage: kaniko
        skipTLS: true
        skipTLSVerifyRegistry: [registry.local]
        imageFSExtractRetry: "3"
        verbosity: info
        copyMaxRetries: 3
    - image: pack-app
      buildpacks:
        builder: gcr.io/buildpacks/builder:v1
        buildpacks: [gcr.io/buildpacks/nodejs]
        env: [GOOGLE_RUNTIME_VERSION=18]
        trustBuilder: true
        volumes:
          - host: /tmp/cache
            target: /cache
            options: rw
        dependencies:
          paths: [package.json]
      sync:
        infer: ["**/*.js"]
  tagPolicy:
    customTemplate:
      template: "{{.GIT}}-{{.DATE}}-{{.SHA}}-{{.ENV}}-{{.DIGEST}}-{{.NESTED}}"
      components:
        - name: GIT
          gitCommit:
            variant: AbbrevCommitSha
            prefix: v
            ignoreChanges: true
        - name: DATE
          dateTime:
            format: "2006-01-02"
            timezone: UTC
        - name: SHA
          sha256: {}
        - name: ENV
          envTemplate:
            template: "{{.USER}}"
        - name: DIGEST
          inputDigest: {}
        - name: NESTED
          customTemplate:
            template: "{{.INNER}}"
            components:
              - name: INNER
                gitCommit: {}
  local:
    push: false
    useBuildkit: true
    concurrency: 2
    tryImportMissing: true
  hooks:
    before:
      - command: [echo, pre-build]
test:
  - image: docker-app
    structureTests: [./test/structure.yaml]
    custom:
      - command: go test ./...
        timeoutSeconds: 60
        dependencies:
          paths: ["**/*_test.go"]
manifests:
  rawYaml: [k8s/*.yaml]
  kustomize:
    paths: [overlays/dev]
    buildArgs: [--load-restrictor=LoadRestrictionsNone]
  kpt: [kpt/pkg]
  helm:
    flags:
      global: [--debug]
    releases:
      - name: web
        chartPath: charts/web
        namespace: web
        createNamespace: true
        valuesFiles: [values.yaml]
        setValues:
          image:
            repository: docker-app
            tag: latest
          replicas: 2
          args: [a, b]
        setValueTemplates:
          image.tag: "{{.IMAGE_TAG_docker_app}}"
        setFiles:
          config: files/config.json
        overrides:
          resources:
            limits:
              cpu: 500m
          list: [1, 2, 3]
        packaged:
          version: 1.0.0
          appVersion: 1.0.0
      - name: remote
        remoteChart: bitnami/redis
        repo: https://charts.bitnami.com/bitnami
        version: 17.0.0
        upgradeOnChange: true
  transform:
    - name: set-labels
      configMap: ["app:web"]
  validate:
    - name: kubeval
  hooks:
    before:
      - host:
          command: [echo, pre-render]
    after:
      - host:
          command: [sed, -e, s/a/b/]
          withChange: true
  output: rendered.yaml
deploy:
  kubeContext: kind-dev
  statusCheck: true
  statusCheckDeadlineSeconds: 120
  tolerateFailuresUntilDeadline: true
  kubectl:
    defaultNamespace: dev
    flags:
      apply: [--server-side]
      global: [--v=2]
      disableValidation: true
    hooks:
      before:
        - host:
            command: [echo, pre-deploy]
      after:
        - container:
            podName: web-*
            containerName: web
            command: [sh, -c, echo done]
    remoteManifests: [ns/deployment/web]
  helm:
    releases:
      - name: legacy
        chartPath: charts/legacy
    concurrency: 1
  kpt:
    dir: kpt/live
    applyFlags: [--reconcile-timeout=2m]
    force: true
    inventoryID: abc
  logs:
    prefix: podAndContainer
    jsonParse:
      fields: [level, msg]
portForward:
  - resourceType: service
    resourceName: web
    namespace: web
    port: 8080
    localPort: 9000
  - resourceType: deployment
    resourceName: api
    port: http
    address: 0.0.0.0
resourceSelector:
  allow:
    - groupKind: Foo.example.com
      image: [".*"]
      labels: [".*"]
  deny:
    - groupKind: Bar.example.com
      podSpec: [".spec.template.spec"]
verify:
  - name: smoke
    timeout: 30
    container:
      name: curl
      image: curlimages/curl
      command: [curl]
      args: [http://web]
      env:
        - name: HOST
          value: web
    executionMode:
      kubernetesCluster:
        jobManifestPath: job.yaml
customActions:
  - name: migrate
    timeout: 300
    failFast: false
    containers:
      - name: migrate
        image: migrate/migrate
        command: [migrate, up]
    executionMode:
      local:
        useLocalImages: true
profiles:
  - name: gcb
    activation:
      - env: CI=true
      - kubeContext: gke_.*
        command: run
    requiresAllActivations: true
    build:
      googleCloudBuild:
        projectId: my-project
        diskSizeGb: 100
        machineType: E2_HIGHCPU_8
        logging: GCS_ONLY
        logStreamingOption: STREAM_ON
        timeout: 1200s
        region: us-central1
      tagPolicy:
        gitCommit:
          variant: Tags
    patches:
      - op: replace
        path: /build/artifacts/0/docker/dockerfile
        value: Dockerfile.ci
      - op: add
        path: /build/artifacts/0/docker/buildArgs
        value:
          CI: "true"
          LEVEL: 3
      - op: remove
        path: /test
      - path: /deploy/kubectl/defaultNamespace
        value: ci
  - name: cluster
    build:
      cluster:
        namespace: builds
        pullSecretName: kaniko-secret
        concurrency: 3
        timeout: 20m
        runAsUser: 1000
        HTTP_PROXY: http://proxy:3128
        nodeSelector:
          pool: builders
        tolerations:
          - key: dedicated
            operator: Equal
            value: builds
            effect: NoSchedule
        resources:
          requests:
            cpu: "1"
            memory: 2Gi
          limits:
            cpu: "2"
      tagPolicy:
        sha256: {}
  - name: env-tags
    build:
      tagPolicy:
        envTemplate:
          template: "{{.IMAGE_NAME}}:{{.TAG}}"
  - name: date-tags
    build:
      tagPolicy:
        dateTime:
          format: "2006-01-02_15-04-05"
  - name: digest-tags
    build:
      tagPolicy:
        inputDigest: {}
  - name: docker-deploy
    deploy:
      docker:
        useCompose: true
        images: [docker-app]
  - name: cloudrun
    deploy:
      cloudrun:
        projectid: my-project
        region: us-central1
    portForward:
      - resourceType: service
        resourceName: web
        port: 8080
"#;

fn parse(text: &str) -> SkaffoldConfig {
    serde_yaml::from_str(text).expect("config parses")
}

#[test]
fn rich_config_parses() {
    let cfg = parse(RICH);
    assert_eq!(cfg.api_version.as_deref(), Some("skaffold/v4beta14"));
    assert_eq!(cfg.kind.as_deref(), Some("Config"));

    let meta = cfg.metadata.as_ref().expect("metadata");
    assert_eq!(meta.name.as_deref(), Some("rich-app"));
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels.get("tier"), Some("1"));

    let requires = cfg.requires.as_ref().expect("requires");
    assert_eq!(requires.len(), 3);
    assert_eq!(
        requires[1].git.as_ref().expect("git").repo,
        "https://github.com/example/shared.git"
    );
    let active = requires[0]
        .active_profiles
        .as_ref()
        .expect("activeProfiles");
    assert_eq!(active[0].name, "dev");

    let build = cfg.build.as_ref().expect("build");
    let artifacts = build.artifacts.as_ref().expect("artifacts");
    assert_eq!(artifacts.len(), 7);

    let docker = artifacts[0].docker.as_ref().expect("docker");
    assert_eq!(artifacts[0].image, "docker-app");
    assert_eq!(docker.dockerfile.as_deref(), Some("Dockerfile.dev"));
    let args: &BuildArgs = docker.build_args.as_ref().expect("buildArgs");
    assert_eq!(args.get("VERSION"), Some(Some("1.20")));
    assert_eq!(args.get("DEBUG"), Some(Some("true")));
    assert_eq!(args.get("FROM_ENV"), Some(None));
    let sync = artifacts[0].sync.as_ref().expect("sync");
    assert_eq!(sync.manual.as_ref().expect("manual")[0].dest, "/app");

    assert_eq!(
        artifacts[1]
            .custom
            .as_ref()
            .expect("custom")
            .build_command
            .as_deref(),
        Some("./build.sh")
    );
    assert_eq!(
        artifacts[1].requires.as_ref().expect("requires")[0]
            .alias
            .as_deref(),
        Some("BASE")
    );
    assert_eq!(
        artifacts[2].ko.as_ref().expect("ko").main.as_deref(),
        Some("./cmd/app")
    );
    assert_eq!(
        artifacts[3].bazel.as_ref().expect("bazel").target,
        "//app:image.tar"
    );
    let jib = artifacts[4].jib.as_ref().expect("jib");
    assert_eq!(jib.r#type.as_deref(), Some("maven"));
    assert!(JIB_ARTIFACT_TYPE_VALUES.contains(&"maven"));
    let kaniko = artifacts[5].kaniko.as_ref().expect("kaniko");
    assert_eq!(kaniko.skip_tls, Some(true));
    assert_eq!(kaniko.copy_max_retries, Some(3));
    assert_eq!(kaniko.env.as_ref().expect("env").len(), 1);
    let pack = artifacts[6].buildpacks.as_ref().expect("buildpacks");
    assert_eq!(pack.volumes.as_ref().expect("volumes")[0].target, "/cache");

    let tag = build.tag_policy.as_ref().expect("tagPolicy");
    let template = tag.custom_template.as_ref().expect("customTemplate");
    let components = template.components.as_ref().expect("components");
    assert_eq!(components.len(), 6);
    assert_eq!(
        components[0]
            .git_commit
            .as_ref()
            .expect("gitCommit")
            .variant
            .as_deref(),
        Some("AbbrevCommitSha")
    );
    assert!(components[2].sha256.is_some());
    assert!(components[4].input_digest.is_some());
    assert_eq!(build.local.as_ref().expect("local").push, Some(false));

    let manifests = cfg.manifests.as_ref().expect("manifests");
    let helm = manifests.helm.as_ref().expect("helm");
    let web = &helm.releases[0];
    assert_eq!(web.name, "web");
    let set_values: &FlatMap = web.set_values.as_ref().expect("setValues");
    assert_eq!(set_values.get("image.repository"), Some("docker-app"));
    assert_eq!(set_values.get("replicas"), Some("2"));
    assert_eq!(set_values.get("args[1]"), Some("b"));
    let set_files: &StringMap = web.set_files.as_ref().expect("setFiles");
    assert_eq!(set_files.get("config"), Some("files/config.json"));
    assert!(web.overrides.is_some());
    assert_eq!(
        manifests.transform.as_ref().expect("transform")[0].name,
        "set-labels"
    );
    assert_eq!(
        manifests.validate.as_ref().expect("validate")[0].name,
        "kubeval"
    );

    let deploy = cfg.deploy.as_ref().expect("deploy");
    assert_eq!(deploy.status_check, Some(true));
    assert_eq!(deploy.status_check_deadline_seconds, Some(120));
    let kubectl = deploy.kubectl.as_ref().expect("kubectl");
    assert_eq!(kubectl.default_namespace.as_deref(), Some("dev"));
    assert_eq!(
        deploy.kpt.as_ref().expect("kpt").inventory_id.as_deref(),
        Some("abc")
    );
    assert_eq!(
        deploy.logs.as_ref().expect("logs").prefix.as_deref(),
        Some("podAndContainer")
    );

    let pf = cfg.port_forward.as_ref().expect("portForward");
    assert_eq!(pf[0].port, Some(IntOrString::Int(8080)));
    assert_eq!(pf[0].local_port, Some(9000));
    assert_eq!(pf[1].port, Some(IntOrString::String("http".to_owned())));

    let selector = cfg.resource_selector.as_ref().expect("resourceSelector");
    assert_eq!(
        selector.allow.as_ref().expect("allow")[0].group_kind,
        "Foo.example.com"
    );

    let verify = cfg.verify.as_ref().expect("verify");
    assert_eq!(verify[0].container.image, "curlimages/curl");
    let actions = cfg.custom_actions.as_ref().expect("customActions");
    assert_eq!(actions[0].containers[0].name, "migrate");

    let profiles = cfg.profiles.as_ref().expect("profiles");
    assert_eq!(profiles.len(), 7);
    assert_eq!(profiles[0].name, "gcb");
    assert_eq!(
        profiles[0].activation.as_ref().expect("activation").len(),
        2
    );
    let patches = profiles[0].patches.as_ref().expect("patches");
    assert_eq!(patches[0].op.as_deref(), Some("replace"));
    assert_eq!(patches[3].op, None);
    assert_eq!(patches[3].path, "/deploy/kubectl/defaultNamespace");
    assert!(patches[2].value.is_none());
    let gcb = profiles[0]
        .build
        .as_ref()
        .and_then(|b| b.google_cloud_build.as_ref())
        .expect("googleCloudBuild");
    assert_eq!(gcb.disk_size_gb, Some(100));
    let cluster = profiles[1]
        .build
        .as_ref()
        .and_then(|b| b.cluster.as_ref())
        .expect("cluster");
    assert_eq!(cluster.http_proxy.as_deref(), Some("http://proxy:3128"));
    assert_eq!(
        profiles[5]
            .deploy
            .as_ref()
            .and_then(|d| d.docker.as_ref())
            .expect("docker deploy")
            .images,
        vec!["docker-app".to_owned()]
    );
    assert!(
        profiles[6]
            .deploy
            .as_ref()
            .and_then(|d| d.cloudrun.as_ref())
            .is_some()
    );
}

#[test]
fn rich_config_round_trips() {
    let cfg = parse(RICH);
    let text = serde_yaml::to_string(&cfg).expect("serialize");
    let again = parse(&text);
    assert_eq!(
        again, cfg,
        "re-parsed config differs; serialized form:\n{text}"
    );
    // Serializing twice gives the same text: nothing is lost or reordered.
    assert_eq!(
        serde_yaml::to_string(&again).expect("serialize again"),
        text
    );
}

#[test]
fn minimal_config_parses() {
    let cfg = parse("build:\n  artifacts:\n    - image: app\n");
    assert_eq!(cfg.api_version, None);
    assert_eq!(cfg.kind, None);
    let artifacts = cfg
        .build
        .and_then(|b| b.artifacts)
        .expect("artifacts present");
    assert_eq!(artifacts[0].image, "app");
    assert!(artifacts[0].docker.is_none());
}

#[test]
fn legacy_fields_parse() {
    let cfg = parse(
        "apiVersion: skaffold/v2beta29\n\
         kind: Config\n\
         build:\n  artifacts:\n    - image: app\n      kaniko:\n        noPush: true\n\
         deploy:\n  kubectl:\n    manifests: [k8s/*.yaml]\n",
    );
    let kaniko = cfg
        .build
        .as_ref()
        .and_then(|b| b.artifacts.as_ref())
        .and_then(|a| a[0].kaniko.as_ref())
        .expect("kaniko");
    assert_eq!(kaniko.no_push, Some(true));
    let kubectl = cfg
        .deploy
        .as_ref()
        .and_then(|d| d.kubectl.as_ref())
        .expect("kubectl");
    assert_eq!(kubectl.manifests, Some(vec!["k8s/*.yaml".to_owned()]));
}

#[test]
fn unknown_field_is_reported_with_location() {
    let text = "\
apiVersion: skaffold/v4beta14
kind: Config
build:
  artifacts:
    - image: app
      docker:
        dockerfile: Dockerfile
        dockerFile: Dockerfile.typo
";
    let err = serde_yaml::from_str::<SkaffoldConfig>(text).expect_err("unknown field");
    let msg = err.to_string();
    assert!(msg.contains("unknown field `dockerFile`"), "{msg}");
    assert!(
        msg.contains("dockerfile"),
        "expected fields are listed: {msg}"
    );
    let loc = err.location().expect("error has a location");
    assert_eq!(loc.line(), 8, "{msg}");
    assert_eq!(loc.column(), 9, "{msg}");
}

#[test]
fn missing_required_field_is_reported() {
    let text = "build:\n  artifacts:\n    - context: .\n      docker: {}\n";
    let err = serde_yaml::from_str::<SkaffoldConfig>(text).expect_err("missing image");
    let msg = err.to_string();
    assert!(msg.contains("missing field `image`"), "{msg}");
    assert_eq!(err.location().expect("location").line(), 3, "{msg}");

    let err = serde_yaml::from_str::<SkaffoldConfig>("profiles:\n  - build: {}\n")
        .expect_err("missing profile name");
    assert!(err.to_string().contains("missing field `name`"), "{err}");

    let err = serde_yaml::from_str::<SkaffoldConfig>(
        "profiles:\n  - name: p\n    patches:\n      - op: remove\n",
    )
    .expect_err("missing patch path");
    assert!(err.to_string().contains("missing field `path`"), "{err}");
}

#[test]
fn nested_string_map_value_is_rejected() {
    let text = "\
build:
  artifacts:
    - image: app
      docker:
        buildArgs:
          OK: x
          BAD:
            nested: map
";
    let err = serde_yaml::from_str::<SkaffoldConfig>(text).expect_err("nested build arg");
    let msg = err.to_string();
    assert!(
        msg.contains("expected a string value for key `BAD`"),
        "{msg}"
    );
    assert_eq!(err.location().expect("location").line(), 8, "{msg}");
}
