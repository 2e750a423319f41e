//! A terminal for foreground `run` without `--console-socket` (what
//! `berth spec && berth run x` needs): berth listens on its own console
//! socket, receives the pty master from init, and copies bytes between it
//! and its own stdio, like runc does.

use crate::sys;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

pub struct ConsoleServer {
    listener: UnixListener,
    dir: tempdir::Dir,
}

mod tempdir {
    /// A private directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl ConsoleServer {
    pub fn new(id: &str) -> Result<ConsoleServer> {
        let dir = std::env::temp_dir().join(format!("berth-console-{id}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let dir = tempdir::Dir(dir);
        let listener = UnixListener::bind(dir.0.join("sock")).context("console socket")?;
        Ok(ConsoleServer { listener, dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.0.join("sock")
    }

    /// The pty master init sent during create.
    pub fn master(&self) -> Result<OwnedFd> {
        let (conn, _) = self.listener.accept()?;
        Ok(sys::recv_fd(conn.as_raw_fd())?.1)
    }
}

/// Copy stdin → master and master → stdout on background threads (the
/// process no longer forks, so threads are safe now). Puts a terminal
/// stdin into raw mode for the session; the returned guard restores it.
pub fn proxy(master: OwnedFd) -> Result<Proxy> {
    let raw = RawMode::enter(0);
    resize(master.as_raw_fd());
    let m2 = master.try_clone()?;
    let mut input = std::fs::File::from(m2);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || input.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut output = std::fs::File::from(master);
    let out = std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buf = [0u8; 4096];
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    Ok(Proxy {
        _raw: raw,
        output: Some(out),
    })
}

/// A running proxy; [`Proxy::finish`] waits until the output is drained.
pub struct Proxy {
    _raw: RawMode,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Wait for the master to report EOF/EIO (every slave fd closed).
    pub fn finish(mut self) {
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
    }
}

/// Give the pty our terminal's size (also on SIGWINCH).
pub fn resize(master: i32) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a live winsize struct.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Raw mode on a terminal fd, restored on drop.
pub struct RawMode {
    fd: i32,
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter(fd: i32) -> RawMode {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a live termios.
        unsafe {
            if libc::isatty(fd) != 1 {
                return RawMode { fd, saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return RawMode { fd, saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            RawMode {
                fd,
                saved: Some(saved),
            }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restoring the settings read in `enter`.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &t) };
        }
    }
}
