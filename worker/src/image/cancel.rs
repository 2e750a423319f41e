//! Cancelling a pull or an import from the first Ctrl-C.
//!
//! Downloads and unpacking are blocking code (ureq, tar) run on tokio's blocking pool; the
//! async side watches the signals and sets a [`Cancel`]. Every read of a blob (from the network
//! or from a file being unpacked) goes through a [`CancelReader`], so the blocking side stops at
//! its next read, returns an error and the usual error path removes its temporary directory.
//! A second signal does not wait for that: [`run_cancellable`] exits at once with 128+signal
//! (what a shell reports for a process killed by it); `gc` sweeps what that leaves.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use tokio::signal::unix::Signal;

/// A cancellation flag shared between the signal watcher and the blocking work.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

/// The error a cancelled read returns; callers find it in the chain with
/// [`Cancel::is_cancelled_error`].
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// Ask the blocking work to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Has a stop been asked for?
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// `Err(Cancelled)` once a stop has been asked for.
    pub fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(Cancelled.into())
        } else {
            Ok(())
        }
    }
    /// Wrap a reader so that it fails once a stop has been asked for.
    pub fn reader<R>(&self, inner: R) -> CancelReader<R> {
        CancelReader {
            inner,
            cancel: self.clone(),
        }
    }
}

/// A reader that fails with [`Cancelled`] after [`Cancel::set`]. The error kind is `Other`,
/// not `Interrupted`: `read_exact` and `io::copy` retry `Interrupted`.
pub struct CancelReader<R> {
    inner: R,
    cancel: Cancel,
}

impl<R: Read> Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_set() {
            return Err(io::Error::other(Cancelled));
        }
        self.inner.read(buf)
    }
}

/// How [`run_cancellable`] ended.
pub enum Ended<T> {
    /// The work finished (successfully or not) without a signal.
    Done(Result<T>),
    /// A signal arrived: the work was cancelled (and has cleaned up after itself).
    Interrupted,
}

/// Run blocking `work` on the blocking pool while watching SIGINT and SIGTERM. The first
/// signal sets the work's [`Cancel`] and waits for it to stop; a second one exits the process
/// at once (130 for SIGINT, 143 for SIGTERM). `what` names the work in the messages.
pub async fn run_cancellable<T: Send + 'static>(
    what: &str,
    sigint: &mut Signal,
    sigterm: &mut Signal,
    work: impl FnOnce(Cancel) -> Result<T> + Send + 'static,
) -> Result<Ended<T>> {
    let cancel = Cancel::new();
    let c = cancel.clone();
    let mut job = tokio::task::spawn_blocking(move || work(c));
    loop {
        let sig = tokio::select! {
            r = &mut job => {
                let r = r.map_err(|e| anyhow!("{what}: {e}"))?;
                return Ok(if cancel.is_set() { Ended::Interrupted } else { Ended::Done(r) });
            }
            _ = sigint.recv() => libc::SIGINT,
            _ = sigterm.recv() => libc::SIGTERM,
        };
        if cancel.is_set() {
            eprintln!(
                "berth-worker: interrupted again: exiting now ({what} left for `berth-worker gc`)"
            );
            std::process::exit(128 + sig);
        }
        eprintln!("berth-worker: interrupted: cancelling {what} (interrupt again to exit now)");
        cancel.set();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_reader_stops_io_copy() {
        let c = Cancel::new();
        let mut r = c.reader(&b"abc"[..]);
        let mut out = Vec::new();
        io::copy(&mut r, &mut out).unwrap();
        assert_eq!(out, b"abc");
        c.set();
        let mut r = c.reader(&b"abc"[..]);
        let e = io::copy(&mut r, &mut Vec::new()).unwrap_err();
        assert!(e.get_ref().is_some_and(|e| e.is::<Cancelled>()), "{e}");
        assert!(c.check().is_err());
    }
}
