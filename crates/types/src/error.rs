//! One wording for an error and its causes, for messages that must carry the whole story (a
//! connection refused under three layers of client errors) on one line.

/// `error` and its sources, `: `-separated, leaving out a source whose message the text so far
/// already contains (clients often repeat their cause in their own message).
///
/// ```
/// use skiff_types::error::chain;
///
/// let io = std::io::Error::other("connection refused");
/// let wrapped = std::io::Error::other(io);
/// assert_eq!(chain(&wrapped), "connection refused");
/// ```
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = next.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    #[test]
    fn causes_follow_once() {
        let error = Layer {
            text: "client error (Connect)",
            source: Some(Box::new(Layer {
                text: "tcp connect error",
                source: Some(Box::new(Layer {
                    text: "tcp connect error",
                    source: None,
                })),
            })),
        };
        assert_eq!(chain(&error), "client error (Connect): tcp connect error");
    }
}
