//! `skiff diagnose`'s sync section: for each artifact with `sync` rules, what the rules map to
//! (manual rules, the Dockerfile's inferred copies, hooks), and the seed article's advice: a
//! synced compiled source file changes nothing until the process restarts.

use std::path::{Path, PathBuf};

use skiff_config::EffectiveConfig;
use skiff_runner::sync::{ArtifactSync, SyncSettings, describe, synced_files};

/// Extensions of sources that are compiled into the binary rather than read at run time.
const COMPILED: &[&str] = &[
    "go", "c", "h", "cc", "cpp", "hpp", "rs", "java", "kt", "scala", "swift", "cs", "zig",
];

/// Most files looked at per context when searching for synced compiled sources.
const WALK_LIMIT: usize = 5000;

/// Lines for the artifacts of `config` (rules resolved with every loaded config, for
/// `requires`), each indented by four spaces under its artifact; empty when none has sync rules
/// or their contexts do not exist here (the summary lists the rules then).
pub fn lines(settings: Option<&SyncSettings>, config: &EffectiveConfig) -> Vec<String> {
    let Some(settings) = settings else {
        return Vec::new();
    };
    let images: Vec<&str> = config
        .config
        .build
        .iter()
        .flat_map(|b| b.artifacts.iter().flatten())
        .map(|a| a.image.as_str())
        .collect();
    let mut lines = Vec::new();
    for artifact in settings
        .artifacts
        .iter()
        .filter(|a| images.contains(&a.image.as_str()) && a.context.is_dir())
    {
        lines.push(format!("  sync {}:", artifact.image));
        match describe(artifact) {
            Ok(described) => lines.extend(described.into_iter().map(|l| format!("    {l}"))),
            Err(error) => lines.push(format!("    cannot infer from the Dockerfile: {error}")),
        }
        if let Some(by) = artifact.required_by.first() {
            lines.push(format!(
                "    note: required by {by}, so changes rebuild instead of syncing"
            ));
        }
        lines.extend(compiled_advice(artifact));
    }
    lines
}

/// The advice when the rules would sync compiled sources.
fn compiled_advice(artifact: &ArtifactSync) -> Vec<String> {
    let mut sources = Vec::new();
    walk(&artifact.context, Path::new(""), &mut sources);
    let mut synced: Vec<PathBuf> = synced_files(artifact, &sources);
    // A rule written for compiled sources (`**/*.go`) says so even before such files exist.
    for rule in &artifact.rules.manual {
        let compiled = Path::new(&rule.src)
            .extension()
            .is_some_and(|e| COMPILED.contains(&&*e.to_string_lossy()));
        if compiled && synced.is_empty() {
            synced.push(PathBuf::from(&rule.src));
        }
    }
    let Some(first) = synced.first() else {
        return Vec::new();
    };
    let more = match synced.len() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let restart = if artifact.rules.hooks.after.is_empty() {
        "add a sync.hooks.after container command that restarts it, or narrow the rules so \
         these files rebuild"
    } else {
        "make sure a sync.hooks.after command restarts it"
    };
    vec![format!(
        "    note: {}{more} is synced, but a compiled source changes nothing until the process \
         is rebuilt and restarted — {restart}",
        first.display()
    )]
}

/// Compiled source files under `dir` (relative to the context), skipping hidden and build
/// directories, at most [`WALK_LIMIT`] entries.
fn walk(context: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(context.join(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if found.len() >= WALK_LIMIT {
            return;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let rel = dir.join(&*name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && !matches!(&*name, "target" | "node_modules" | "vendor") {
                walk(context, &rel, found);
            }
        } else if kind.is_file()
            && rel
                .extension()
                .is_some_and(|e| COMPILED.contains(&&*e.to_string_lossy()))
        {
            found.push(rel);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_config::schema::SkaffoldConfig;

    #[test]
    fn lists_mappings_and_warns_about_compiled_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::write(root.join("www/msg.txt"), "hi").unwrap();
        std::fs::write(root.join("main.c"), "int main(void){return 0;}").unwrap();
        std::fs::write(
            root.join("Dockerfile"),
            "FROM scratch\nCOPY www /srv/www\nCOPY main.c /src/main.c\n",
        )
        .unwrap();
        let yaml = "\
apiVersion: skaffold/v4beta14
kind: Config
build:
  artifacts:
    - image: web
      docker: {}
      sync:
        manual:
          - src: 'www/**'
            dest: /srv/www
            strip: www/
    - image: app
      docker: {}
      sync: {}
";
        let config = EffectiveConfig {
            file: root.join("skaffold.yaml"),
            active_profiles: Vec::new(),
            config: serde_yaml::from_str::<SkaffoldConfig>(yaml).unwrap(),
            unresolved_templates: Vec::new(),
        };
        let configs = vec![config];
        let settings = skiff_runner::sync::sync_settings(&configs).unwrap();
        let out = lines(Some(&settings), &configs[0]);
        assert_eq!(out[0], "  sync web:");
        assert_eq!(out[1], "    www/** → /srv/www (manual, strip www/)");
        assert_eq!(out[2], "  sync app:");
        assert_eq!(out[3], "    infer **/*");
        assert!(
            out.contains(
                &"    www/msg.txt → /srv/www/msg.txt (inferred from the Dockerfile)".to_owned()
            ),
            "{out:#?}"
        );
        assert!(
            out.contains(&"    main.c → /src/main.c (inferred from the Dockerfile)".to_owned()),
            "{out:#?}"
        );
        let note = out.last().unwrap();
        assert!(
            note.starts_with("    note: main.c is synced, but a compiled source changes nothing until the process is rebuilt and restarted"),
            "{note}"
        );
        // The manual-only artifact syncs no compiled source: no note for it.
        assert_eq!(out.iter().filter(|l| l.contains("note:")).count(), 1);
    }
}
