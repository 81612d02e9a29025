//! Containers under runc or crun: bundles, runtime specs, namespaces, network, lifecycle.
//!
//! One container runs per pod. [`ContainerRuntime::start`] gives it:
//!
//! * a network namespace of its own (`/var/run/netns/skiff-<id>`, made with `ip netns add`)
//!   with `lo` up and an `eth0` that is one end of a veth pair whose host end
//!   (`skiff-<hex index>`) sits on the bridge `skiff0` (10.88.0.1/16); the pod gets the address
//!   10.88.x.y/16 that the index names and a default route via 10.88.0.1. The host reaches the
//!   pod's address directly; nothing here enables forwarding or NAT for traffic beyond the host;
//! * an overlay root: the image rootfs is the read-only lower dir (never written), the upper
//!   and work dirs are the pod's own and go away with it;
//! * `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` written into the bundle and bind
//!   mounted (the host's non-loopback nameservers, else 8.8.8.8 and 8.8.4.4);
//! * a `config.json` built with `oci-spec`: Docker's default capabilities, `noNewPrivileges`,
//!   its masked and read-only paths, namespaces pid/mount/ipc/uts/network, a deny-all device
//!   cgroup (the runtime then allows its standard devices), the memory and CPU limits in the
//!   cgroup `/skiff/<id>`;
//! * `runc run` (or `crun run`) as a foreground child whose stdout and stderr lines go to the
//!   caller's log function. A `poststart` hook tells [`ContainerRuntime::start`] that the
//!   process is running; a failure before that is a [`ContainerError::Start`] carrying the
//!   runtime's stderr.
//!
//! [`Container::stop`] signals, waits for the grace period, kills, then removes every trace:
//! runtime state, cgroups, overlay mount, bundle, netns, veth and the address.
//! [`ContainerRuntime::new`] removes what an earlier process left under the same work dir.
//!
//! Everything here needs root (namespaces, mounts, cgroups, links).

mod error;
mod network;
mod runtime;
mod spec;
mod user;

use std::path::PathBuf;
use std::str::FromStr;

pub use error::ContainerError;
pub use runtime::{Container, ContainerRuntime};

/// The OCI runtime that runs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// `runc`: exit codes, OOM kills from the memory cgroup (kept with `--keep`).
    Runc,
    /// `crun`: on a hybrid cgroup host it runs in a private mount namespace without the
    /// cgroup2 mount (crun refuses hybrid hosts whose cgroup2 has controllers); it applies the
    /// limits through the v1 controllers then. It removes the cgroup as the process exits, so
    /// an OOM kill is inferred: the process died of SIGKILL that Skiff did not send (a
    /// container's pid 1 cannot be SIGKILLed from inside its own pid namespace) while a memory
    /// limit was set.
    Crun,
}

impl RuntimeKind {
    /// The runtime's binary name.
    pub fn binary(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

impl FromStr for RuntimeKind {
    type Err = ContainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "runc" => Ok(RuntimeKind::Runc),
            "crun" => Ok(RuntimeKind::Crun),
            other => Err(ContainerError::UnknownRuntime(other.to_string())),
        }
    }
}

/// What to run. The platform merges the image config and the Knative container fields before
/// this (see [`merge_args`]).
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Unique among running containers, DNS-label-ish (the pod name): letters, digits, `-`,
    /// `_`, `.`, at most 128 characters.
    pub id: String,
    /// The image's unpacked root filesystem: the overlay's lower dir, never written.
    pub rootfs: PathBuf,
    /// The argv, non-empty; `args[0]` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// The final environment (`PORT` included by the caller). `PATH` and `HOSTNAME` are added
    /// when missing.
    pub env: Vec<(String, String)>,
    /// Absolute; empty means `/`.
    pub working_dir: String,
    /// Image/Kubernetes style: `uid`, `uid:gid`, `name` or `name:group`, names resolved against
    /// the rootfs `/etc/passwd` and `/etc/group`. `None` is root.
    pub user: Option<String>,
    /// The container's hostname; empty means the id.
    pub hostname: String,
    /// Bytes: the cgroup memory limit (memory+swap too where the kernel accounts swap).
    pub memory_limit: Option<u64>,
    /// Millicores: the CFS quota over a 100 ms period.
    pub cpu_limit_millis: Option<u64>,
}

/// The number of a signal named as in an image's `STOPSIGNAL`: `SIGQUIT`, `QUIT` or `3`.
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(number) = name.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(number).ok().map(|s| s as i32);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<nix::sys::signal::Signal>().ok().map(|s| s as i32)
}

/// How a container's process ended.
///
/// The runtimes report a death by signal as the shell does, `128 + signal`; an exit status
/// between 129 and 192 therefore reads as that signal (as Docker's 137 reads as SIGKILL), and a
/// process that calls `exit(137)` looks killed. Both fields are `None` when the end could not be
/// observed (the async runtime that watched it shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit status, when the process exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Whether the kernel OOM-killed a process in the container's memory cgroup.
    pub oom_killed: bool,
}

impl Exit {
    /// Whether the process exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Docker's (and Knative's) merge of an image's `ENTRYPOINT`/`CMD` with a container's
/// `command`/`args`:
///
/// * `command` set: it replaces `ENTRYPOINT` and the image's `CMD` is dropped; `args` (if set)
///   follow it.
/// * only `args` set: `ENTRYPOINT` followed by `args` (which replace `CMD`).
/// * neither: `ENTRYPOINT` followed by `CMD`.
///
/// An empty `command` counts as unset, as in Kubernetes; so does an empty `args`.
pub fn merge_args(
    entrypoint: &[String],
    cmd: &[String],
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Vec<String> {
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    match (command, args) {
        (Some(command), args) => command.iter().chain(args.unwrap_or_default()).cloned().collect(),
        (None, Some(args)) => entrypoint.iter().chain(args).cloned().collect(),
        (None, None) => entrypoint.iter().chain(cmd).cloned().collect(),
    }
}
