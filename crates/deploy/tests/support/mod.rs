//! Helpers shared by the integration tests of `skiff-deploy`.

#![allow(dead_code)]

pub mod kube;
