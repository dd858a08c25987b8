//! Loading: from the root file, through `requires`, to the effective configs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::document::{Document, LATEST_API_VERSION, read_file};
use crate::error::{ConfigError, Location, Warning};
use crate::locate::{Step, locate};
use crate::profiles::{ActivationContext, ProfileRequest, active_profiles, apply_profiles};
use crate::schema::{RenderConfig, SkaffoldConfig};
use crate::suggest::tree_error;
use crate::{defaults, kubeconfig, templating, validate};

/// What to load, and the facts profile activation and templating depend on. The caller (the
/// CLI, or an embedding tool) gathers them; this crate reads no environment of its own.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f`: the configuration file. `None`: `skaffold.yaml`, then `skaffold.yml`, in
    /// `working_dir`.
    pub config_file: Option<PathBuf>,
    /// The directory relative paths are resolved against.
    pub working_dir: PathBuf,
    /// `-p`: profiles to activate; `-NAME` deactivates. Comma-separated entries are split.
    pub profiles: Vec<String>,
    /// `-m`: configs to keep, by `metadata.name` (their `requires` come along).
    pub modules: Vec<String>,
    /// `--kube-context`, for `kubeContext` activation. `None`: the config's
    /// `deploy.kubeContext`, else the kubeconfig's current context.
    pub kube_context: Option<String>,
    /// The command being run (`dev`, `run`, `build`, `diagnose`, …), for `command` activation.
    pub command: String,
    /// Environment variables, for `env` activation, templates and the kubeconfig location.
    pub env: BTreeMap<String, String>,
}

/// One configuration after profiles, `requires`, templates and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveConfig {
    /// The file it was read from.
    pub file: PathBuf,
    /// The profiles that were applied, in order.
    pub active_profiles: Vec<String>,
    /// The configuration: `profiles` removed, defaults filled in, templates that need only
    /// environment variables rendered (those that use `IMAGE_*` stay for the build stages).
    pub config: SkaffoldConfig,
    /// Templated fields left unexpanded because a variable they need is not set, where
    /// Skaffold fails only when it uses the field: the stage that uses one reports it.
    pub unresolved_templates: Vec<crate::templating::UnresolvedTemplate>,
}

impl EffectiveConfig {
    /// The error of the first unexpanded template in a field under one of `prefixes`
    /// (`manifests.helm`, `build.tagPolicy`, …), for the stage that uses those fields.
    pub fn unresolved_under(&self, prefixes: &[&str]) -> Option<ConfigError> {
        self.unresolved_templates
            .iter()
            .find(|t| prefixes.iter().any(|p| t.field.starts_with(p)))
            .map(crate::templating::UnresolvedTemplate::to_error)
    }

    /// `metadata.name`, if set.
    pub fn name(&self) -> Option<&str> {
        self.config.metadata.as_ref()?.name.as_deref()
    }

    /// The directory the config's relative paths are relative to.
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

/// Everything `skaffold.yaml` resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The root file.
    pub file: PathBuf,
    /// The configs in dependency order: a required config comes before the one that requires it.
    pub configs: Vec<EffectiveConfig>,
    /// Things to fix that did not stop loading.
    pub warnings: Vec<Warning>,
}

/// The configuration file `options` names: `-f`, else `skaffold.yaml` (or `skaffold.yml`) in
/// the working directory.
pub fn config_file(options: &LoadOptions) -> Result<PathBuf, ConfigError> {
    match &options.config_file {
        Some(file) => Ok(options.working_dir.join(file)),
        None => ["skaffold.yaml", "skaffold.yml"]
            .iter()
            .map(|name| options.working_dir.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| ConfigError::NotFound {
                dir: options.working_dir.clone(),
            }),
    }
}

/// Load, resolve, default and validate the configuration `options` names.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let file = config_file(options)?;
    let mut loader = Loader {
        options,
        request: ProfileRequest::parse(&options.profiles),
        files: BTreeMap::new(),
        loaded: Vec::new(),
        warnings: Vec::new(),
        kube_context: None,
        unset_variables: std::collections::BTreeSet::new(),
    };
    loader.load_file(&file, None, &[], &mut Vec::new())?;

    let mut configs: Vec<Entry> = loader.loaded;
    let defined: Vec<String> = loader
        .files
        .values()
        .flatten()
        .flat_map(|d| d.config.profiles.iter().flatten().map(|p| p.name.clone()))
        .collect();
    for name in loader
        .request
        .enabled
        .iter()
        .chain(&loader.request.disabled)
    {
        if !defined.contains(name) {
            let mut available = defined.clone();
            available.sort();
            available.dedup();
            return Err(ConfigError::UnknownProfile {
                name: name.clone(),
                file: file.clone(),
                available,
            });
        }
    }
    if !options.modules.is_empty() {
        configs = select_modules(configs, &options.modules, &file)?;
    }
    let configs: Vec<EffectiveConfig> = configs.into_iter().map(|e| e.config).collect();
    validate::across_configs(&configs)?;
    Ok(Loaded {
        file,
        configs,
        warnings: loader.warnings,
    })
}

/// A loaded config and the keys of the configs it requires.
struct Entry {
    key: (PathBuf, usize),
    requires: Vec<(PathBuf, usize)>,
    config: EffectiveConfig,
}

struct Loader<'a> {
    options: &'a LoadOptions,
    request: ProfileRequest,
    files: BTreeMap<PathBuf, Vec<Document>>,
    loaded: Vec<Entry>,
    warnings: Vec<Warning>,
    kube_context: Option<Option<String>>,
    /// Variables already warned about as not set: one warning each.
    unset_variables: std::collections::BTreeSet<String>,
}

impl Loader<'_> {
    fn documents(&mut self, file: &Path) -> Result<Vec<Document>, ConfigError> {
        if let Some(documents) = self.files.get(file) {
            return Ok(documents.clone());
        }
        let documents = read_file(file)?;
        for document in &documents {
            let Some(version) = &document.upgraded_from else {
                continue;
            };
            self.warnings.push(Warning {
                location: Some(locate(document, &[Step::Key("apiVersion")])),
                message: format!(
                    "config version {version} is out of date: read as {} by upgrading it in memory, as Skaffold does; `skiff fix --overwrite` writes the upgraded file",
                    crate::upgrade::UPGRADED_TO
                ),
            });
            for note in &document.upgrade_notes {
                let steps = note
                    .field
                    .as_deref()
                    .map(crate::locate::field_steps)
                    .unwrap_or_default();
                self.warnings.push(Warning {
                    location: Some(locate(document, &steps)),
                    message: note.message.clone(),
                });
            }
        }
        self.files.insert(file.to_path_buf(), documents.clone());
        Ok(documents)
    }

    /// Load the configs of `file` (those named in `only`, or all), each after the configs it
    /// requires; returns their keys.
    fn load_file(
        &mut self,
        file: &Path,
        only: Option<(&[String], Location)>,
        parent_profiles: &[(String, Vec<String>)],
        chain: &mut Vec<(PathBuf, usize, String)>,
    ) -> Result<Vec<(PathBuf, usize)>, ConfigError> {
        let file = std::fs::canonicalize(file).map_err(|source| ConfigError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let documents = self.documents(&file)?;
        let selected: Vec<&Document> = match &only {
            None => documents.iter().collect(),
            Some((names, location)) => {
                let mut selected = Vec::new();
                for name in *names {
                    let document = documents
                        .iter()
                        .find(|d| d.name() == Some(name.as_str()))
                        .ok_or_else(|| ConfigError::Requires {
                            location: location.clone(),
                            message: format!(
                                "`requires` names config `{name}`, which {} does not define{}",
                                file.display(),
                                names_available(&documents)
                            ),
                        })?;
                    selected.push(document);
                }
                selected
            }
        };
        let mut keys = Vec::new();
        for document in selected {
            keys.push(self.load_document(document, parent_profiles, chain)?);
        }
        Ok(keys)
    }

    fn load_document(
        &mut self,
        document: &Document,
        parent_profiles: &[(String, Vec<String>)],
        chain: &mut Vec<(PathBuf, usize, String)>,
    ) -> Result<(PathBuf, usize), ConfigError> {
        let key = (document.file.clone(), document.index);
        if chain.iter().any(|(f, i, _)| (f, *i) == (&key.0, key.1)) {
            let mut names: Vec<String> = chain
                .iter()
                .skip_while(|(f, i, _)| (f, *i) != (&key.0, key.1))
                .map(|(_, _, label)| label.clone())
                .collect();
            names.push(document.label());
            return Err(ConfigError::Cycle { chain: names });
        }
        if self.loaded.iter().any(|e| e.key == key) {
            return Ok(key);
        }
        let required_by_parent: Vec<String> = parent_profiles
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let kube_context = self.kube_context(document);
        let context = ActivationContext {
            env: &self.options.env,
            kube_context: kube_context.as_deref(),
            command: &self.options.command,
        };
        let active = active_profiles(document, &self.request, &required_by_parent, &context)?;
        let tree = apply_profiles(document, &active)?;
        let mut config: SkaffoldConfig = serde_yaml::from_value(tree).map_err(|error| {
            let located = tree_error(None, &error);
            let location = match &located {
                ConfigError::Invalid {
                    field: Some(field), ..
                } => {
                    let steps = parse_field_path(field);
                    let steps: Vec<Step<'_>> = steps.iter().map(|s| s.as_step()).collect();
                    locate(document, &steps)
                }
                _ => locate(document, &[]),
            };
            match located {
                ConfigError::Invalid {
                    field,
                    message,
                    help,
                    ..
                } => ConfigError::Invalid {
                    location: Some(location),
                    field,
                    message: if active.is_empty() {
                        message
                    } else {
                        format!("{message} (after applying profiles {})", active.join(", "))
                    },
                    help,
                },
                other => other,
            }
        })?;
        config.api_version = Some(LATEST_API_VERSION.to_owned());
        self.migrate_legacy(document, &mut config);
        let rendered =
            templating::render_env_templates(&document.file, &mut config, &self.options.env)?;
        self.warn_unset(document, rendered.unset);
        for unresolved in &rendered.unresolved {
            self.warnings.push(Warning {
                location: Some(locate(
                    document,
                    &crate::locate::field_steps(&unresolved.field),
                )),
                message: format!(
                    "{}: {}; Skaffold fails where it uses this field, and so will skiff",
                    unresolved.field, unresolved.error
                ),
            });
        }
        defaults::apply(&mut config);
        validate::config(document, &config)?;
        crate::support::check(document, &config, &self.options.command, &mut self.warnings)?;

        chain.push((key.0.clone(), key.1, document.label()));
        let mut requires = Vec::new();
        for (index, dependency) in config
            .requires
            .clone()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let location = locate(document, &[Step::Key("requires"), Step::Index(index)]);
            if dependency.git.is_some() || dependency.google_cloud_storage.is_some() {
                return Err(ConfigError::Unsupported {
                    location: Some(location),
                    what: "a remote `requires` (git or googleCloudStorage)".to_owned(),
                });
            }
            let target = match &dependency.path {
                Some(path) => {
                    let path = document.file.parent().unwrap_or(Path::new(".")).join(path);
                    if path.is_dir() {
                        ["skaffold.yaml", "skaffold.yml"]
                            .iter()
                            .map(|n| path.join(n))
                            .find(|p| p.is_file())
                            .ok_or_else(|| ConfigError::Requires {
                                location: location.clone(),
                                message: format!(
                                    "`requires.path` {} holds no skaffold.yaml",
                                    path.display()
                                ),
                            })?
                    } else if path.is_file() {
                        path
                    } else {
                        return Err(ConfigError::Requires {
                            location,
                            message: format!("`requires.path` {} does not exist", path.display()),
                        });
                    }
                }
                None => document.file.clone(),
            };
            let profiles: Vec<(String, Vec<String>)> = dependency
                .active_profiles
                .iter()
                .flatten()
                .filter(|p| {
                    p.activated_by
                        .as_ref()
                        .is_none_or(|by| by.is_empty() || by.iter().any(|b| active.contains(b)))
                })
                .map(|p| (p.name.clone(), p.activated_by.clone().unwrap_or_default()))
                .collect();
            let names = dependency.configs.clone().filter(|c| !c.is_empty());
            if names.is_none() && dependency.path.is_none() {
                return Err(ConfigError::Requires {
                    location,
                    message: "a `requires` entry needs `path`, `configs`, or both".to_owned(),
                });
            }
            let only = names.as_deref().map(|n| (n, location.clone()));
            requires.extend(self.load_file(&target, only, &profiles, chain)?);
        }
        chain.pop();
        self.loaded.push(Entry {
            key: key.clone(),
            requires,
            config: EffectiveConfig {
                file: document.file.clone(),
                active_profiles: active,
                config,
                unresolved_templates: rendered.unresolved,
            },
        });
        Ok(key)
    }

    /// `deploy.kubectl.manifests` is where manifests lived before `skaffold/v3`; move them.
    fn migrate_legacy(&mut self, document: &Document, config: &mut SkaffoldConfig) {
        let legacy = config
            .deploy
            .as_mut()
            .and_then(|d| d.kubectl.as_mut())
            .and_then(|k| k.manifests.take());
        let Some(legacy) = legacy else { return };
        let manifests = config.manifests.get_or_insert_with(RenderConfig::default);
        manifests
            .raw_yaml
            .get_or_insert_with(Vec::new)
            .extend(legacy);
        self.warnings.push(Warning {
            location: Some(locate(
                document,
                &[Step::Key("deploy"), Step::Key("kubectl"), Step::Key("manifests")],
            )),
            message: "`deploy.kubectl.manifests` is the pre-v3 spelling; write the list under `manifests.rawYaml` (read as such)".to_owned(),
        });
    }

    fn warn_unset(&mut self, document: &Document, unset: Vec<templating::UnsetVariable>) {
        for variable in unset {
            if !self.unset_variables.insert(variable.name.clone()) {
                continue;
            }
            let names: Vec<&str> = self.options.env.keys().map(String::as_str).collect();
            let close = crate::suggest::suggestion(&variable.name, &names, "variable")
                .filter(|s| s.starts_with("did you mean"))
                .map(|s| format!("{s} "))
                .unwrap_or_default();
            let steps = crate::locate::field_steps(&variable.field);
            self.warnings.push(Warning {
                location: Some(locate(document, &steps)),
                message: format!(
                    "{}: environment variable `{name}` is not set, so the template gives `<no value>` (as in Skaffold); {close}set it, or give a default: {{{{default \"value\" .{name}}}}}",
                    variable.field,
                    name = variable.name,
                ),
            });
        }
    }

    fn kube_context(&mut self, document: &Document) -> Option<String> {
        if let Some(context) = &self.options.kube_context {
            return Some(context.clone());
        }
        if let Some(context) = document
            .config
            .deploy
            .as_ref()
            .and_then(|d| d.kube_context.clone())
        {
            return Some(context);
        }
        let needed = document
            .config
            .profiles
            .iter()
            .flatten()
            .flat_map(|p| p.activation.iter().flatten())
            .any(|a| a.kube_context.is_some());
        if !needed {
            return None;
        }
        self.kube_context
            .get_or_insert_with(|| kubeconfig::current_context(&self.options.env))
            .clone()
    }
}

fn names_available(documents: &[Document]) -> String {
    let names: Vec<&str> = documents.iter().filter_map(Document::name).collect();
    if names.is_empty() {
        " (its configs have no `metadata.name`)".to_owned()
    } else {
        format!("; it defines {}", names.join(", "))
    }
}

/// Keep the named configs and everything they require, in the original order.
fn select_modules(
    configs: Vec<Entry>,
    modules: &[String],
    file: &Path,
) -> Result<Vec<Entry>, ConfigError> {
    let mut keep: Vec<(PathBuf, usize)> = Vec::new();
    for module in modules.iter().flat_map(|m| m.split(',')).map(str::trim) {
        let entry = configs
            .iter()
            .find(|e| e.config.name() == Some(module))
            .ok_or_else(|| ConfigError::UnknownModule {
                name: module.to_owned(),
                file: file.to_path_buf(),
                available: configs
                    .iter()
                    .filter_map(|e| e.config.name().map(str::to_owned))
                    .collect(),
            })?;
        let mut stack = vec![entry.key.clone()];
        while let Some(key) = stack.pop() {
            if keep.contains(&key) {
                continue;
            }
            if let Some(e) = configs.iter().find(|e| e.key == key) {
                stack.extend(e.requires.iter().cloned());
            }
            keep.push(key);
        }
    }
    Ok(configs
        .into_iter()
        .filter(|e| keep.contains(&e.key))
        .collect())
}

/// `build.artifacts[0].docker` → keys and indices.
enum OwnedStep {
    Key(String),
    Index(usize),
}

impl OwnedStep {
    fn as_step(&self) -> Step<'_> {
        match self {
            OwnedStep::Key(k) => Step::Key(k),
            OwnedStep::Index(i) => Step::Index(*i),
        }
    }
}

fn parse_field_path(path: &str) -> Vec<OwnedStep> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                steps.push(OwnedStep::Key(rest[..open].to_owned()));
            }
            rest = &rest[open..];
            while let Some(inner) = rest.strip_prefix('[') {
                let Some((index, after)) = inner.split_once(']') else {
                    break;
                };
                if let Ok(i) = index.parse() {
                    steps.push(OwnedStep::Index(i));
                }
                rest = after;
            }
        } else if !rest.is_empty() {
            steps.push(OwnedStep::Key(rest.to_owned()));
        }
    }
    steps
}
