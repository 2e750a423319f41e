//! berth's error kinds. Exit codes and "a missing container is fine here"
//! decisions are made from these, never from an error's text: messages are
//! for people and may be reworded, kinds are not.
//!
//! Errors travel as `anyhow::Error` with context added on the way up;
//! [`kind_of`] finds the typed error anywhere in that chain.

use serde::{Deserialize, Serialize};

/// Why a child (stage 1 or init) failed, as it reports it to the runtime
/// over the sync socket (`Msg::Error`), so the runtime can choose an exit
/// code without reading the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildFailure {
    /// A step failed (mount, device, rlimit, …).
    #[default]
    Step,
    /// `process.args[0]` is not in the container (not found in `$PATH`, or
    /// the path does not exist).
    ProgramNotFound,
    /// `process.args[0]` exists but cannot be executed.
    ProgramNotExecutable,
}

/// The errors whose kind matters to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container with this id (containerd's shim and berth-worker read
    /// "does not exist" from stderr, so the wording stays).
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// The id is taken.
    #[error("container with id {0:?} already exists")]
    AlreadyExists(String),
    /// A host operation failed with this errno; the message names the
    /// operation and its operand. Callers that retry or tolerate a
    /// particular errno (a vanished cgroup parent: ENOENT) match the errno,
    /// never the text.
    #[error("{msg}")]
    Os { msg: String, errno: i32 },
    /// Stage 1 or init reported a failed step.
    #[error("{msg}")]
    Child {
        msg: String,
        /// The step's errno, 0 when the failure had none.
        errno: i32,
        kind: ChildFailure,
    },
}

/// The first typed berth error in `e`'s chain, if any.
pub fn kind_of(e: &anyhow::Error) -> Option<&Error> {
    e.chain().find_map(|c| c.downcast_ref::<Error>())
}

/// The errno behind `e`: from a typed [`Error::Os`] or [`Error::Child`],
/// or an `io::Error`, anywhere in its chain.
pub fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|c| {
        if let Some(err) = c.downcast_ref::<Error>() {
            return match err {
                Error::Os { errno, .. } | Error::Child { errno, .. } if *errno != 0 => Some(*errno),
                _ => None,
            };
        }
        c.downcast_ref::<std::io::Error>()
            .and_then(crate::sys::errno)
    })
}

/// An [`Error::Os`] for `e`, with `msg` as its whole text.
pub fn os(msg: String, e: &std::io::Error) -> anyhow::Error {
    Error::Os {
        msg,
        errno: crate::sys::errno(e).unwrap_or(0),
    }
    .into()
}

/// Does `e` say the container does not exist?
pub fn is_not_found(e: &anyhow::Error) -> bool {
    matches!(kind_of(e), Some(Error::NotFound(_)))
}

/// The exit code of a failed `run`/`create` when the container's program
/// could not be started: the shell's convention (127 not found, 126 not
/// executable), which berth-worker passes on like `fly execute` does.
/// Every other failure is 1.
pub fn start_exit_code(e: &anyhow::Error) -> i32 {
    match kind_of(e) {
        Some(Error::Child {
            kind: ChildFailure::ProgramNotFound,
            ..
        }) => 127,
        Some(Error::Child {
            kind: ChildFailure::ProgramNotExecutable,
            ..
        }) => 126,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(kind: ChildFailure) -> anyhow::Error {
        anyhow::Error::new(Error::Child {
            msg: "exec: \"x\": whatever the text says".into(),
            errno: libc::ENOENT,
            kind,
        })
    }

    #[test]
    fn kinds_survive_context() {
        let e = child(ChildFailure::ProgramNotFound)
            .context("creating")
            .context("run");
        assert_eq!(start_exit_code(&e), 127);
        assert_eq!(
            start_exit_code(&child(ChildFailure::ProgramNotExecutable).context("x")),
            126
        );
        // The text does not matter, only the kind.
        assert_eq!(start_exit_code(&child(ChildFailure::Step)), 1);
        assert_eq!(
            start_exit_code(&anyhow::anyhow!("executable file not found in $PATH")),
            1
        );
        let nf = anyhow::Error::new(Error::NotFound("c".into())).context("delete");
        assert!(is_not_found(&nf));
        assert!(!is_not_found(&anyhow::anyhow!(
            "container \"c\" does not exist"
        )));
    }

    #[test]
    fn errno_survives_context_and_wording() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = os("creating cgroup /x: whatever the host says".into(), &io).context("create");
        assert_eq!(errno_of(&e), Some(libc::ENOENT));
        assert_eq!(
            e.root_cause().to_string(),
            "creating cgroup /x: whatever the host says"
        );
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES)).context("x");
        assert_eq!(errno_of(&e), Some(libc::EACCES));
        assert_eq!(
            errno_of(&anyhow::anyhow!("No such file or directory")),
            None
        );
    }

    #[test]
    fn child_failure_wire_format() {
        // Old children (no kind field) still parse: serde default.
        let k: ChildFailure = serde_json::from_str("\"program_not_found\"").unwrap();
        assert_eq!(k, ChildFailure::ProgramNotFound);
        assert_eq!(ChildFailure::default(), ChildFailure::Step);
    }
}
