//! berth: a small, fast OCI container runtime.
//!
//! The library is organised around one idea — *plan, then execute*:
//! [`spec`] reads `config.json`, [`plan`] turns it into an ordered list of
//! steps (pure, printable with `berth plan`), [`container`] carries out the
//! host side of those steps and [`init`] the steps inside the sandbox.

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod hooks;
pub mod init;
pub mod log;
pub mod plan;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
