//! The container lifecycle: bundle, overlay, network, `runc run`, exit watching, teardown.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::network::{self, Ipam, PodNetwork};
use super::spec::{self, SpecInput};
use super::{ContainerConfig, ContainerError, Exit, RuntimeKind, user};

/// The log sink a container's output lines go to: `("stdout" | "stderr", line)`.
type LogFn = Arc<dyn Fn(&'static str, String) + Send + Sync>;

/// The longest log line passed on whole; longer ones are split.
const MAX_LINE: usize = 16 * 1024;
/// How long the runtime may take to start the process (pulls are done before, so this is only
/// namespaces, mounts and exec).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGKILLed container may take to be reaped before cleanup goes ahead anyway.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the output pipes may stay open after the runtime exits (a stray holder of the pipe).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The default open-files limit (Docker's), capped at the kernel's `nr_open` and at this
/// process's own hard limit.
const NOFILE: u64 = 1 << 20;
/// The cgroup v2 mount of a hybrid host, which crun must not see.
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
/// The shell that runs the started hook (and the crun wrapper).
const SHELL: &str = "/bin/sh";

/// Runs containers under runc or crun. `Send + Sync`; share it behind an `Arc`.
pub struct ContainerRuntime {
    shared: Arc<Shared>,
}

/// What containers and their cleanup need from the runtime.
struct Shared {
    tool: Tool,
    ip: PathBuf,
    work_dir: PathBuf,
    bundles: PathBuf,
    ipam: Mutex<Ipam>,
    active: Mutex<HashSet<String>>,
    cgroups: Cgroups,
    nofile: u64,
}

/// How to invoke the OCI runtime.
#[derive(Debug, Clone)]
struct Tool {
    kind: RuntimeKind,
    program: PathBuf,
    /// The state directory (`--root`).
    root: PathBuf,
    /// crun on a hybrid cgroup host: run it through `unshare` in a mount namespace without the
    /// cgroup2 mount.
    unshare: Option<PathBuf>,
}

impl Tool {
    /// Program and arguments for `args` (after the global `--root`).
    fn argv(&self, args: &[&str]) -> (PathBuf, Vec<OsString>) {
        let mut argv: Vec<OsString> = Vec::new();
        let program = match &self.unshare {
            Some(unshare) => {
                argv.extend(["--mount", "--propagation", "private", "--", SHELL, "-c"].map(OsString::from));
                argv.push(format!("umount -l {HYBRID_UNIFIED} 2>/dev/null; exec \"$0\" \"$@\"").into());
                argv.push(self.program.clone().into());
                unshare.clone()
            }
            None => self.program.clone(),
        };
        argv.push("--root".into());
        argv.push(self.root.clone().into());
        if self.kind == RuntimeKind::Crun {
            argv.push("--cgroup-manager=cgroupfs".into());
        }
        argv.extend(args.iter().map(OsString::from));
        (program, argv)
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let (program, argv) = self.argv(args);
        let mut command = tokio::process::Command::new(program);
        command.args(argv).stdin(Stdio::null());
        command
    }

    /// Runs `args` to completion; `Err` carries the exit status and stderr.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("`{} {}`: {e}", self.kind, args.join(" ")))?;
        tool_result(self.kind, args, output)
    }

    fn run_blocking(&self, args: &[&str]) -> Result<String, String> {
        let (program, argv) = self.argv(args);
        let output = std::process::Command::new(program)
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{} {}`: {e}", self.kind, args.join(" ")))?;
        tool_result(self.kind, args, output)
    }

    /// Whether the runtime still has state for `id`.
    fn has_state(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }
}

fn tool_result(kind: RuntimeKind, args: &[&str], output: std::process::Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{kind} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Where containers' memory cgroups are, to read OOM kills and remove leftovers.
#[derive(Debug, Clone)]
enum Cgroups {
    /// cgroup v1 (also the hybrid layout): the memory hierarchy, and whether it accounts swap.
    V1 { memory: PathBuf, swap: bool },
    /// The unified hierarchy, and whether the host has swap (to keep containers off it).
    V2 { root: PathBuf, swap: bool },
}

impl Cgroups {
    fn detect() -> Self {
        let memory = PathBuf::from("/sys/fs/cgroup/memory");
        if memory.join("memory.limit_in_bytes").exists() || memory.join("memory.usage_in_bytes").exists() {
            let swap = memory.join("memory.memsw.limit_in_bytes").exists();
            Cgroups::V1 { memory, swap }
        } else {
            let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
            Cgroups::V2 { root: PathBuf::from("/sys/fs/cgroup"), swap: swaps.lines().count() > 1 }
        }
    }

    fn limit_swap(&self) -> bool {
        matches!(self, Cgroups::V1 { swap: true, .. } | Cgroups::V2 { swap: true, .. })
    }

    /// How many processes the kernel OOM-killed in the container's memory cgroup, if it is still
    /// there to ask.
    fn oom_kills(&self, id: &str) -> Option<u64> {
        let relative = spec::cgroups_path(id);
        let relative = relative.trim_start_matches('/');
        let (file, key) = match self {
            Cgroups::V1 { memory, .. } => (memory.join(relative).join("memory.oom_control"), "oom_kill"),
            Cgroups::V2 { root, .. } => (root.join(relative).join("memory.events"), "oom_kill"),
        };
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Removes the container's cgroup directories in every hierarchy (they are empty once its
    /// processes are gone; the runtime usually removed them already).
    fn remove(&self, id: &str) -> Vec<String> {
        let relative = spec::cgroups_path(id);
        let relative = relative.trim_start_matches('/');
        let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            hierarchies.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        let mut problems = Vec::new();
        for hierarchy in hierarchies {
            let dir = hierarchy.join(relative);
            if dir.is_dir()
                && let Err(e) = std::fs::remove_dir(&dir)
                && dir.exists()
            {
                problems.push(format!("removing cgroup {}: {e}", dir.display()));
            }
        }
        problems
    }
}

/// What a pod left on the host, recorded in its bundle (`pod.json`) so that a later process
/// can remove it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PodRecord {
    id: String,
    network: PodNetwork,
}

impl Shared {
    fn bundle(&self, id: &str) -> PathBuf {
        self.bundles.join(id)
    }

    /// Removes every trace of container `id`: runtime state and cgroups, the overlay mount, the
    /// network, the bundle (with the upper dir). Blocking; missing pieces are fine. Returns what
    /// could not be removed.
    fn teardown(&self, record: &PodRecord) -> Vec<String> {
        let id = &record.id;
        let mut problems = Vec::new();
        if self.tool.has_state(id)
            && let Err(message) = self.tool.run_blocking(&["delete", "--force", id])
            && self.tool.has_state(id)
        {
            problems.push(message);
        }
        problems.extend(self.cgroups.remove(id));
        let bundle = self.bundle(id);
        let merged = bundle.join("rootfs");
        let mounted = match unmount(&merged) {
            Ok(()) => false,
            Err(message) => {
                problems.push(message);
                true
            }
        };
        problems.extend(network::teardown(&self.ip, &record.network, &self.ipam));
        if !mounted
            && bundle.exists()
            && let Err(e) = std::fs::remove_dir_all(&bundle)
        {
            problems.push(format!("removing bundle {}: {e}", bundle.display()));
        }
        self.active.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        problems
    }

    fn write_record(&self, record: &PodRecord) -> Result<(), ContainerError> {
        let path = self.bundle(&record.id).join("pod.json");
        let json = serde_json::to_vec(record).unwrap_or_default();
        std::fs::write(&path, json).map_err(|e| ContainerError::io(format!("writing {}", path.display()), e))
    }

    /// Removes what an earlier process left under the work dir: containers in the runtime's
    /// state, recorded pods (mounts, netns, veths, cgroups, bundles), other mounts.
    fn clean_leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let listed = self.tool.run_blocking(&["list", "--quiet"]).unwrap_or_default();
        for id in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Err(message) = self.tool.run_blocking(&["delete", "--force", id])
                && self.tool.has_state(id)
            {
                problems.push(message);
            }
            problems.extend(self.cgroups.remove(id));
        }
        if let Ok(entries) = std::fs::read_dir(&self.bundles) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let record = std::fs::read(entry.path().join("pod.json"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<PodRecord>(&bytes).ok())
                    .unwrap_or_else(|| PodRecord { network: PodNetwork::for_id(&id), id: id.clone() });
                tracing::info!(container = %id, "removing a container an earlier process left");
                problems.extend(self.teardown(&record));
            }
        }
        for mount_point in mounts_under(&self.work_dir) {
            if let Err(message) = unmount(&mount_point) {
                problems.push(message);
            }
        }
        problems
    }
}

/// Unmounts `path` if it is a mount point (lazily when busy).
fn unmount(path: &Path) -> Result<(), String> {
    if !mounts_under(path).iter().any(|m| m == path) {
        return Ok(());
    }
    match nix::mount::umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(_) => nix::mount::umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmounting {}: {e}", path.display())),
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(unescape_mount_path(escaped)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = escaped.get(i + 1..i + 4)
            && let Ok(value) = u8::from_str_radix(octal, 8)
        {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's hard open-files limit: without CAP_SYS_RESOURCE a container cannot get more.
fn own_nofile_hard_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let hard = line.trim_start_matches("Max open files").split_whitespace().nth(1)?;
    if hard == "unlimited" { Some(u64::MAX) } else { hard.parse().ok() }
}

/// The first `name` on `PATH` (or the usual system directories).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn require_program(name: &str, purpose: &str) -> Result<PathBuf, ContainerError> {
    find_program(name).ok_or_else(|| ContainerError::Unavailable {
        tool: name.to_string(),
        message: format!("not found on PATH; it is needed {purpose}"),
    })
}

/// Whether crun would refuse this host: a hybrid layout whose cgroup2 has controllers.
fn crun_needs_private_cgroup_view() -> bool {
    std::fs::read_to_string(Path::new(HYBRID_UNIFIED).join("cgroup.controllers"))
        .is_ok_and(|controllers| !controllers.trim().is_empty())
}

impl ContainerRuntime {
    /// A runtime keeping bundles, overlay upper/work dirs and the OCI runtime's state (`--root`)
    /// under `work_dir`. Creates the bridge `skiff0` (10.88.0.1/16) if missing and removes what
    /// an earlier process left under the same `work_dir`: containers in its state dir, overlay
    /// and other mounts, the network namespaces and veths its pods recorded, their cgroups and
    /// bundles. Needs root.
    pub async fn new(kind: RuntimeKind, work_dir: &Path) -> Result<Self, ContainerError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(ContainerError::Unavailable {
                tool: "root privileges".into(),
                message: "containers need root (namespaces, mounts, cgroups, network links)".into(),
            });
        }
        let program = require_program(kind.binary(), "to run containers")?;
        let ip = require_program("ip", "(iproute2) for pod networks")?;
        if !Path::new(SHELL).is_file() {
            return Err(ContainerError::Unavailable {
                tool: SHELL.into(),
                message: "missing; it runs the runtime's started hook".into(),
            });
        }
        let unshare = if kind == RuntimeKind::Crun && crun_needs_private_cgroup_view() {
            Some(require_program("unshare", "(util-linux) to run crun on a hybrid cgroup host")?)
        } else {
            None
        };

        let create = |dir: &Path| {
            std::fs::create_dir_all(dir)
                .map_err(|e| ContainerError::io(format!("creating {}", dir.display()), e))
        };
        create(work_dir)?;
        let work_dir = work_dir
            .canonicalize()
            .map_err(|e| ContainerError::io(format!("resolving {}", work_dir.display()), e))?;
        let state = work_dir.join("state");
        let bundles = work_dir.join("bundles");
        create(&state)?;
        create(&bundles)?;
        for path in [&work_dir, &bundles] {
            let text = path.to_string_lossy();
            if text.contains([',', ':', '\n']) {
                return Err(ContainerError::InvalidConfig {
                    id: String::new(),
                    message: format!("work dir {text:?} must not contain ',' or ':' (overlay options)"),
                });
            }
        }

        let tool = Tool { kind, program, root: state, unshare };
        let version = tool
            .run(&["--version"])
            .await
            .map_err(|message| ContainerError::Unavailable { tool: kind.binary().into(), message })?;
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(NOFILE);
        let shared = Arc::new(Shared {
            tool,
            ip,
            work_dir: work_dir.clone(),
            bundles,
            ipam: Mutex::new(Ipam::default()),
            active: Mutex::new(HashSet::new()),
            cgroups: Cgroups::detect(),
            nofile: NOFILE.min(nr_open).min(own_nofile_hard_limit().unwrap_or(NOFILE)),
        });

        let cleaner = shared.clone();
        let problems = tokio::task::spawn_blocking(move || cleaner.clean_leftovers())
            .await
            .unwrap_or_else(|e| vec![format!("cleanup task failed: {e}")]);
        if !problems.is_empty() {
            tracing::warn!(work_dir = %work_dir.display(), problems = %problems.join("; "), "leftovers remain");
        }
        network::ensure_bridge(&shared.ip).await?;
        tracing::info!(
            runtime = %kind,
            version = version.lines().next().unwrap_or_default(),
            work_dir = %work_dir.display(),
            private_cgroup_view = shared.tool.unshare.is_some(),
            "container runtime ready"
        );
        Ok(ContainerRuntime { shared })
    }

    /// Which runtime this is.
    pub fn kind(&self) -> RuntimeKind {
        self.shared.tool.kind
    }

    /// Starts a container: its network namespace (own address on `skiff0`, default route via
    /// 10.88.0.1, `lo` up), the overlay root, `/etc/hosts`, `/etc/hostname`,
    /// `/etc/resolv.conf`, `config.json`, then `runc run` (or `crun run`) as a foreground child
    /// with stdin from `/dev/null` and stdout/stderr lines sent to `log`. Returns once the
    /// process runs: the runtime's `poststart` hook fired and, under runc, init consumed the
    /// exec FIFO (it execs right after). A process that has not yet installed its SIGTERM
    /// handler ignores SIGTERM (it is pid 1), so a stop right after start may take the grace.
    /// On failure, or if the future is dropped part way, everything made so far is removed.
    /// Output lines reach `log` until the process exits; [`Container::wait`] resolves after
    /// the last of them.
    pub async fn start(&self, config: ContainerConfig, log: LogFn) -> Result<Container, ContainerError> {
        let began = Instant::now();
        let shared = &self.shared;
        validate(&config)?;
        let id = config.id.clone();
        if !shared.active.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone()) {
            return Err(ContainerError::AlreadyExists { id });
        }
        let mut guard = StartGuard {
            shared: shared.clone(),
            record: PodRecord { id: id.clone(), network: PodNetwork::for_id(&id) },
            armed: true,
        };
        match self.prepare_and_run(&config, log, &mut guard).await {
            Ok(container) => {
                guard.armed = false;
                tracing::debug!(container = %id, ip = %container.ip, elapsed_ms = began.elapsed().as_millis() as u64, "container started");
                Ok(container)
            }
            Err(error) => {
                guard.armed = false;
                let shared = shared.clone();
                let record = guard.record.clone();
                let problems =
                    tokio::task::spawn_blocking(move || shared.teardown(&record)).await.unwrap_or_default();
                if !problems.is_empty() {
                    tracing::warn!(container = %id, problems = %problems.join("; "), "cleanup after a failed start left something");
                }
                Err(error)
            }
        }
    }

    async fn prepare_and_run(
        &self,
        config: &ContainerConfig,
        log: LogFn,
        guard: &mut StartGuard,
    ) -> Result<Container, ContainerError> {
        let shared = &self.shared;
        let id = config.id.as_str();
        let user = user::resolve(&config.rootfs, config.user.as_deref()).map_err(|message| {
            ContainerError::User {
                id: id.to_string(),
                user: config.user.clone().unwrap_or_default(),
                message,
            }
        })?;

        // A bundle of this id left by a failed cleanup: remove it first.
        let bundle = shared.bundle(id);
        if bundle.exists() {
            let (stale, record) = (shared.clone(), guard.record.clone());
            let problems =
                tokio::task::spawn_blocking(move || stale.teardown(&record)).await.unwrap_or_default();
            shared.active.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string());
            if bundle.exists() {
                return Err(ContainerError::Io {
                    what: format!("removing the stale bundle {}", bundle.display()),
                    source: std::io::Error::other(problems.join("; ")),
                });
            }
        }
        let upper = bundle.join("upper");
        let work = bundle.join("work");
        let merged = bundle.join("rootfs");
        for dir in [&upper, &work, &merged] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ContainerError::io(format!("creating {}", dir.display()), e))?;
        }
        shared.write_record(&guard.record)?;

        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            config.rootfs.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| ContainerError::Mount {
            id: id.to_string(),
            message: format!("overlay {options}: {e}"),
        })?;

        let setup = network::setup(&shared.ip, id, &shared.ipam, &mut guard.record.network).await;
        shared.write_record(&guard.record)?;
        setup?;
        let ip = guard.record.network.ip.ok_or_else(|| ContainerError::Network {
            id: id.to_string(),
            message: "no address was assigned".into(),
        })?;

        let hostname = if config.hostname.is_empty() { id } else { config.hostname.as_str() };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            ("hosts", network::hosts(ip, hostname)),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", network::resolv_conf(&host_resolv)),
        ];
        for (name, content) in files {
            let path = bundle.join(name);
            std::fs::write(&path, content)
                .map_err(|e| ContainerError::io(format!("writing {}", path.display()), e))?;
        }

        // The poststart hook writes to this FIFO; opening it read-write on both ends means
        // neither side blocks, whoever comes first.
        let fifo = bundle.join("started");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
            ContainerError::io(format!("creating {}", fifo.display()), std::io::Error::from(e))
        })?;
        let started = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&fifo)
            .map_err(|e| ContainerError::io(format!("opening {}", fifo.display()), e))?;

        let mut env: Vec<String> = config.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !config.env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
        }
        if !config.env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(format!("HOSTNAME={hostname}"));
        }
        let cwd = if config.working_dir.is_empty() { "/" } else { config.working_dir.as_str() };
        let netns = guard.record.network.netns_path();
        let spec = spec::build(&SpecInput {
            id,
            args: &config.args,
            env,
            cwd,
            user: &user,
            hostname,
            root: &merged,
            bundle: &bundle,
            netns: &netns,
            memory_limit: config.memory_limit,
            limit_swap: shared.cgroups.limit_swap(),
            cpu_limit_millis: config.cpu_limit_millis,
            nofile: shared.nofile,
            started_hook: (
                SHELL.into(),
                vec![
                    "sh".into(),
                    "-c".into(),
                    // Read the state the runtime writes on stdin: a hook that exits without
                    // reading it can leave crun with a SIGPIPE that it forwards or dies of.
                    "exec 3<>\"$0\" && echo started >&3; while IFS= read -r _; do :; done".into(),
                    fifo.to_string_lossy().into_owned(),
                ],
            ),
        })
        .map_err(|message| ContainerError::InvalidConfig { id: id.to_string(), message })?;
        let config_json = bundle.join("config.json");
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| ContainerError::InvalidConfig {
            id: id.to_string(),
            message: format!("serializing the runtime spec: {e}"),
        })?;
        std::fs::write(&config_json, json)
            .map_err(|e| ContainerError::io(format!("writing {}", config_json.display()), e))?;

        let bundle_arg = bundle.to_string_lossy().into_owned();
        let mut args = vec!["run", "--bundle", bundle_arg.as_str()];
        if shared.tool.kind == RuntimeKind::Runc {
            // Keep the stopped container (and its cgroup) so its OOM count can be read.
            args.push("--keep");
        }
        args.push(id);
        let mut child = shared
            .tool
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| ContainerError::Start {
                runtime: shared.tool.kind.to_string(),
                id: id.to_string(),
                stderr: format!("spawning {}: {e}", shared.tool.program.display()),
            })?;
        let early = Arc::new(EarlyLines { lines: Mutex::new(Vec::new()), collecting: AtomicBool::new(true) });
        let stdout = child.stdout.take().map(|out| spawn_lines(out, "stdout", log.clone(), None));
        let stderr = child.stderr.take().map(|err| spawn_lines(err, "stderr", log, Some(early.clone())));
        let log_tasks: Vec<JoinHandle<()>> = stdout.into_iter().chain(stderr).collect();

        let mut buf = [0u8; 64];
        let hook = async {
            loop {
                started.readable().await?;
                match started.try_read(&mut buf) {
                    Ok(n) if n > 0 => return Ok::<(), std::io::Error>(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        };
        let outcome = tokio::time::timeout(START_TIMEOUT, async {
            tokio::select! {
                hook = hook => hook.map(|()| None),
                status = child.wait() => status.map(Some),
            }
        })
        .await;
        let failure = match outcome {
            Ok(Ok(None)) => None,
            // A quick process may exit before this notices the hook; the hook's word still counts.
            Ok(Ok(Some(_))) if matches!(started.try_read(&mut buf), Ok(n) if n > 0) => None,
            Ok(Ok(Some(status))) => Some(format!("the runtime exited ({status}) before the process started")),
            Ok(Err(e)) => Some(format!("waiting for the process to start: {e}")),
            Err(_) => Some(format!("the process did not start within {START_TIMEOUT:?}")),
        };
        if let Some(reason) = failure {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, child.wait()).await;
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures_join(log_tasks)).await;
            let said = early.lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            let stderr = if said.trim().is_empty() { reason } else { format!("{said} ({reason})") };
            return Err(ContainerError::Start {
                runtime: shared.tool.kind.to_string(),
                id: id.to_string(),
                stderr,
            });
        }
        drop(started);
        early.collecting.store(false, Ordering::SeqCst);
        early.lines.lock().unwrap_or_else(|e| e.into_inner()).clear();

        // runc runs poststart hooks once init is set up but before it execs the process; it
        // then reads the exec FIFO (init writes it right before exec) and removes it. Until
        // then a signal would hit the runtime's init, not the process. crun has no FIFO here.
        let exec_fifo = shared.tool.root.join(id).join("exec.fifo");
        let deadline = Instant::now() + START_TIMEOUT;
        while exec_fifo.exists() && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let (exit_tx, exit_rx) = watch::channel(None);
        let killed = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_exit(WatchExit {
            child,
            log_tasks,
            tool: shared.tool.clone(),
            cgroups: shared.cgroups.clone(),
            id: id.to_string(),
            memory_limited: config.memory_limit.is_some(),
            killed: killed.clone(),
            exit_tx,
        }));
        Ok(Container {
            id: id.to_string(),
            ip,
            exit: exit_rx,
            killed,
            stopped: tokio::sync::Mutex::new(false),
            shared: shared.clone(),
            record: guard.record.clone(),
        })
    }
}

fn validate(config: &ContainerConfig) -> Result<(), ContainerError> {
    let invalid = |message: String| ContainerError::InvalidConfig { id: config.id.clone(), message };
    let id = &config.id;
    if id.is_empty()
        || id.len() > 128
        || id.starts_with(['.', '-'])
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "the id must be 1 to 128 letters, digits, '-', '_' or '.', not starting with '.' or '-'".into(),
        ));
    }
    if config.args.is_empty() || config.args[0].is_empty() {
        return Err(invalid("no command to run (args is empty)".into()));
    }
    if !config.rootfs.is_absolute() || !config.rootfs.is_dir() {
        return Err(invalid(format!(
            "rootfs {} is not an absolute path to a directory",
            config.rootfs.display()
        )));
    }
    if config.rootfs.to_string_lossy().contains([',', ':', '\n']) {
        return Err(invalid(format!("rootfs {} must not contain ',' or ':'", config.rootfs.display())));
    }
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(invalid(format!("working dir {:?} is not absolute", config.working_dir)));
    }
    if let Some((key, _)) = config.env.iter().find(|(k, _)| k.is_empty() || k.contains(['=', '\0'])) {
        return Err(invalid(format!("environment variable name {key:?} is invalid")));
    }
    if config.memory_limit.is_some_and(|m| m < 4 << 20) {
        return Err(invalid("memory limit below 4 MiB".into()));
    }
    if config.cpu_limit_millis == Some(0) {
        return Err(invalid("CPU limit of 0 millicores".into()));
    }
    Ok(())
}

/// Undoes a start that failed or was dropped part way.
struct StartGuard {
    shared: Arc<Shared>,
    record: PodRecord,
    armed: bool,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if self.armed {
            let problems = self.shared.teardown(&self.record);
            if !problems.is_empty() {
                tracing::warn!(container = %self.record.id, problems = %problems.join("; "), "cleanup of an abandoned start left something");
            }
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// The runtime's error output before the process starts, for the start error.
struct EarlyLines {
    lines: Mutex<Vec<String>>,
    /// Cleared once the start is decided.
    collecting: AtomicBool,
}

/// Forwards lines of `pipe` to `log` until it closes; while `early` is collecting, also keeps
/// them there.
fn spawn_lines<R: AsyncRead + Unpin + Send + 'static>(
    pipe: R,
    stream: &'static str,
    log: LogFn,
    early: Option<Arc<EarlyLines>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await;
            match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(early) = &early
                && early.collecting.load(Ordering::SeqCst)
            {
                early.lines.lock().unwrap_or_else(|e| e.into_inner()).push(text.clone());
            }
            log(stream, text);
        }
    })
}

/// What the exit watcher owns.
struct WatchExit {
    child: tokio::process::Child,
    log_tasks: Vec<JoinHandle<()>>,
    tool: Tool,
    cgroups: Cgroups,
    id: String,
    memory_limited: bool,
    killed: Arc<AtomicBool>,
    exit_tx: watch::Sender<Option<Exit>>,
}

/// Waits for the runtime (and so the process) to exit, drains the output, reads the OOM count,
/// deletes the stopped container (runc keeps it for the count), publishes the [`Exit`].
async fn watch_exit(mut w: WatchExit) {
    let status = w.child.wait().await;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures_join(std::mem::take(&mut w.log_tasks))).await;
    let (code, signal) = match &status {
        Ok(status) => code_and_signal(*status),
        Err(_) => (None, None),
    };
    let oom_killed = match w.tool.kind {
        RuntimeKind::Runc => w.cgroups.oom_kills(&w.id).is_some_and(|n| n > 0),
        // crun removed the cgroup already: a SIGKILL Skiff did not send, under a memory limit.
        RuntimeKind::Crun => match w.cgroups.oom_kills(&w.id) {
            Some(n) => n > 0,
            None => signal == Some(9) && w.memory_limited && !w.killed.load(Ordering::SeqCst),
        },
    };
    if w.tool.kind == RuntimeKind::Runc
        && let Err(message) = w.tool.run(&["delete", &w.id]).await
        && w.tool.has_state(&w.id)
    {
        tracing::debug!(container = %w.id, %message, "deleting the stopped container failed; stop will force it");
    }
    let exit = Exit { code, signal, oom_killed };
    tracing::debug!(container = %w.id, ?exit, "container exited");
    w.exit_tx.send_replace(Some(exit));
}

/// The runtime's exit status as the process's: `128 + n` is signal `n`.
fn code_and_signal(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt as _;
    match status.code() {
        Some(code) if (129..=128 + 64).contains(&code) => (None, Some(code - 128)),
        Some(code) => (Some(code), None),
        None => (None, status.signal()),
    }
}

/// A running (or exited, not yet stopped) container. Dropping it without
/// [`stop`](Container::stop) kills it and cleans up, blocking.
pub struct Container {
    id: String,
    ip: Ipv4Addr,
    exit: watch::Receiver<Option<Exit>>,
    killed: Arc<AtomicBool>,
    stopped: tokio::sync::Mutex<bool>,
    shared: Arc<Shared>,
    record: PodRecord,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.id).field("ip", &self.ip).finish_non_exhaustive()
    }
}

impl Container {
    /// The container id (the pod name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pod's address on `skiff0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Resolves when the container's process has exited, with how; any number of callers, any
    /// number of times.
    pub async fn wait(&self) -> Exit {
        let mut exit = self.exit.clone();
        let unknown = Exit { code: None, signal: None, oom_killed: false };
        let waited = exit.wait_for(|e| e.is_some()).await.map(|value| *value);
        match waited {
            Ok(value) => value.unwrap_or(unknown),
            Err(_) => exit.borrow().unwrap_or(unknown),
        }
    }

    /// The exit, if the process has exited.
    pub fn try_exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// SIGTERM, up to `grace` for the process to exit, then SIGKILL; then removes everything
    /// (runtime state, cgroups, overlay mount, bundle and upper dir, netns, veth, address).
    /// Idempotent, and fine after the process exited by itself. A container's pid 1 ignores
    /// signals it has no handler for, so a process that does not handle SIGTERM gets the
    /// whole grace period, as under Docker.
    pub async fn stop(&self, grace: Duration) {
        self.stop_with_signal(libc::SIGTERM, grace).await;
    }

    /// [`stop`](Container::stop) with another first signal (an image's `STOPSIGNAL`; see
    /// [`signal_number`](super::signal_number)).
    pub async fn stop_with_signal(&self, signal: i32, grace: Duration) {
        let mut stopped = self.stopped.lock().await;
        if *stopped {
            return;
        }
        let tool = &self.shared.tool;
        if self.try_exit().is_none() {
            if signal == libc::SIGKILL {
                self.killed.store(true, Ordering::SeqCst);
            }
            let signal_arg = signal.to_string();
            if let Err(message) = tool.run(&["kill", &self.id, &signal_arg]).await {
                tracing::debug!(container = %self.id, %message, "signalling failed (already exited?)");
            }
            if tokio::time::timeout(grace, self.wait()).await.is_err() {
                self.killed.store(true, Ordering::SeqCst);
                if let Err(message) = tool.run(&["kill", &self.id, "KILL"]).await {
                    tracing::debug!(container = %self.id, %message, "SIGKILL failed (already exited?)");
                }
                if tokio::time::timeout(KILL_TIMEOUT, self.wait()).await.is_err() {
                    tracing::warn!(container = %self.id, "the container did not die of SIGKILL; forcing cleanup");
                }
            }
        }
        let (shared, record) = (self.shared.clone(), self.record.clone());
        let problems = tokio::task::spawn_blocking(move || shared.teardown(&record))
            .await
            .unwrap_or_else(|e| vec![format!("cleanup task failed: {e}")]);
        if !problems.is_empty() {
            tracing::warn!(container = %self.id, problems = %problems.join("; "), "cleanup left something");
        }
        *stopped = true;
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !*self.stopped.get_mut() {
            self.killed.store(true, Ordering::SeqCst);
            let problems = self.shared.teardown(&self.record);
            if !problems.is_empty() {
                tracing::warn!(container = %self.id, problems = %problems.join("; "), "cleanup of a dropped container left something");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    #[test]
    fn exit_statuses_read_as_codes_and_signals() {
        assert_eq!(code_and_signal(ExitStatus::from_raw(3 << 8)), (Some(3), None));
        assert_eq!(code_and_signal(ExitStatus::from_raw(137 << 8)), (None, Some(9)));
        assert_eq!(code_and_signal(ExitStatus::from_raw(9)), (None, Some(9)));
        assert_eq!(code_and_signal(ExitStatus::from_raw(255 << 8)), (Some(255), None));
    }

    #[test]
    fn mountinfo_paths_unescape() {
        assert_eq!(unescape_mount_path(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
