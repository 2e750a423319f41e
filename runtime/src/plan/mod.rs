//! Spec → Plan: every step a container start will take, as plain data.
//!
//! Planning is pure — no syscalls — so it is unit-tested without root and
//! printed by `berth plan`. The init process executes *this* list, step by
//! step ([`crate::init`]), so the teaching view cannot drift from the real
//! path. Each step carries a `why`: the ordering constraint or the attack it
//! closes.

mod mounts;

pub use mounts::{parse_options, MountStep};

use crate::seccomp;
use crate::spec::{IdMapping, NsKind, Spec, SpecError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Mount propagation flags for a `rootfsPropagation` value.
pub fn propagation_flags(s: &str) -> Option<u64> {
    Some(match s {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// The setrlimit resource for an OCI rlimit name (`RLIMIT_NOFILE`).
pub fn rlimit_resource(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// Who carries a step out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The `berth` process on the host.
    Runtime,
    /// Stage 1: a child that enters/creates namespaces, then forks init.
    Stage1,
    /// The container's init, which finally becomes the container process.
    Init,
}

impl Actor {
    pub fn name(self) -> &'static str {
        match self {
            Actor::Runtime => "runtime",
            Actor::Stage1 => "stage 1",
            Actor::Init => "init",
        }
    }
}

/// Where in a start a step sits. Each phase is walked by one process
/// ([`Phase::walker`]); a runtime step inside a child's phase is done by the
/// runtime when the child reaches it (a runtime turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The runtime, before any child exists.
    Host,
    /// Stage 1 enters and creates the namespaces, then forks init.
    Namespaces,
    /// Init builds the container's filesystem and kernel settings.
    Rootfs,
    /// Init shapes the process, then reports `created`.
    Process,
    /// Init waits for `berth start`, then becomes the program.
    Start,
}

impl Phase {
    /// The process that walks this phase's steps.
    pub fn walker(self) -> Actor {
        match self {
            Phase::Host => Actor::Runtime,
            Phase::Namespaces => Actor::Stage1,
            Phase::Rootfs | Phase::Process | Phase::Start => Actor::Init,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Phase::Host => "host — the runtime, before any child exists",
            Phase::Namespaces => "namespaces — stage 1",
            Phase::Rootfs => "rootfs — init, inside the container",
            Phase::Process => "process — init",
            Phase::Start => "start — init becomes the program",
        }
    }
}

/// One step of a container start, by the actor that performs it. Each
/// actor's executor matches its own enum exhaustively, so a step added here
/// and not executed is a compile error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Step {
    Runtime(RuntimeStep),
    Stage1(Stage1Step),
    Init(InitStep),
}

/// Steps of the `berth` process on the host ([`crate::container::executor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum RuntimeStep {
    /// Claim `<root>/<id>` and write state.json ("creating") before anything else.
    CreateStateDir { dir: PathBuf },
    /// Make the cgroup directories (recorded in state first) and apply limits.
    CreateCgroup { path: String },
    /// The fifo init blocks on until `berth start` opens it.
    CreateExecFifo { path: PathBuf },
    /// Connect to `--console-socket`; init sends the pty master over it.
    ConnectConsole,
    /// Fork stage 1, connected to the runtime by a socket pair.
    SpawnStage1,
    /// Put stage 1 into the cgroup, so everything it forks starts there.
    JoinCgroup,
    /// Write uid_map and gid_map for the new user namespace.
    WriteIdMaps {
        uid: Vec<IdMapping>,
        gid: Vec<IdMapping>,
    },
    /// Open every bind-mount source with the host's credentials, inside the
    /// container's new mount namespace, and hand the O_PATH fds to stage 1
    /// (SCM_RIGHTS); init mounts them through `/proc/self/fd/N`.
    OpenMountSources { sources: Vec<MountSource> },
    /// prestart + createRuntime hooks, in the runtime namespace, before pivot_root.
    RuntimeHooks {
        prestart: Vec<crate::spec::Hook>,
        create_runtime: Vec<crate::spec::Hook>,
    },
}

/// Steps of stage 1 ([`crate::init::stage1`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Stage1Step {
    /// PR_SET_DUMPABLE 0; init inherits it (CVE-2019-5736).
    SetNotDumpable,
    /// PR_SET_PDEATHSIG: die with the runtime.
    SetParentDeathSignal {
        signal: i32,
    },
    JoinNamespace {
        kind: NsKind,
        path: PathBuf,
    },
    UnshareUserNamespace,
    /// Become uid/gid 0 of the new user namespace once it is mapped.
    BecomeRoot,
    Unshare {
        kinds: Vec<NsKind>,
    },
    /// Fork the init (CLONE_PARENT: it becomes the runtime's child).
    ForkInit,
}

/// A device node for the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bind the host's node instead of mknod (user namespace).
    pub bind: bool,
}

/// Steps of the container's init ([`crate::init`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum InitStep {
    // ---- rootfs ----
    /// umask 0 while the rootfs is built.
    ClearUmask,
    /// A fresh session keyring, so the container cannot read the host's keys.
    JoinSessionKeyring {
        name: String,
    },
    SetRootPropagation {
        flags: u64,
    },
    /// linux.rootfsPropagation on the container's own `/`, after pivot_root.
    SetNewRootPropagation {
        flags: u64,
    },
    BindRootfs {
        rootfs: PathBuf,
    },
    Mount(MountStep),
    MountCgroups {
        readonly: bool,
        destination: PathBuf,
        binds: Vec<(PathBuf, PathBuf)>,
        /// Links for co-mounted v1 controllers (`cpu` → `cpu,cpuacct`).
        symlinks: Vec<(PathBuf, PathBuf)>,
    },
    CreateDevice(DeviceNode),
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    /// createContainer hooks, in the container's namespaces, before pivot_root.
    CreateContainerHooks {
        hooks: Vec<crate::spec::Hook>,
    },
    PivotRoot,
    ChrootNoPivot,
    /// No mount namespace (neither new nor joined): chroot into the rootfs
    /// and chdir to `/`; nothing is mounted.
    ChrootWithoutMountNamespace {
        rootfs: PathBuf,
    },
    BringUpLoopback,
    Sysctl {
        key: String,
        value: String,
    },
    SetHostname {
        name: String,
    },
    SetDomainname {
        name: String,
    },
    /// Make an existing mount read-only in place (`/dev` with `ro`, once it
    /// is filled).
    RemountReadonly {
        path: PathBuf,
    },
    MaskPath {
        path: PathBuf,
    },
    ReadonlyPath {
        path: PathBuf,
    },
    ReadonlyRoot,

    // ---- process ----
    OpenConsole {
        uid: u32,
        gid: u32,
        rows: u16,
        cols: u16,
    },
    Rlimit {
        index: usize,
        name: String,
        soft: u64,
        hard: u64,
    },
    OomScoreAdj {
        value: i32,
    },
    LimitUserNamespaces,
    LoadSeccomp {
        summary: String,
    },
    DropBoundingCaps {
        keep: Vec<String>,
    },
    SwitchUser {
        uid: u32,
        gid: u32,
        additional_gids: Vec<u32>,
    },
    /// A credential change clears the parent-death signal: set it again.
    RestoreParentDeathSignal {
        signal: i32,
    },
    SetCapabilities {
        effective: Vec<String>,
        permitted: Vec<String>,
        inheritable: Vec<String>,
        ambient: Vec<String>,
    },
    NoNewPrivileges,
    Umask {
        mask: u32,
    },
    /// First try at process.cwd, as root with every capability (runc does
    /// this too); a permission error leaves it to [`InitStep::Chdir`].
    ChdirAsRoot {
        cwd: String,
    },
    Chdir {
        cwd: String,
    },
    ResolveExecutable {
        arg0: String,
    },
    CloseHostFds {
        keep_up_to: i32,
    },
    /// Stop dying with the runtime: from `created` on, the container outlives `berth create`.
    ClearParentDeathSignal,
    ReportCreated,

    // ---- start ----
    WaitExecFifo,
    /// startContainer hooks, in the container, after `start`, before execve.
    StartContainerHooks {
        hooks: Vec<crate::spec::Hook>,
    },
    /// Default dispositions and an empty signal mask for the program.
    ResetSignals,
    Exec {
        args: Vec<String>,
        env: Vec<String>,
    },
}

impl From<RuntimeStep> for Step {
    fn from(s: RuntimeStep) -> Step {
        Step::Runtime(s)
    }
}

impl From<Stage1Step> for Step {
    fn from(s: Stage1Step) -> Step {
        Step::Stage1(s)
    }
}

impl From<InitStep> for Step {
    fn from(s: InitStep) -> Step {
        Step::Init(s)
    }
}

impl Step {
    pub fn actor(&self) -> Actor {
        match self {
            Step::Runtime(_) => Actor::Runtime,
            Step::Stage1(_) => Actor::Stage1,
            Step::Init(_) => Actor::Init,
        }
    }

    /// One line saying what the step does, with its operands.
    pub fn describe(&self) -> String {
        match self {
            Step::Runtime(s) => s.describe(),
            Step::Stage1(s) => s.describe(),
            Step::Init(s) => s.describe(),
        }
    }

    /// Why the step exists or sits where it does.
    pub fn why(&self) -> &'static str {
        match self {
            Step::Runtime(s) => s.why(),
            Step::Stage1(s) => s.why(),
            Step::Init(s) => s.why(),
        }
    }

    /// The init step, if this is one.
    pub fn as_init(&self) -> Option<&InitStep> {
        match self {
            Step::Init(s) => Some(s),
            Step::Runtime(_) | Step::Stage1(_) => None,
        }
    }
}

impl RuntimeStep {
    pub fn describe(&self) -> String {
        use RuntimeStep::*;
        match self {
            CreateStateDir { dir } => format!("create state dir {}", dir.display()),
            CreateCgroup { path } => format!("create cgroup {path} and apply linux.resources"),
            CreateExecFifo { path } => format!("mkfifo {}", path.display()),
            ConnectConsole => "connect to --console-socket".into(),
            SpawnStage1 => "fork stage 1".into(),
            JoinCgroup => "move stage 1 into the cgroup".into(),
            WriteIdMaps { uid, gid } => {
                format!("write uid_map {} gid_map {}", maps(uid), maps(gid))
            }
            OpenMountSources { sources } => format!(
                "open {} bind-mount source(s) as host root in the container's mount namespace, pass the fds to init",
                sources.len()
            ),
            RuntimeHooks {
                prestart,
                create_runtime,
            } => format!(
                "run {} prestart and {} createRuntime hook(s) on the host",
                prestart.len(),
                create_runtime.len()
            ),
        }
    }

    pub fn why(&self) -> &'static str {
        use RuntimeStep::*;
        match self {
            CreateStateDir { .. } => "recorded before any resource exists, so `delete --force` can always clean up",
            CreateCgroup { .. } => "the directories are recorded in state.json before mkdir: a killed create leaks nothing",
            CreateExecFifo { .. } => "`create` and `start` are separate commands: init blocks on this fifo until `start` opens it",
            ConnectConsole => "before the fork: stage 1 and init inherit the connection, init sends the pty master over it",
            SpawnStage1 => "namespace setup needs a fresh, single-threaded process",
            JoinCgroup => "before unsharing the cgroup namespace, so its root is the container's cgroup",
            WriteIdMaps { .. } => "only a process outside the new user namespace may write its maps",
            OpenMountSources { .. } => "in the user namespace the container's root may not even search a host directory (a 0700 parent of host root): the runtime opens each source with O_PATH as host root, inside the new mount namespace so the mount it names can be bound there (runc 1.1 does the same)",
            RuntimeHooks { .. } => "runtime-spec: after the namespaces and mounts exist, before pivot_root (network setup happens here)",
        }
    }
}

impl Stage1Step {
    pub fn describe(&self) -> String {
        use Stage1Step::*;
        match self {
            SetNotDumpable => "prctl(PR_SET_DUMPABLE, 0)".into(),
            SetParentDeathSignal { signal } => {
                format!("prctl(PR_SET_PDEATHSIG, {})", signal_name(*signal))
            }
            JoinNamespace { kind, path } => format!("setns {} {}", kind.name(), path.display()),
            UnshareUserNamespace => "unshare user namespace, wait for id maps".into(),
            BecomeRoot => "setresuid/setresgid 0 inside the user namespace".into(),
            Unshare { kinds } => format!(
                "unshare {}",
                kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
            ),
            ForkInit => "fork init (CLONE_PARENT)".into(),
        }
    }

    pub fn why(&self) -> &'static str {
        use Stage1Step::*;
        match self {
            SetNotDumpable => "CVE-2019-5736: until execve stage 1 and init (which inherits it) are the host's berth binary; non-dumpable, their /proc/<pid>/exe cannot be opened by container processes to overwrite it (execve resets the flag)",
            SetParentDeathSignal { .. } => "a `berth create` killed half-way takes its children with it instead of leaving a half-built container",
            JoinNamespace { .. } => "user first (it grants the rights to join the others), mount last",
            UnshareUserNamespace => "other namespaces created after it are owned by it",
            BecomeRoot => "uid 0 in the namespace, so mounts and mknod are checked against the container's root",
            Unshare { .. } => "pid and time namespaces apply to children only: init is forked next",
            ForkInit => "init must be pid 1 of the new pid namespace and a child of the runtime, which waits for it",
        }
    }
}

impl InitStep {
    pub fn describe(&self) -> String {
        use InitStep::*;
        let j = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(",")
            }
        };
        match self {
            ClearUmask => "umask 0000".into(),
            JoinSessionKeyring { name } => format!("keyctl join session keyring {name}"),
            SetRootPropagation { flags } => format!("mount --make-{} /", prop_name(*flags)),
            SetNewRootPropagation { flags } => {
                format!("mount --make-{} / (the new root)", prop_name(*flags))
            }
            BindRootfs { rootfs } => format!("bind {} onto itself", rootfs.display()),
            Mount(m) => {
                let what = if m.bind {
                    format!(
                        "bind {}",
                        m.source.as_deref().unwrap_or(Path::new("")).display()
                    )
                } else {
                    m.fstype.clone().unwrap_or_default()
                };
                let mut s = format!("mount {what} on {}", m.destination.display());
                if !m.data.is_empty() {
                    s += &format!(" ({})", m.data);
                }
                if m.remount_flags.is_some_and(|f| f & libc::MS_RDONLY != 0) || m.recursive_readonly
                {
                    s += " read-only";
                }
                s
            }
            MountCgroups {
                destination,
                readonly,
                binds,
                ..
            } => format!(
                "bind {} cgroup dir(s) at {}{}",
                binds.len(),
                destination.display(),
                if *readonly { " read-only" } else { "" }
            ),
            CreateDevice(d) => {
                if d.bind {
                    format!("bind host {} (user namespace: no mknod)", d.path.display())
                } else {
                    format!(
                        "mknod {} {} {}:{}",
                        d.path.display(),
                        d.kind,
                        d.major,
                        d.minor
                    )
                }
            }
            Symlink { target, link } => {
                format!("symlink {} -> {}", link.display(), target.display())
            }
            CreateContainerHooks { hooks } => {
                format!("run {} createContainer hook(s)", hooks.len())
            }
            StartContainerHooks { hooks } => format!("run {} startContainer hook(s)", hooks.len()),
            PivotRoot => "pivot_root into the rootfs, detach the old root".into(),
            ChrootNoPivot => {
                "detach the host's proc and sysfs mounts, move the rootfs onto / and chroot (--no-pivot)"
                    .into()
            }
            ChrootWithoutMountNamespace { rootfs } => {
                format!("chroot {} and chdir / (no mount namespace)", rootfs.display())
            }
            BringUpLoopback => "bring up lo".into(),
            Sysctl { key, value } => format!("sysctl {key}={value}"),
            SetHostname { name } => format!("sethostname {name}"),
            SetDomainname { name } => format!("setdomainname {name}"),
            RemountReadonly { path } => format!("remount {} read-only", path.display()),
            MaskPath { path } => format!("mask {}", path.display()),
            ReadonlyPath { path } => format!("read-only {}", path.display()),
            ReadonlyRoot => "remount / read-only".into(),
            OpenConsole { .. } => "open a pty, send its master to --console-socket".into(),
            Rlimit {
                name, soft, hard, ..
            } => format!("setrlimit {name} soft={soft} hard={hard}"),
            OomScoreAdj { value } => format!("oom_score_adj {value}"),
            LimitUserNamespaces => "user.max_user_namespaces=0 inside the container".into(),
            LoadSeccomp { summary } => format!("load seccomp: {summary}"),
            DropBoundingCaps { keep } => format!("bounding set {}", j(keep)),
            SwitchUser {
                uid,
                gid,
                additional_gids,
            } => format!(
                "setgroups {:?}, setgid {gid}, setuid {uid}",
                additional_gids
            ),
            RestoreParentDeathSignal { signal } => {
                format!("prctl(PR_SET_PDEATHSIG, {}) again", signal_name(*signal))
            }
            SetCapabilities {
                effective,
                permitted,
                inheritable,
                ambient,
            } => format!(
                "caps effective={} permitted={} inheritable={} ambient={}",
                j(effective),
                j(permitted),
                j(inheritable),
                j(ambient)
            ),
            NoNewPrivileges => "prctl(PR_SET_NO_NEW_PRIVS)".into(),
            Umask { mask } => format!("umask {mask:04o}"),
            ChdirAsRoot { cwd } => format!("chdir {cwd} (as root; again as the user if denied)"),
            Chdir { cwd } => format!("chdir {cwd} (unless done as root)"),
            ResolveExecutable { arg0 } => format!("find {arg0} in the container's PATH"),
            CloseHostFds { keep_up_to } => format!("close-on-exec every fd above {keep_up_to}"),
            ClearParentDeathSignal => "prctl(PR_SET_PDEATHSIG, 0)".into(),
            ReportCreated => "tell the runtime: created".into(),
            WaitExecFifo => "block on exec.fifo until `berth start`".into(),
            ResetSignals => "default signal dispositions, empty signal mask".into(),
            Exec { args, .. } => format!("execve {}", args.join(" ")),
        }
    }

    pub fn why(&self) -> &'static str {
        use InitStep::*;
        match self {
            ClearUmask => "files and nodes made for the container get exactly the modes asked for; the process umask is its own step later",
            JoinSessionKeyring { .. } => "as runc: keys in the caller's session keyring stay out of reach (--no-new-keyring skips it)",
            SetRootPropagation { .. } => "first, so no mount made for the container propagates to the host",
            SetNewRootPropagation { .. } => "runc's order: applied to the container's / once it is the root, so a shared root stays the container's own and never joins the host's peer group",
            BindRootfs { .. } => "pivot_root needs the new root to be a mount point; the mount holding the rootfs is made private first (pivot_root refuses a shared parent, a bind from an unbindable one fails)",
            Mount(_) => "destination resolved inside the rootfs (openat2 RESOLVE_IN_ROOT): a symlink cannot aim it at the host",
            MountCgroups { .. } => "bind the container's own cgroup dirs; works the same on v1, v2 and hybrid hosts",
            CreateDevice(_) => "in a user namespace mknod is refused, so devices are bind-mounted from the host",
            Symlink { .. } => "the /dev links programs expect (/dev/fd, /dev/ptmx, …)",
            CreateContainerHooks { .. } => "runtime-spec: in the container's mount namespace, before pivot_root",
            StartContainerHooks { .. } => "runtime-spec: after `start`, just before the user program",
            PivotRoot => "pivot_root, unlike chroot, leaves no way back to the host tree",
            ChrootNoPivot => "for ramdisk roots where pivot_root is impossible; weaker than pivot_root: the host's mounts stay in the namespace, so a fully visible /proc or /sys there is detached (else a user namespace inside could mount an unmasked procfs; runc does the same)",
            ChrootWithoutMountNamespace { .. } => "runc chroots too (prepareRootfs without NEWNS) but also mounts the config's mounts in the host's namespace; berth mounts nothing: after sysctl and hostname (they need the host's /proc), before the process steps, so the program is found and run in the rootfs",
            BringUpLoopback => "a new network namespace starts with lo down (runc brings it up too)",
            Sysctl { .. } => "before read-only paths: /proc/sys becomes read-only next",
            SetHostname { .. } | SetDomainname { .. } => "in the container's own UTS namespace",
            RemountReadonly { .. } => "a read-only /dev is mounted writable first: devices, links and /dev/pts go in, then it turns read-only (runc does the same)",
            MaskPath { .. } => "hide host information and knobs (/proc/kcore, /proc/keys, …)",
            ReadonlyPath { .. } => "after sysctl writes, so the container cannot change kernel knobs",
            ReadonlyRoot => "root.readonly: last rootfs step, all mounts are in place",
            OpenConsole { .. } => "opened inside the container so the pty belongs to its devpts",
            Rlimit { .. } => "while still root: raising a hard limit needs privilege",
            OomScoreAdj { .. } => "lowering it needs CAP_SYS_RESOURCE, still held here",
            LimitUserNamespaces => "clone3 flags are invisible to seccomp; this stops clone3(CLONE_NEWUSER) without touching the host (before /proc/sys turns read-only)",
            LoadSeccomp { .. } => "without no_new_privs loading needs CAP_SYS_ADMIN (before caps drop); with it, as late as possible",
            DropBoundingCaps { .. } => "before setuid: the bounding set caps what any later execve can gain",
            SwitchUser { .. } => "PR_SET_KEEPCAPS keeps permitted caps across the uid change",
            RestoreParentDeathSignal { .. } => "the uid change cleared it: a dying runtime must still take an unfinished init with it",
            SetCapabilities { .. } => "after setuid; inheritable and ambient stay empty unless asked (CVE-2022-29162)",
            NoNewPrivileges => "setuid binaries and file caps can no longer raise privileges",
            Umask { .. } => "process.user.umask, or 0022 like runc",
            ChdirAsRoot { .. } => "before caps drop: a cwd only root may enter still works for another user (runc, cwd.bats); must resolve inside the container (CVE-2024-21626)",
            Chdir { .. } => "after setuid, when root was denied: a cwd owned by the user (e.g. a volume root cannot read) works too",
            ResolveExecutable { .. } => "fail `create`, not `start`, when the program does not exist",
            CloseHostFds { .. } => "no host fd may survive into the container (CVE-2024-21626)",
            ClearParentDeathSignal => "before the late seccomp filter (a profile may deny prctl) and before reporting created (the runtime exits right after); a runtime that dies before `Go` is still seen as EOF",
            ReportCreated => "the runtime records `created` and returns",
            WaitExecFifo => "`create` and `start` are separate: init waits here",
            ResetSignals => "an ignored signal stays ignored across execve and berth runs with signals blocked: the program starts with a fresh process's signal state (`yes | head` works)",
            Exec { .. } => "the container process replaces init; seccomp and caps stay",
        }
    }
}

/// What a config without a mount namespace asks for and cannot get: any
/// mount would land in the host's mount namespace (runc makes them there;
/// berth never touches the host), so each such field is skipped with a
/// warning naming it.
pub fn no_mountns_warnings(spec: &Spec) -> Vec<String> {
    const WHY: &str = "the container has no mount namespace of its own (a mount would land on the host's); add {\"type\":\"mount\"} to linux.namespaces";
    let linux = spec.linux();
    let mut w: Vec<String> = spec
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "mounts[{i}] ({}): not mounted: {WHY}",
                m.destination.display()
            )
        })
        .collect();
    for (field, paths, what) in [
        ("linux.maskedPaths", &linux.masked_paths, "not masked"),
        (
            "linux.readonlyPaths",
            &linux.readonly_paths,
            "not made read-only",
        ),
    ] {
        w.extend(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{field}[{i}] ({p}): {what}: {WHY}")),
        );
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        w.push(format!("root.readonly: / not made read-only: {WHY}"));
    }
    w
}

fn signal_name(sig: i32) -> String {
    match sig {
        0 => "0".into(),
        libc::SIGKILL => "SIGKILL".into(),
        n => n.to_string(),
    }
}

fn maps(m: &[IdMapping]) -> String {
    m.iter()
        .map(|m| format!("{}:{}:{}", m.container_id, m.host_id, m.size))
        .collect::<Vec<_>>()
        .join(",")
}

fn prop_name(flags: u64) -> &'static str {
    let rec = flags & libc::MS_REC != 0;
    match (flags & !libc::MS_REC, rec) {
        (libc::MS_PRIVATE, true) => "rprivate",
        (libc::MS_PRIVATE, false) => "private",
        (libc::MS_SLAVE, true) => "rslave",
        (libc::MS_SLAVE, false) => "slave",
        (libc::MS_SHARED, true) => "rshared",
        (libc::MS_SHARED, false) => "shared",
        (_, true) => "runbindable",
        _ => "unbindable",
    }
}

/// A bind-mount source the runtime opens for init ([`RuntimeStep::OpenMountSources`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSource {
    /// Index in config.json `mounts[]` (the [`MountStep::index`] it serves).
    pub index: usize,
    /// Absolute host path.
    pub source: PathBuf,
}

/// The sources of the bind mounts `plan_rootfs` makes (cgroup mounts are
/// the runtime's own binds), relative ones resolved against the bundle.
fn bind_sources(spec: &Spec, opts: &Options) -> Vec<MountSource> {
    spec.mounts
        .iter()
        .enumerate()
        .filter_map(|(index, m)| {
            let (flags, ..) = parse_options(&m.options);
            let fstype = m.typ.as_deref().filter(|t| !t.is_empty());
            let bind = flags & libc::MS_BIND != 0 || fstype == Some("bind");
            if !bind || matches!(fstype, Some("cgroup" | "cgroup2")) {
                return None;
            }
            let src = m.source.as_ref()?;
            let source = if src.is_relative() {
                opts.bundle.join(src)
            } else {
                src.clone()
            };
            Some(MountSource { index, source })
        })
        .collect()
}

/// Options that are not in config.json: the command line and the host.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub no_pivot: bool,
    pub console_socket: bool,
    pub preserve_fds: i32,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Relative cgroup path (already resolved), e.g. `/berth/<id>`.
    pub cgroup_path: String,
    /// What to bind at /sys/fs/cgroup: (host dir, path relative to it).
    pub cgroup_binds: Vec<(PathBuf, PathBuf)>,
    /// Links to make there for co-mounted controllers: (link, target).
    pub cgroup_symlinks: Vec<(PathBuf, PathBuf)>,
}

/// Everything a container start will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub rootfs: PathBuf,
    pub steps: Vec<Step>,
    /// Where each phase starts in `steps`, in order (see [`Plan::phases`]).
    phase_starts: Vec<(Phase, usize)>,
    /// The compiled filter that `LoadSeccomp` loads (bytes only in the child).
    pub seccomp: Option<seccomp::Program>,
    pub new_userns: bool,
    pub own_pidns: bool,
}

/// One phase of a plan: its steps, numbered from `first` in the whole plan.
#[derive(Debug, Clone, Copy)]
pub struct PhaseRun<'a> {
    pub phase: Phase,
    pub first: usize,
    pub steps: &'a [Step],
}

/// The plan as `berth plan --json` prints it: every step with its actor
/// and phase.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            actor: Actor,
            phase: Phase,
            #[serde(flatten)]
            step: &'a Step,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            id: &'a str,
            rootfs: &'a Path,
            steps: Vec<Row<'a>>,
            new_userns: bool,
            own_pidns: bool,
        }
        Out {
            id: &self.id,
            rootfs: &self.rootfs,
            steps: self
                .phases()
                .flat_map(|run| {
                    run.steps.iter().map(move |step| Row {
                        actor: step.actor(),
                        phase: run.phase,
                        step,
                    })
                })
                .collect(),
            new_userns: self.new_userns,
            own_pidns: self.own_pidns,
        }
        .serialize(ser)
    }
}

/// The devices every container gets (runc's `AllowedDevices` minus ptmx,
/// which is a symlink into the container's own devpts).
const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Steps in order, each under the phase begun last.
#[derive(Default)]
struct Builder {
    steps: Vec<Step>,
    phase_starts: Vec<(Phase, usize)>,
}

impl Builder {
    fn phase(&mut self, p: Phase) {
        self.phase_starts.push((p, self.steps.len()));
    }

    fn push(&mut self, s: impl Into<Step>) {
        self.steps.push(s.into());
    }
}

impl Plan {
    /// Build the plan. `seccomp` is the filter already compiled for this spec.
    pub fn new(
        spec: &Spec,
        opts: &Options,
        seccomp: Option<seccomp::Program>,
    ) -> Result<Plan, SpecError> {
        let linux = spec.linux();
        let process = spec
            .process
            .clone()
            .ok_or_else(|| SpecError::new("process", "required to create a container"))?;
        let root = spec.root.clone().unwrap_or_default();
        let rootfs = if root.path.is_absolute() {
            root.path.clone()
        } else {
            opts.bundle.join(&root.path)
        };
        let mut b = Builder::default();

        b.phase(Phase::Host);
        b.push(RuntimeStep::CreateStateDir {
            dir: opts.state_dir.clone(),
        });
        b.push(RuntimeStep::CreateCgroup {
            path: opts.cgroup_path.clone(),
        });
        b.push(RuntimeStep::CreateExecFifo {
            path: opts.state_dir.join("exec.fifo"),
        });
        if opts.console_socket {
            b.push(RuntimeStep::ConnectConsole);
        }
        b.push(RuntimeStep::SpawnStage1);

        b.phase(Phase::Namespaces);
        stage1_setup(&mut b);
        let mut joined = Vec::new();
        let mut new = Vec::new();
        for kind in NsKind::ALL {
            if let Some(ns) = linux
                .namespaces
                .iter()
                .find(|n| NsKind::parse(&n.typ) == Some(kind))
            {
                match &ns.path {
                    Some(p) => joined.push(Stage1Step::JoinNamespace {
                        kind,
                        path: p.clone(),
                    }),
                    None => new.push(kind),
                }
            }
        }
        for j in joined {
            b.push(j);
        }
        let new_userns = new.contains(&NsKind::User);
        if new_userns {
            b.push(Stage1Step::UnshareUserNamespace);
        }
        b.push(RuntimeStep::JoinCgroup);
        if new_userns {
            b.push(RuntimeStep::WriteIdMaps {
                uid: linux.uid_mappings.clone(),
                gid: linux.gid_mappings.clone(),
            });
            b.push(Stage1Step::BecomeRoot);
        }
        let rest: Vec<NsKind> = new.iter().copied().filter(|k| *k != NsKind::User).collect();
        if !rest.is_empty() {
            b.push(Stage1Step::Unshare {
                kinds: rest.clone(),
            });
        }
        // In a user namespace, init cannot reach a bind source under a
        // directory only host root may search: the runtime opens them for
        // it while stage 1 waits in the new mount namespace (runc 1.1's
        // mount fds, shouldSendMountSources: user + mount ns, any bind).
        let has = |k: NsKind| {
            linux
                .namespaces
                .iter()
                .any(|n| NsKind::parse(&n.typ) == Some(k))
        };
        if has(NsKind::User) && has(NsKind::Mount) {
            let sources = bind_sources(spec, opts);
            if !sources.is_empty() {
                b.push(RuntimeStep::OpenMountSources { sources });
            }
        }
        b.push(Stage1Step::ForkInit);

        b.phase(Phase::Rootfs);
        b.push(InitStep::ClearUmask);
        if !opts.no_new_keyring {
            b.push(InitStep::JoinSessionKeyring {
                name: format!("_ses.{}", opts.id),
            });
        }
        // A mount namespace joined by path gets the rootfs built in it too,
        // as runc does (runtime-tools linux_ns_path "mnt").
        let new_mountns = linux
            .namespaces
            .iter()
            .any(|n| NsKind::parse(&n.typ) == Some(NsKind::Mount));
        let in_userns = linux.namespaces.iter().any(|n| n.typ == "user");
        if new_mountns {
            plan_rootfs(&mut b, spec, opts, &rootfs, in_userns)?;
        }
        if new.contains(&NsKind::Network) {
            b.push(InitStep::BringUpLoopback);
        }
        for (key, value) in &linux.sysctl {
            b.push(InitStep::Sysctl {
                key: key.clone(),
                value: value.clone(),
            });
        }
        if seccomp.as_ref().is_some_and(|p| p.guard_user_namespaces) {
            b.push(InitStep::LimitUserNamespaces);
        }
        if let Some(h) = spec.hostname.as_ref().filter(|h| !h.is_empty()) {
            b.push(InitStep::SetHostname { name: h.clone() });
        }
        if let Some(d) = spec.domainname.as_ref().filter(|d| !d.is_empty()) {
            b.push(InitStep::SetDomainname { name: d.clone() });
        }
        if new_mountns {
            for p in &linux.masked_paths {
                b.push(InitStep::MaskPath { path: p.into() });
            }
            for p in &linux.readonly_paths {
                b.push(InitStep::ReadonlyPath { path: p.into() });
            }
            if root.readonly {
                b.push(InitStep::ReadonlyRoot);
            }
        } else {
            for w in no_mountns_warnings(spec) {
                crate::log::warn(&w);
            }
            b.push(InitStep::ChrootWithoutMountNamespace {
                rootfs: rootfs.clone(),
            });
        }

        let start_hooks = spec
            .hooks
            .as_ref()
            .map(|h| h.start_container.clone())
            .unwrap_or_default();
        plan_process(&mut b, &process, seccomp.as_ref(), opts, true, &start_hooks)?;

        Ok(Plan {
            id: opts.id.clone(),
            rootfs,
            steps: b.steps,
            phase_starts: b.phase_starts,
            seccomp,
            new_userns,
            own_pidns: new.contains(&NsKind::Pid),
        })
    }

    /// The plan for `exec`: join every namespace of the running container
    /// through its init's `/proc/<pid>/ns/*`, join its cgroup, fork, then the
    /// same process steps as a container's init (runc's "setns init").
    pub fn for_exec(
        spec: &Spec,
        process: &crate::spec::Process,
        init_pid: i32,
        opts: &Options,
        seccomp: Option<seccomp::Program>,
    ) -> Result<Plan, SpecError> {
        let linux = spec.linux();
        let mut b = Builder::default();
        b.phase(Phase::Host);
        if opts.console_socket {
            b.push(RuntimeStep::ConnectConsole);
        }
        b.push(RuntimeStep::SpawnStage1);
        b.phase(Phase::Namespaces);
        stage1_setup(&mut b);
        for kind in NsKind::ALL {
            if linux
                .namespaces
                .iter()
                .any(|n| NsKind::parse(&n.typ) == Some(kind))
            {
                let path = PathBuf::from(format!("/proc/{init_pid}/ns/{}", kind.proc_name()));
                b.push(Stage1Step::JoinNamespace { kind, path });
            }
        }
        b.push(RuntimeStep::JoinCgroup);
        b.push(Stage1Step::ForkInit);
        b.phase(Phase::Process);
        b.push(InitStep::ClearUmask);
        plan_process(&mut b, process, seccomp.as_ref(), opts, false, &[])?;
        Ok(Plan {
            id: opts.id.clone(),
            rootfs: PathBuf::from("/"),
            steps: b.steps,
            phase_starts: b.phase_starts,
            seccomp,
            new_userns: false,
            own_pidns: false,
        })
    }

    /// The phases in order, each with its steps.
    pub fn phases(&self) -> impl Iterator<Item = PhaseRun<'_>> {
        self.phase_starts
            .iter()
            .enumerate()
            .map(|(i, &(phase, first))| {
                let end = self
                    .phase_starts
                    .get(i + 1)
                    .map_or(self.steps.len(), |&(_, next)| next);
                PhaseRun {
                    phase,
                    first,
                    steps: &self.steps[first..end],
                }
            })
    }

    /// The steps `actor` walks, in order: the phases it is the walker of
    /// (with the runtime steps among them, which it hands to the runtime).
    pub fn walked_by(&self, actor: Actor) -> &[Step] {
        let mut runs = self.phases().filter(|r| r.phase.walker() == actor);
        let Some(first) = runs.next() else {
            return &[];
        };
        let end = runs
            .last()
            .map_or(first.first + first.steps.len(), |r| r.first + r.steps.len());
        &self.steps[first.first..end]
    }

    /// The runs of runtime steps inside the children's phases, in order:
    /// the child reaching the first step of a run hands the whole run to
    /// the runtime (a runtime turn) and waits until it is done.
    pub fn runtime_turns(&self) -> Vec<Vec<&RuntimeStep>> {
        let mut turns: Vec<Vec<&RuntimeStep>> = Vec::new();
        for actor in [Actor::Stage1, Actor::Init] {
            let mut in_turn = false;
            for step in self.walked_by(actor) {
                match step {
                    Step::Runtime(r) => {
                        if !in_turn {
                            turns.push(Vec::new());
                            in_turn = true;
                        }
                        if let Some(t) = turns.last_mut() {
                            t.push(r);
                        }
                    }
                    Step::Stage1(_) | Step::Init(_) => in_turn = false,
                }
            }
        }
        turns
    }

    /// The plan as `berth plan` prints it: each phase, then its steps with
    /// the actor that performs each.
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan for container {:?} (rootfs {})\n",
            self.id,
            self.rootfs.display()
        );
        for run in self.phases() {
            out += &format!("\n[{}]\n", run.phase.title());
            for (i, step) in run.steps.iter().enumerate() {
                out += &format!(
                    "{:3}. {:<8} {}\n       why: {}\n",
                    run.first + i + 1,
                    step.actor().name(),
                    step.describe(),
                    step.why()
                );
            }
        }
        out
    }
}

/// What stage 1 does first, before any namespace step.
fn stage1_setup(b: &mut Builder) {
    b.push(Stage1Step::SetParentDeathSignal {
        signal: libc::SIGKILL,
    });
    b.push(Stage1Step::SetNotDumpable);
}

/// The kernel's limit on one execve argument or environment string,
/// NUL included (32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The steps that shape the process, shared by `create` and `exec`.
/// `wait_for_start`: a container's init waits on exec.fifo; an exec'd
/// process runs at once.
fn plan_process(
    b: &mut Builder,
    process: &crate::spec::Process,
    seccomp: Option<&seccomp::Program>,
    opts: &Options,
    wait_for_start: bool,
    start_hooks: &[crate::spec::Hook],
) -> Result<(), SpecError> {
    // execve refuses a longer string (E2BIG) — only after `start`, too late
    // for a clear error: refuse it here, naming the field.
    for (field, list) in [
        ("process.args", &process.args),
        ("process.env", &process.env),
    ] {
        if let Some((i, a)) = list
            .iter()
            .enumerate()
            .find(|(_, a)| a.len() + 1 > MAX_ARG_STRLEN)
        {
            return Err(SpecError::new(
                format!("{field}[{i}]"),
                format!(
                    "{} bytes long; execve takes at most {MAX_ARG_STRLEN} bytes per string (MAX_ARG_STRLEN, with its NUL)",
                    a.len()
                ),
            ));
        }
    }
    if !b
        .phase_starts
        .last()
        .is_some_and(|(p, _)| *p == Phase::Process)
    {
        b.phase(Phase::Process);
    }
    if process.terminal {
        if !opts.console_socket {
            return Err(SpecError::new(
                "process.terminal",
                "a terminal was asked for but no --console-socket was given",
            ));
        }
        let size = process.console_size.unwrap_or_default();
        b.push(InitStep::OpenConsole {
            uid: process.user.uid,
            gid: process.user.gid,
            rows: size.height,
            cols: size.width,
        });
    }
    for (index, r) in process.rlimits.iter().enumerate() {
        b.push(InitStep::Rlimit {
            index,
            name: r.typ.clone(),
            soft: r.soft,
            hard: r.hard,
        });
    }
    if let Some(v) = process.oom_score_adj {
        b.push(InitStep::OomScoreAdj { value: v });
    }
    let caps = process.capabilities.clone().unwrap_or_default();
    let seccomp_step = seccomp.map(|p| InitStep::LoadSeccomp {
        summary: p.summary.clone(),
    });
    // Before any filter: its CVE-2024-21626 check calls getcwd, which a
    // profile may deny (runtime-tools linux_seccomp denies exactly getcwd).
    b.push(InitStep::ChdirAsRoot {
        cwd: process.cwd.clone(),
    });
    // runc: without no_new_privs the filter must be loaded while
    // CAP_SYS_ADMIN is still held; with it, as close to execve as possible.
    if !process.no_new_privileges {
        if let Some(s) = seccomp_step.clone() {
            b.push(s);
        }
    }
    b.push(InitStep::DropBoundingCaps {
        keep: caps.bounding.clone(),
    });
    b.push(InitStep::SwitchUser {
        uid: process.user.uid,
        gid: process.user.gid,
        additional_gids: process.user.additional_gids.clone(),
    });
    b.push(InitStep::RestoreParentDeathSignal {
        signal: libc::SIGKILL,
    });
    b.push(InitStep::SetCapabilities {
        effective: caps.effective.clone(),
        permitted: caps.permitted.clone(),
        inheritable: caps.inheritable.clone(),
        ambient: caps.ambient.clone(),
    });
    if process.no_new_privileges {
        b.push(InitStep::NoNewPrivileges);
    }
    b.push(InitStep::Umask {
        mask: process.user.umask.unwrap_or(0o022),
    });
    b.push(InitStep::Chdir {
        cwd: process.cwd.clone(),
    });
    b.push(InitStep::ResolveExecutable {
        arg0: process.args[0].clone(),
    });
    b.push(InitStep::CloseHostFds {
        keep_up_to: 2 + opts.preserve_fds,
    });
    b.push(InitStep::ClearParentDeathSignal);
    if process.no_new_privileges {
        if let Some(s) = seccomp_step {
            b.push(s);
        }
    }
    b.push(InitStep::ReportCreated);
    b.phase(Phase::Start);
    if wait_for_start {
        b.push(InitStep::WaitExecFifo);
        let hooks = start_hooks.to_vec();
        if !hooks.is_empty() {
            b.push(InitStep::StartContainerHooks { hooks });
        }
    }
    b.push(InitStep::ResetSignals);
    b.push(InitStep::Exec {
        args: process.args.clone(),
        env: process.env.clone(),
    });
    Ok(())
}

fn plan_rootfs(
    b: &mut Builder,
    spec: &Spec,
    opts: &Options,
    rootfs: &Path,
    in_userns: bool,
) -> Result<(), SpecError> {
    let linux = spec.linux();
    let prop = match &linux.rootfs_propagation {
        Some(p) => propagation_flags(p).unwrap_or(libc::MS_SLAVE | libc::MS_REC),
        None => libc::MS_SLAVE | libc::MS_REC, // runc's default
    };
    b.push(InitStep::SetRootPropagation { flags: prop });
    b.push(InitStep::BindRootfs {
        rootfs: rootfs.to_path_buf(),
    });
    let mut dev_is_bind = false;
    let mut dev_readonly = false;
    for (index, m) in spec.mounts.iter().enumerate() {
        let field = |f: &str| format!("mounts[{index}].{f}");
        let (flags, propagation, data, rro) = parse_options(&m.options);
        let fstype = m.typ.clone().filter(|t| !t.is_empty());
        let bind = flags & libc::MS_BIND != 0 || fstype.as_deref() == Some("bind");
        if fstype.as_deref() == Some("cgroup") || fstype.as_deref() == Some("cgroup2") {
            b.push(InitStep::MountCgroups {
                readonly: flags & libc::MS_RDONLY != 0,
                destination: m.destination.clone(),
                binds: opts.cgroup_binds.clone(),
                symlinks: opts.cgroup_symlinks.clone(),
            });
            continue;
        }
        if m.destination == Path::new("/dev") && bind {
            dev_is_bind = true;
        }
        let source = match &m.source {
            Some(src) if bind && src.is_relative() => Some(opts.bundle.join(src)),
            Some(src) => Some(src.clone()),
            None if bind => {
                return Err(SpecError::new(
                    field("source"),
                    "a bind mount needs a source",
                ))
            }
            None => fstype.clone().map(PathBuf::from),
        };
        if !bind && fstype.is_none() {
            return Err(SpecError::new(
                field("type"),
                "required for a non-bind mount",
            ));
        }
        // A read-only /dev is filled first and made read-only after pivot_root.
        let flags = if !bind && m.destination == Path::new("/dev") && flags & libc::MS_RDONLY != 0 {
            dev_readonly = true;
            flags & !libc::MS_RDONLY
        } else {
            flags
        };
        let (flags, remount_flags) = if bind {
            // A bind mount ignores every flag but MS_BIND|MS_REC; the others
            // take effect through a remount.
            let extra = flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            (
                flags & (libc::MS_BIND | libc::MS_REC),
                (extra != 0).then_some(extra),
            )
        } else {
            (flags, None)
        };
        b.push(InitStep::Mount(MountStep {
            index,
            source,
            destination: m.destination.clone(),
            fstype: if bind { None } else { fstype },
            flags,
            data,
            propagation,
            bind,
            remount_flags,
            recursive_readonly: rro,
        }));
    }
    if !dev_is_bind {
        let mut devices: Vec<DeviceNode> = DEFAULT_DEVICES
            .iter()
            .map(|(p, maj, min)| DeviceNode {
                path: p.into(),
                kind: 'c',
                major: *maj,
                minor: *min,
                mode: 0o666,
                uid: 0,
                gid: 0,
                bind: in_userns,
            })
            .collect();
        for d in &linux.devices {
            devices.retain(|x| x.path != d.path);
            devices.push(DeviceNode {
                path: d.path.clone(),
                kind: d.typ.chars().next().unwrap_or('c'),
                major: d.major,
                minor: d.minor,
                mode: d.file_mode.unwrap_or(0o666),
                uid: d.uid.unwrap_or(0),
                gid: d.gid.unwrap_or(0),
                bind: in_userns,
            });
        }
        for d in devices {
            b.push(InitStep::CreateDevice(d));
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx"),
        ] {
            b.push(InitStep::Symlink {
                target: target.into(),
                link: link.into(),
            });
        }
    }
    let hooks = spec.hooks.clone().unwrap_or_default();
    // Init's own hooks need the container state, which reaches init with
    // the runtime's `Go` after a runtime turn: have one whenever they exist.
    if !hooks.prestart.is_empty()
        || !hooks.create_runtime.is_empty()
        || !hooks.create_container.is_empty()
    {
        b.push(RuntimeStep::RuntimeHooks {
            prestart: hooks.prestart.clone(),
            create_runtime: hooks.create_runtime.clone(),
        });
    }
    if !hooks.create_container.is_empty() {
        b.push(InitStep::CreateContainerHooks {
            hooks: hooks.create_container.clone(),
        });
    }
    b.push(if opts.no_pivot {
        InitStep::ChrootNoPivot
    } else {
        InitStep::PivotRoot
    });
    if let Some(flags) = linux
        .rootfs_propagation
        .as_deref()
        .and_then(propagation_flags)
        .filter(|f| f & libc::MS_PRIVATE == 0)
    {
        b.push(InitStep::SetNewRootPropagation { flags });
    }
    if dev_readonly {
        b.push(InitStep::RemountReadonly {
            path: PathBuf::from("/dev"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        Spec::from_json(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "process": {"args": ["sh"], "cwd": "/", "noNewPrivileges": true,
                        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}},
            "hostname": "box",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}, {"type": "network", "path": "/run/netns/x"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]
            }
        })
    }

    fn opts() -> Options {
        Options {
            id: "t".into(),
            bundle: "/b".into(),
            state_dir: "/run/berth/t".into(),
            cgroup_path: "/berth/t".into(),
            ..Default::default()
        }
    }

    fn names(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| {
                serde_json::to_value(s).unwrap()["step"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn pos(p: &Plan, name: &str) -> usize {
        names(p)
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    }

    #[test]
    fn order_of_the_big_steps() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        // namespaces: join by path before creating; user ns before the rest
        assert!(pos(&p, "join_namespace") < pos(&p, "unshare_user_namespace"));
        assert!(pos(&p, "unshare_user_namespace") < pos(&p, "write_id_maps"));
        assert!(pos(&p, "write_id_maps") < pos(&p, "unshare"));
        assert!(pos(&p, "unshare") < pos(&p, "fork_init"));
        // rootfs: propagation first, pivot after mounts, masks after pivot
        assert!(pos(&p, "fork_init") < pos(&p, "set_root_propagation"));
        let first_mount_step = ["bind_rootfs", "mount", "create_device", "pivot_root"]
            .iter()
            .map(|n| pos(&p, n))
            .min()
            .unwrap();
        assert!(pos(&p, "set_root_propagation") < first_mount_step);
        assert!(pos(&p, "mount") < pos(&p, "pivot_root"));
        assert!(pos(&p, "pivot_root") < pos(&p, "mask_path"));
        assert!(pos(&p, "readonly_path") < pos(&p, "readonly_root"));
        // process: caps dropped before the user switch; exec last
        assert!(pos(&p, "drop_bounding_caps") < pos(&p, "switch_user"));
        assert!(pos(&p, "switch_user") < pos(&p, "set_capabilities"));
        assert_eq!(names(&p).last().unwrap(), "exec");
        assert!(pos(&p, "close_host_fds") < pos(&p, "report_created"));
    }

    #[test]
    fn user_namespace_binds_devices() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        assert!(p.steps.iter().any(|s| matches!(s, Step::Init(InitStep::CreateDevice(d)) if d.bind && d.path == Path::new("/dev/null"))));
        assert!(p.new_userns && p.own_pidns);
    }

    #[test]
    fn bind_mount_flags_go_to_remount() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        let m = p
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Init(InitStep::Mount(m)) if m.bind => Some(m.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(m.source.as_deref(), Some(Path::new("/b/data")));
        assert_eq!(m.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(m.remount_flags, Some(libc::MS_RDONLY | libc::MS_NOSUID));
    }

    #[test]
    fn user_namespace_has_the_runtime_open_bind_sources() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        let sources = p
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Runtime(RuntimeStep::OpenMountSources { sources }) => Some(sources.clone()),
                _ => None,
            })
            .expect("an open_mount_sources step");
        assert_eq!(
            sources,
            [MountSource {
                index: 1,
                source: "/b/data".into()
            }]
        );
        // In the new mount namespace (after unshare), while stage 1 waits.
        assert!(pos(&p, "unshare") < pos(&p, "open_mount_sources"));
        assert!(pos(&p, "open_mount_sources") < pos(&p, "fork_init"));
        // Without a user namespace init opens them itself.
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
        v["linux"]["uidMappings"] = serde_json::json!([]);
        v["linux"]["gidMappings"] = serde_json::json!([]);
        v["hostname"] = serde_json::Value::Null;
        let p = Plan::new(&spec(v), &opts(), None).unwrap();
        assert!(!names(&p).contains(&"open_mount_sources".to_string()));
    }

    #[test]
    fn terminal_needs_console_socket() {
        let mut v = base();
        v["process"]["terminal"] = true.into();
        let e = Plan::new(&spec(v.clone()), &opts(), None).unwrap_err();
        assert_eq!(e.field, "process.terminal");
        let mut o = opts();
        o.console_socket = true;
        let p = Plan::new(&spec(v), &o, None).unwrap();
        assert!(pos(&p, "open_console") > pos(&p, "pivot_root"));
    }

    #[test]
    fn no_pivot_and_no_mount_namespace() {
        let mut o = opts();
        o.no_pivot = true;
        let p = Plan::new(&spec(base()), &o, None).unwrap();
        assert!(names(&p).contains(&"chroot_no_pivot".to_string()));
        let mut v = base();
        v["linux"] = serde_json::json!({"namespaces": [{"type": "pid"}]});
        v["hostname"] = serde_json::Value::Null;
        let p = Plan::new(&spec(v), &opts(), None).unwrap();
        assert!(!names(&p).contains(&"pivot_root".to_string()));
    }

    #[test]
    fn render_mentions_every_step() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        let text = p.render();
        assert_eq!(text.matches("why:").count(), p.steps.len());
        assert!(text.contains("setns network /run/netns/x"));
        for p in [
            Phase::Host,
            Phase::Namespaces,
            Phase::Rootfs,
            Phase::Process,
            Phase::Start,
        ] {
            assert!(text.contains(&format!("[{}]", p.title())), "{text}");
        }
        // Each step line names its actor: a runtime step inside stage 1's phase too.
        assert!(
            text.contains("runtime  move stage 1 into the cgroup"),
            "{text}"
        );
    }

    #[test]
    fn phases_cover_every_step_once_in_order() {
        for p in [
            Plan::new(&spec(base()), &opts(), None).unwrap(),
            Plan::for_exec(
                &spec(base()),
                &spec(base()).process.unwrap(),
                42,
                &opts(),
                None,
            )
            .unwrap(),
        ] {
            let mut next = 0;
            for run in p.phases() {
                assert_eq!(run.first, next, "{:?}", run.phase);
                assert!(!run.steps.is_empty(), "{:?} is empty", run.phase);
                next += run.steps.len();
            }
            assert_eq!(next, p.steps.len());
            // Each phase ends where its walker's work ends.
            let host = p.walked_by(Actor::Runtime);
            assert_eq!(host.last(), Some(&Step::Runtime(RuntimeStep::SpawnStage1)));
            let stage1 = p.walked_by(Actor::Stage1);
            assert_eq!(stage1.last(), Some(&Step::Stage1(Stage1Step::ForkInit)));
            let init = p.walked_by(Actor::Init);
            assert_eq!(init.first(), Some(&Step::Init(InitStep::ClearUmask)));
            assert!(matches!(
                init.last(),
                Some(Step::Init(InitStep::Exec { .. }))
            ));
            assert_eq!(host.len() + stage1.len() + init.len(), p.steps.len());
        }
    }

    #[test]
    fn hidden_setup_is_in_the_plan() {
        let mut o = opts();
        o.console_socket = true;
        let mut v = base();
        v["process"]["terminal"] = true.into();
        let p = Plan::new(&spec(v), &o, None).unwrap();
        // Stage 1 dies with the runtime and is not dumpable before any namespace step.
        assert!(pos(&p, "set_parent_death_signal") < pos(&p, "join_namespace"));
        assert!(pos(&p, "set_not_dumpable") < pos(&p, "join_namespace"));
        // The fifo and the console connection exist before stage 1 is forked.
        assert!(pos(&p, "create_exec_fifo") < pos(&p, "spawn_stage1"));
        assert!(pos(&p, "connect_console") < pos(&p, "spawn_stage1"));
        // The uid change clears the parent-death signal: set again right after.
        assert_eq!(
            pos(&p, "restore_parent_death_signal"),
            pos(&p, "switch_user") + 1
        );
        // umask 0 while building, the process umask later; signals reset just before execve.
        assert!(pos(&p, "clear_umask") < pos(&p, "mount"));
        assert!(pos(&p, "umask") > pos(&p, "switch_user"));
        assert_eq!(pos(&p, "reset_signals") + 1, pos(&p, "exec"));
        // The runtime's turns: join the cgroup and write the id maps in one turn;
        // then, in the new mount namespace, open the bind sources for init.
        let turns = p.runtime_turns();
        assert_eq!(turns.len(), 2, "{turns:?}");
        assert!(matches!(
            turns[0][..],
            [RuntimeStep::JoinCgroup, RuntimeStep::WriteIdMaps { .. }]
        ));
        assert!(matches!(
            turns[1][..],
            [RuntimeStep::OpenMountSources { .. }]
        ));
    }

    #[test]
    fn json_rows_carry_actor_and_phase() {
        let p = Plan::new(&spec(base()), &opts(), None).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), p.steps.len());
        let row = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap().clone();
        assert_eq!(row("join_cgroup")["actor"], "runtime");
        assert_eq!(row("join_cgroup")["phase"], "namespaces");
        assert_eq!(row("mount")["actor"], "init");
        assert_eq!(row("mount")["phase"], "rootfs");
        assert_eq!(row("mount")["destination"], "/proc");
        assert_eq!(row("create_device")["path"], "/dev/null");
        assert_eq!(row("exec")["phase"], "start");
    }

    #[test]
    fn without_a_mount_namespace_chroots_and_mounts_nothing() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "uts"}]);
        let l = v["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
        v["linux"]["sysctl"] = serde_json::json!({"kernel.domainname": "d"});
        let s = spec(v);
        let p = Plan::new(&s, &opts(), None).unwrap();
        let chroot = pos(&p, "chroot_without_mount_namespace");
        assert!(pos(&p, "sysctl") < chroot && pos(&p, "set_hostname") < chroot);
        assert!(chroot < pos(&p, "chdir_as_root"));
        let n = names(&p);
        for never in [
            "bind_rootfs",
            "mount",
            "pivot_root",
            "mask_path",
            "readonly_path",
            "readonly_root",
        ] {
            assert!(!n.iter().any(|x| x == never), "{never} in {n:?}");
        }
        let w = no_mountns_warnings(&s);
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[0].starts_with("mounts[0] (/proc): not mounted: "));
        assert!(w[1].starts_with("mounts[1] (/data): not mounted: "));
        assert!(w[2].starts_with("linux.maskedPaths[0] (/proc/kcore): not masked: "));
        assert!(w[3].starts_with("linux.readonlyPaths[0] (/proc/sys): not made read-only: "));
        assert!(w[4].starts_with("root.readonly: "));
        assert!(w
            .iter()
            .all(|m| m.contains(r#"add {"type":"mount"} to linux.namespaces"#)));
        // With a mount namespace the rootfs is built and pivoted into instead.
        assert!(!names(&Plan::new(&spec(base()), &opts(), None).unwrap())
            .iter()
            .any(|x| x == "chroot_without_mount_namespace"));
    }
}
