//! Data that flows between skiff's stages.
//!
//! This crate owns the vocabulary the stages share — image references, built images, change sets,
//! events and the reporter they are sent to, and the Go-template subset Skaffold uses in
//! `skaffold.yaml` — and nothing that performs I/O, so every stage crate can depend on it
//! without depending on another stage.
//!
//! ```
//! use skiff_types::image::ImageRef;
//!
//! let image: ImageRef = "localhost:5000/go-webapp:v1".parse().unwrap();
//! assert_eq!(image.repository(), "localhost:5000/go-webapp");
//! assert_eq!(image.tag(), Some("v1"));
//! ```

pub mod change;
pub mod error;
pub mod event;
pub mod image;
pub mod labels;
pub mod manifest;
pub mod template;
