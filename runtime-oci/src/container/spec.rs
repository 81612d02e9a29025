//! The runtime spec (`config.json`) of a pod's container, close to what Docker generates.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, HookBuilder, HooksBuilder, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::user::User;

/// Docker's default capabilities.
const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's masked paths.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The default `PATH` when the environment has none (Docker's).
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CFS period the CPU limit is expressed over, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Everything the spec is built from.
pub(crate) struct SpecInput<'a> {
    pub id: &'a str,
    pub args: &'a [String],
    pub env: Vec<String>,
    pub cwd: &'a str,
    pub user: &'a User,
    pub hostname: &'a str,
    pub root: &'a Path,
    pub bundle: &'a Path,
    pub netns: &'a Path,
    pub memory_limit: Option<u64>,
    /// Whether to set memory+swap to the memory limit (cgroup v1 with swap accounting).
    pub limit_swap: bool,
    pub cpu_limit_millis: Option<u64>,
    pub nofile: u64,
    /// A poststart hook: a program and its argv.
    pub started_hook: (PathBuf, Vec<String>),
}

/// The cgroup path of a container, relative to each hierarchy's root.
pub(crate) fn cgroups_path(id: &str) -> String {
    format!("/skiff/{id}")
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| format!("mount {destination}: {e}"))
}

pub(crate) fn build(input: &SpecInput<'_>) -> Result<Spec, String> {
    let caps: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        // Unset fields would take oci-spec's defaults (which include ambient capabilities).
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| e.to_string())?;
    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .additional_gids(input.user.additional_gids.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(input.nofile)
        .hard(input.nofile)
        .build()
        .map_err(|e| e.to_string())?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(input.args.to_vec())
        .env(input.env.clone())
        .cwd(input.cwd)
        .capabilities(capabilities)
        .rlimits(vec![nofile])
        .no_new_privileges(true)
        .build()
        .map_err(|e| e.to_string())?;

    let bundle_file = |name: &str| input.bundle.join(name).to_string_lossy().into_owned();
    let mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"])?,
        mount("/etc/hosts", "bind", &bundle_file("hosts"), &["rbind", "rprivate"])?,
        mount("/etc/hostname", "bind", &bundle_file("hostname"), &["rbind", "rprivate"])?,
        mount("/etc/resolv.conf", "bind", &bundle_file("resolv.conf"), &["rbind", "rprivate"])?,
    ];

    let namespace = |typ: LinuxNamespaceType| LinuxNamespaceBuilder::default().typ(typ).build();
    let namespaces = vec![
        namespace(LinuxNamespaceType::Pid),
        namespace(LinuxNamespaceType::Mount),
        namespace(LinuxNamespaceType::Ipc),
        namespace(LinuxNamespaceType::Uts),
        LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(input.netns).build(),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())?;

    // Deny every device; the runtime then allows its standard set (null, zero, full, tty,
    // random, urandom, ptmx, pts).
    let deny_devices =
        LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().map_err(|e| e.to_string())?;
    let mut resources = LinuxResourcesBuilder::default().devices(vec![deny_devices]);
    if let Some(limit) = input.memory_limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        if input.limit_swap {
            memory = memory.swap(limit);
        }
        resources = resources.memory(memory.build().map_err(|e| e.to_string())?);
    }
    if let Some(millis) = input.cpu_limit_millis {
        let quota = (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(1000);
        let cpu = LinuxCpuBuilder::default()
            .quota(i64::try_from(quota).unwrap_or(i64::MAX))
            .period(CPU_PERIOD_US)
            .build()
            .map_err(|e| e.to_string())?;
        resources = resources.cpu(cpu);
    }

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(|e| e.to_string())?)
        .cgroups_path(cgroups_path(input.id))
        .masked_paths(MASKED_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .readonly_paths(READONLY_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| e.to_string())?;

    let (hook_path, hook_args) = &input.started_hook;
    // No timeout: crun 1.8 waits for a hook with a timeout through SIGCHLD, and loses it when
    // the container's own SIGCHLD coalesces with it (a quick exit), then fails the hook.
    let started =
        HookBuilder::default().path(hook_path).args(hook_args.clone()).build().map_err(|e| e.to_string())?;
    let hooks = HooksBuilder::default().poststart(vec![started]).build().map_err(|e| e.to_string())?;

    let root = RootBuilder::default().path(input.root).readonly(false).build().map_err(|e| e.to_string())?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .mounts(mounts)
        .process(process)
        .hostname(input.hostname)
        .hooks(hooks)
        .linux(linux)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_dockers_defaults_and_the_limits() {
        let user = User { uid: 1000, gid: 1000, additional_gids: vec![50] };
        let args = vec!["sh".to_string(), "-c".to_string(), "true".to_string()];
        let spec = build(&SpecInput {
            id: "pod-1",
            args: &args,
            env: vec!["PATH=/bin".into()],
            cwd: "/",
            user: &user,
            hostname: "pod-1",
            root: Path::new("/b/rootfs"),
            bundle: Path::new("/b"),
            netns: Path::new("/var/run/netns/skiff-pod-1"),
            memory_limit: Some(32 << 20),
            limit_swap: true,
            cpu_limit_millis: Some(250),
            nofile: 1024,
            started_hook: ("/bin/sh".into(), vec!["sh".into(), "-c".into(), "true".into()]),
        })
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["process"]["user"]["additionalGids"][0], 50);
        assert_eq!(json["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(json["process"]["capabilities"]["ambient"], serde_json::json!([]));
        assert_eq!(json["process"]["capabilities"]["inheritable"], serde_json::json!([]));
        assert_eq!(json["linux"]["cgroupsPath"], "/skiff/pod-1");
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 32 << 20);
        assert_eq!(json["linux"]["resources"]["memory"]["swap"], 32 << 20);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 25_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], false);
        let namespaces = json["linux"]["namespaces"].as_array().unwrap();
        assert!(
            namespaces.iter().any(|n| n["type"] == "network" && n["path"] == "/var/run/netns/skiff-pod-1")
        );
        assert!(!namespaces.iter().any(|n| n["type"] == "cgroup" || n["type"] == "user"));
        assert!(json["linux"]["maskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/kcore"));
        assert_eq!(json["root"]["readonly"], false);
        assert_eq!(json["hooks"]["poststart"][0]["path"], "/bin/sh");
    }
}
