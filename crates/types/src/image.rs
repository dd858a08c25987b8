//! Image references as Docker and Kubernetes spell them.

use std::fmt;
use std::str::FromStr;

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
///
/// Parsing is purely syntactic (no registry is contacted). The repository keeps the registry
/// host as written, so `localhost:5000/app` stays distinct from `app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageRefError {
    /// The reference was empty.
    #[error("image reference is empty")]
    Empty,
    /// The reference contained a character that image names cannot hold.
    #[error(
        "image reference `{reference}` contains `{character}`, which image names cannot contain"
    )]
    InvalidCharacter {
        /// The whole reference.
        reference: String,
        /// The offending character.
        character: char,
    },
    /// The repository part had upper-case letters (Docker refuses them).
    #[error("image repository `{repository}` must be lower-case")]
    UpperCase {
        /// The repository as written.
        repository: String,
    },
    /// A `@digest` part was not `algorithm:hex`.
    #[error(
        "image reference `{reference}` has a malformed digest; expected `@sha256:<64 hex digits>`"
    )]
    BadDigest {
        /// The whole reference.
        reference: String,
    },
}

impl ImageRef {
    /// The repository, including any registry host: `localhost:5000/go-webapp`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if one was written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The registry host when the first path component names one (contains `.` or `:`, or is
    /// `localhost`), as Docker decides it.
    pub fn registry(&self) -> Option<&str> {
        let (first, _) = self.repository.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: impl Into<String>) -> ImageRef {
        ImageRef {
            repository: self.repository.clone(),
            tag: Some(tag.into()),
            digest: None,
        }
    }

    /// The reference that names one image's content: the same repository tagged with the
    /// hex of `image_id` (`sha256:<hex>` or the bare hex), as Skaffold's `TagWithImageID`
    /// does for images it does not push. `None` when `image_id` is not `sha256:` and 64 hex
    /// digits.
    ///
    /// ```
    /// use skiff_types::image::ImageRef;
    ///
    /// let id = format!("sha256:{}", "ab".repeat(32));
    /// let unique = "localhost:5000/app:v1".parse::<ImageRef>()?.with_image_id(&id);
    /// assert_eq!(unique.map(|r| r.to_string()), Some(format!("localhost:5000/app:{}", "ab".repeat(32))));
    /// # Ok::<(), skiff_types::image::ImageRefError>(())
    /// ```
    pub fn with_image_id(&self, image_id: &str) -> Option<ImageRef> {
        let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
        is_image_id_hex(hex).then(|| self.with_tag(hex))
    }

    /// Whether the tag is the hex of an image ID (see [`ImageRef::with_image_id`]).
    pub fn has_image_id_tag(&self) -> bool {
        self.tag.as_deref().is_some_and(is_image_id_hex)
    }
}

/// 64 lower-case hex digits: the hex of a `sha256:` image ID.
fn is_image_id_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(reference: &str) -> Result<Self, Self::Err> {
        if reference.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if let Some(character) = reference.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
        }) {
            return Err(ImageRefError::InvalidCharacter {
                reference: reference.to_owned(),
                character,
            });
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
                    !algorithm.is_empty()
                        && !hex.is_empty()
                        && hex.chars().all(|c| c.is_ascii_hexdigit())
                });
                if !valid || name.is_empty() {
                    return Err(ImageRefError::BadDigest {
                        reference: reference.to_owned(),
                    });
                }
                (name, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        // A `:` after the last `/` separates the tag; one before it belongs to a registry port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if repository.is_empty() || tag.is_some_and(str::is_empty) {
            return Err(ImageRefError::InvalidCharacter {
                reference: reference.to_owned(),
                character: ':',
            });
        }
        let path = match repository.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                rest
            }
            _ => repository,
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ImageRefError::UpperCase {
                repository: repository.to_owned(),
            });
        }
        Ok(ImageRef {
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// An image a build produced: what the rest of the loop deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The artifact's image name as written in `skaffold.yaml` (`build.artifacts[].image`).
    pub image_name: String,
    /// The full reference to deploy: `name:tag`, or `name:tag@digest` once pushed.
    pub reference: ImageRef,
    /// The engine's image ID (`sha256:…`) when the image exists in a local engine.
    pub image_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn registry_port_is_not_a_tag() {
        let r = parse("localhost:5000/go-webapp");
        assert_eq!(r.repository(), "localhost:5000/go-webapp");
        assert_eq!(r.tag(), None);
        assert_eq!(r.registry(), Some("localhost:5000"));
    }

    #[test]
    fn tag_and_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("127.0.0.1:5000/team/app:v1.2@{d}"));
        assert_eq!(r.repository(), "127.0.0.1:5000/team/app");
        assert_eq!(r.tag(), Some("v1.2"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/app:v1.2@{d}"));
    }

    #[test]
    fn plain_names_have_no_registry() {
        assert_eq!(parse("nginx:1.25").registry(), None);
        assert_eq!(parse("library/nginx").registry(), None);
        assert_eq!(parse("gcr.io/p/app").registry(), Some("gcr.io"));
    }

    #[test]
    fn rejects_bad_references() {
        assert_eq!("".parse::<ImageRef>(), Err(ImageRefError::Empty));
        assert!(matches!(
            "My App".parse::<ImageRef>(),
            Err(ImageRefError::InvalidCharacter { character: ' ', .. })
        ));
        assert!(matches!(
            "App".parse::<ImageRef>(),
            Err(ImageRefError::UpperCase { .. })
        ));
        assert!(matches!(
            "app@sha256:xyz".parse::<ImageRef>(),
            Err(ImageRefError::BadDigest { .. })
        ));
        assert!("app:".parse::<ImageRef>().is_err());
    }

    #[test]
    fn image_id_tags_name_the_content() {
        let hex = "0123456789abcdef".repeat(4);
        let tagged = parse("localhost:5000/app:latest@sha256:abcd");
        let unique = tagged
            .with_image_id(&format!("sha256:{hex}"))
            .expect("64 hex digits are an image ID");
        assert_eq!(unique.to_string(), format!("localhost:5000/app:{hex}"));
        assert!(unique.has_image_id_tag());
        assert_eq!(tagged.with_image_id(&hex), Some(unique));
        assert!(!tagged.has_image_id_tag());
        assert_eq!(tagged.with_image_id("sha256:abcd"), None);
        assert_eq!(tagged.with_image_id(&hex.to_uppercase()), None);
    }

    #[test]
    fn with_tag_drops_digest() {
        let r = parse("app:old@sha256:abcd").with_tag("new");
        assert_eq!(r.to_string(), "app:new");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<ImageRef>();
        }

        #[test]
        fn display_round_trips(s in "[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,2}(:[a-zA-Z0-9._-]{1,8})?") {
            if let Ok(r) = s.parse::<ImageRef>() {
                proptest::prop_assert_eq!(r.to_string().parse::<ImageRef>(), Ok(r));
            }
        }
    }
}
