//! Tests across the seccomp module.
