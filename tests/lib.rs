//! End-to-end tests of the `skiff` binary live in this package's `tests/` directory.
