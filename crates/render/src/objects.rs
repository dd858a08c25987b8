//! From a YAML stream to Kubernetes objects: documents split and read, empty ones dropped,
//! `List`s flattened, each object checked for `apiVersion` and `kind`.

use crate::RenderError;
use crate::yaml::{self, Node, RawDocument};

/// One object read from a stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object<'a> {
    /// The object (a mapping).
    pub node: Node<'a>,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
}

/// Reads one document of the stream `origin` into `out`.
pub(crate) fn read_document<'a>(
    origin: &str,
    document: &RawDocument<'a>,
    out: &mut Vec<Object<'a>>,
) -> Result<(), RenderError> {
    let node = yaml::parse_document(document).map_err(|error| RenderError::Yaml {
        origin: origin.to_owned(),
        document: document.index,
        line: error.line,
        column: error.column,
        message: error.message,
    })?;
    match node {
        Some(node) => collect(node, origin, document, None, out),
        None => Ok(()),
    }
}

/// Every object of a whole stream, in order.
#[cfg(test)]
pub(crate) fn read_objects<'a>(
    origin: &str,
    text: &'a str,
) -> Result<Vec<Object<'a>>, RenderError> {
    let mut out = Vec::new();
    for document in yaml::split_documents(text) {
        read_document(origin, &document, &mut out)?;
    }
    Ok(out)
}

fn collect<'a>(
    node: Node<'a>,
    origin: &str,
    document: &RawDocument<'_>,
    item: Option<usize>,
    out: &mut Vec<Object<'a>>,
) -> Result<(), RenderError> {
    match &node {
        Node::Map(entries) if entries.is_empty() => return Ok(()),
        Node::Map(_) => {}
        other => {
            return Err(RenderError::NotAnObject {
                origin: origin.to_owned(),
                document: document.index,
                line: document.line,
                item,
                found: other.describe().to_owned(),
            });
        }
    }
    let field = |name: &'static str| -> Result<String, RenderError> {
        match node
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        {
            Some(value) => Ok(value.into_owned()),
            None => Err(RenderError::NotKubernetesObject {
                origin: origin.to_owned(),
                document: document.index,
                line: document.line,
                item,
                missing: name,
                name: node
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .map(|n| n.into_owned()),
            }),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    if kind.ends_with("List") {
        if let Some(Node::Seq(_)) = node.get("items") {
            let Node::Map(entries) = node else {
                return Ok(());
            };
            for (key, value) in entries {
                if key.text == "items" {
                    if let Node::Seq(items) = value {
                        for (i, item_node) in items.into_iter().enumerate() {
                            collect(item_node, origin, document, Some(i + 1), out)?;
                        }
                    }
                }
            }
            return Ok(());
        }
    }
    out.push(Object {
        node,
        api_version,
        kind,
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        read_objects("test.yaml", text)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|o| o.kind)
            .collect()
    }

    #[test]
    fn documents_lists_and_empty_documents() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n# only a comment\n---\n{}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: b}\n- apiVersion: apps/v1\n  kind: DeploymentList\n  items:\n  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: c}}\n...\n";
        assert_eq!(kinds(text), ["ConfigMap", "Service", "Deployment"]);
    }

    #[test]
    fn a_kind_ending_in_list_without_items_is_an_object() {
        assert_eq!(
            kinds("apiVersion: example.com/v1\nkind: AllowList\nspec: {}\n"),
            ["AllowList"]
        );
    }

    #[test]
    fn not_objects_are_named() {
        let error = read_objects("k8s/a.yaml", "apiVersion: v1\nkind: A\n---\n- a\n- b\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("k8s/a.yaml:4"), "{error}");
        assert!(error.contains("document 2"), "{error}");
        assert!(error.contains("a list"), "{error}");

        let error = read_objects("k8s/a.yaml", "kind: Service\nmetadata:\n  name: web\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`apiVersion`"), "{error}");
        assert!(error.contains("web"), "{error}");

        let error = read_objects("x", "apiVersion: v1\nkind: List\nitems:\n- 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("item 1"), "{error}");
    }

    #[test]
    fn bad_yaml_names_file_document_and_line() {
        let text =
            "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: [unclosed\n";
        let error = read_objects("k8s/bad.yaml", text).unwrap_err();
        let RenderError::Yaml {
            origin,
            document,
            line,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(origin, "k8s/bad.yaml");
        assert_eq!(*document, 2);
        assert!(line.is_some_and(|l| l >= 7), "{error}");
    }
}
