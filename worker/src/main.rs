//! berth-worker: run Concourse-style CI tasks in berth containers.
pub mod task;
fn main() {}
