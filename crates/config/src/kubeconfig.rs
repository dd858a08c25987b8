//! The one fact this crate needs from a kubeconfig: its current context (for `kubeContext`
//! profile activation). Anything more belongs to the deploy stage.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `current-context` of the kubeconfig `$KUBECONFIG` (its first entry) or
/// `$HOME/.kube/config` names, when it can be read.
pub(crate) fn current_context(env: &BTreeMap<String, String>) -> Option<String> {
    let path = match env.get("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => PathBuf::from(list.split(':').find(|p| !p.is_empty())?),
        None => PathBuf::from(env.get("HOME")?).join(".kube").join("config"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    value
        .get("current-context")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
