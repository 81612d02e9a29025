//! Containers under real runc (and crun when installed) with a busybox root filesystem:
//! exit codes and logs, the pod network, isolation, OOM kills, stopping and cleanup.
//!
//! These need root, `runc`, `ip` and a static busybox (`/bin/busybox`). Outside CI a missing
//! piece skips the test with a message; with `CI=true` a missing runc, busybox or root fails it.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_runtime_oci::container::{
    Container, ContainerConfig, ContainerError, ContainerRuntime, Exit, RuntimeKind, merge_args,
    signal_number,
};
use tempfile::TempDir;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "ps", "ls", "cat", "sleep", "nc", "httpd", "id", "hostname", "ip", "pwd", "env", "test",
    "true", "touch", "wc", "grep",
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn merge_args_follows_docker_rules() {
    let entrypoint = strings(&["/entry", "--flag"]);
    let cmd = strings(&["serve", "--port=8080"]);
    let command = strings(&["/bin/other"]);
    let args = strings(&["a", "b"]);
    // Neither: ENTRYPOINT + CMD.
    assert_eq!(
        merge_args(&entrypoint, &cmd, None, None),
        strings(&["/entry", "--flag", "serve", "--port=8080"])
    );
    // args replaces CMD and keeps ENTRYPOINT.
    assert_eq!(merge_args(&entrypoint, &cmd, None, Some(&args)), strings(&["/entry", "--flag", "a", "b"]));
    // command replaces ENTRYPOINT and drops CMD.
    assert_eq!(merge_args(&entrypoint, &cmd, Some(&command), None), strings(&["/bin/other"]));
    // command and args.
    assert_eq!(
        merge_args(&entrypoint, &cmd, Some(&command), Some(&args)),
        strings(&["/bin/other", "a", "b"])
    );
    // No ENTRYPOINT: CMD alone, or args alone.
    assert_eq!(merge_args(&[], &cmd, None, None), cmd);
    assert_eq!(merge_args(&[], &cmd, None, Some(&args)), args);
    // Empty lists count as unset, as in Kubernetes.
    assert_eq!(
        merge_args(&entrypoint, &cmd, Some(&[]), Some(&[])),
        merge_args(&entrypoint, &cmd, None, None)
    );
    assert!(merge_args(&[], &[], None, None).is_empty());
}

#[test]
fn runtime_and_container_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<ContainerRuntime>();
    send_sync::<Container>();
    send_sync::<ContainerError>();
}

#[test]
fn runtime_kinds_and_signals_parse() {
    assert_eq!("runc".parse::<RuntimeKind>().unwrap(), RuntimeKind::Runc);
    assert_eq!("crun".parse::<RuntimeKind>().unwrap(), RuntimeKind::Crun);
    assert!(matches!("docker".parse::<RuntimeKind>(), Err(ContainerError::UnknownRuntime(_))));
    assert_eq!(signal_number("SIGQUIT"), Some(3));
    assert_eq!(signal_number("term"), Some(15));
    assert_eq!(signal_number("9"), Some(9));
    assert_eq!(signal_number("SIGNOPE"), None);
}

// ---- support -------------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether this host can run containers under `kind`; says why not, or fails in CI for runc.
fn usable(kind: RuntimeKind) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    if !on_path(kind.binary()) {
        missing.push(kind.binary().to_string());
    }
    if !on_path("ip") {
        missing.push("ip (iproute2)".to_string());
    }
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!("container tests under {kind} need {}", missing.join(", "));
    if in_ci() && kind == RuntimeKind::Runc {
        panic!("{message}, and CI=true");
    }
    eprintln!("skipping: {message}");
    false
}

/// A busybox root filesystem with `root` and `app` (1000:1000, also in `staff` 50).
fn busybox_rootfs() -> TempDir {
    let dir = tempfile::Builder::new().prefix("skiff-rootfs-").tempdir().unwrap();
    let root = dir.path();
    for sub in ["bin", "etc", "proc", "dev", "sys", "tmp", "root", "home/app"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\nstaff:x:50:app\n").unwrap();
    std::fs::write(root.join("etc/hosts"), "# the image's own\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Collected output lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(&'static str, String)>>>);

impl Logs {
    fn sink(&self) -> Arc<dyn Fn(&'static str, String) + Send + Sync> {
        let lines = self.0.clone();
        Arc::new(move |stream, line| lines.lock().unwrap().push((stream, line)))
    }

    fn of(&self, stream: &str) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|(s, _)| *s == stream).map(|(_, l)| l.clone()).collect()
    }

    fn all(&self) -> String {
        self.0.lock().unwrap().iter().map(|(s, l)| format!("{s}: {l}\n")).collect()
    }
}

/// An id unique to this test run.
fn unique_id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

fn config(id: &str, rootfs: &Path, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        id: id.to_string(),
        rootfs: rootfs.to_path_buf(),
        args: strings(args),
        env: vec![("PORT".into(), "8080".into())],
        working_dir: "/".into(),
        user: None,
        hostname: id.to_string(),
        memory_limit: None,
        cpu_limit_millis: None,
    }
}

struct Fixture {
    runtime: ContainerRuntime,
    work: TempDir,
    rootfs: TempDir,
}

async fn fixture(kind: RuntimeKind) -> Option<Fixture> {
    if !usable(kind) {
        return None;
    }
    let work = tempfile::Builder::new().prefix("skiff-work-").tempdir().unwrap();
    let runtime = ContainerRuntime::new(kind, work.path()).await.expect("container runtime");
    Some(Fixture { runtime, work, rootfs: busybox_rootfs() })
}

impl Fixture {
    async fn start(&self, config: ContainerConfig, logs: &Logs) -> Container {
        let began = Instant::now();
        let container =
            self.runtime.start(config, logs.sink()).await.unwrap_or_else(|e| panic!("start: {e}"));
        eprintln!("{} started in {:?} at {}", container.id(), began.elapsed(), container.ip());
        container
    }

    fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }
}

async fn wait_for(container: &Container, within: Duration) -> Exit {
    tokio::time::timeout(within, container.wait()).await.expect("the container exits in time")
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The host veth of an address (`skiff-` and the host index in hex).
fn veth_of(ip: Ipv4Addr) -> String {
    let [_, _, hi, lo] = ip.octets();
    format!("skiff-{hi:02x}{lo:02x}")
}

/// What a running container has on the host, to check afterwards that it is gone: its id, and
/// its host veth with that link's index (the name alone may be reused at once by a container
/// of another test process).
struct Traces {
    id: String,
    veth: String,
    ifindex: String,
}

impl Traces {
    fn of(container: &Container) -> Self {
        let veth = veth_of(container.ip());
        let ifindex = std::fs::read_to_string(Path::new("/sys/class/net").join(&veth).join("ifindex"))
            .unwrap_or_else(|e| panic!("the veth {veth} of {} exists: {e}", container.id()));
        Traces { id: container.id().to_string(), veth, ifindex }
    }
}

/// Asserts that nothing of a container remains on the host.
fn assert_gone(fixture: &Fixture, kind: RuntimeKind, traces: &Traces) {
    let id = traces.id.as_str();
    let bundle = fixture.work.path().join("bundles").join(id);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(bundle.to_str().unwrap()), "a mount of {id} remains:\n{mounts}");
    assert!(!bundle.exists(), "the bundle {} remains", bundle.display());
    let netns = command_output("ip", &["netns", "list"]);
    assert!(
        !netns.lines().any(|l| l.split_whitespace().next() == Some(&format!("skiff-{id}"))),
        "netns remains: {netns}"
    );
    let ifindex = std::fs::read_to_string(Path::new("/sys/class/net").join(&traces.veth).join("ifindex"));
    assert!(ifindex.ok().as_ref() != Some(&traces.ifindex), "veth {} of {id} remains", traces.veth);
    let state = fixture.state_dir();
    let listed = command_output(kind.binary(), &["--root", state.to_str().unwrap(), "list", "--quiet"]);
    assert!(!listed.lines().any(|l| l.trim() == id), "{kind} still lists {id}: {listed}");
    assert!(!state.join(id).exists(), "runtime state of {id} remains");
    assert!(!Path::new("/sys/fs/cgroup/memory/skiff").join(id).exists(), "memory cgroup of {id} remains");
}

// ---- runc ----------------------------------------------------------------------------------

async fn echo_exit_code(kind: RuntimeKind) {
    let Some(f) = fixture(kind).await else { return };
    let logs = Logs::default();
    let id = unique_id(&format!("echo-{kind}"));
    let container =
        f.start(config(&id, f.rootfs.path(), &["sh", "-c", "echo hi; echo oops >&2; exit 3"]), &logs).await;
    let exit = wait_for(&container, Duration::from_secs(20)).await;
    assert_eq!(exit, Exit { code: Some(3), signal: None, oom_killed: false }, "{}", logs.all());
    assert_eq!(logs.of("stdout"), ["hi"], "{}", logs.all());
    assert!(logs.of("stderr").contains(&"oops".to_string()), "{}", logs.all());
    // wait() again gives the same answer.
    assert_eq!(container.wait().await, exit);
    let traces = Traces::of(&container);
    container.stop(Duration::from_secs(1)).await;
    assert_gone(&f, kind, &traces);
}

#[tokio::test]
async fn runc_echo_reports_output_and_exit_code() {
    echo_exit_code(RuntimeKind::Runc).await;
}

#[tokio::test]
async fn crun_echo_reports_output_and_exit_code() {
    echo_exit_code(RuntimeKind::Crun).await;
}

#[tokio::test]
async fn runc_pod_has_its_own_address_reachable_from_the_host() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let id = unique_id("net");
    let script = "ip -4 route; ip -o -4 addr show dev eth0; hostname; cat /etc/hosts; \
                  cat /etc/resolv.conf; exec nc -ll -p 8080 -e echo hi";
    let container = f.start(config(&id, f.rootfs.path(), &["sh", "-c", script]), &logs).await;
    let ip = container.ip();
    let traces = Traces::of(&container);
    assert!(ip.octets()[..2] == [10, 88] && ip != Ipv4Addr::new(10, 88, 0, 1), "{ip}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_millis(500)) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                break answer;
            }
            Err(e) if Instant::now() > deadline => panic!("no connection to {ip}:8080: {e}\n{}", logs.all()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(answer.trim(), "hi");
    assert!(container.try_exit().is_none());
    container.stop(Duration::from_secs(2)).await;
    assert_gone(&f, RuntimeKind::Runc, &traces);

    // Once stopped, the output is complete.
    let out = logs.of("stdout").join("\n");
    assert!(out.contains("default via 10.88.0.1"), "{out}");
    assert!(out.contains(&format!("inet {ip}/16")), "{out}");
    assert!(out.lines().any(|l| l == id), "hostname: {out}");
    assert!(out.contains(&format!("{ip}\t{id}")), "/etc/hosts: {out}");
    assert!(out.contains("nameserver"), "resolv.conf: {out}");
    assert!(!out.contains("the image's own"), "the image's /etc/hosts is covered: {out}");
}

#[tokio::test]
async fn runc_container_sees_neither_host_processes_nor_host_files() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let host_dir = tempfile::tempdir().unwrap();
    let marker = host_dir.path().join("host-secret");
    std::fs::write(&marker, "secret").unwrap();
    let script = format!(
        "ps -o pid,comm; test -e {m} && echo VISIBLE || echo invisible; ls {d} || true; \
         echo written > /tmp/written; echo changed > /etc/passwd; exit 0",
        m = marker.display(),
        d = host_dir.path().display()
    );
    let logs = Logs::default();
    let id = unique_id("isolation");
    let container = f.start(config(&id, f.rootfs.path(), &["sh", "-c", &script]), &logs).await;
    let exit = wait_for(&container, Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0), "{}", logs.all());
    let out = logs.of("stdout");
    // ps: a header, then only the container's own processes (sh as pid 1, ps).
    let pids: Vec<u32> = out.iter().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(pids.contains(&1) && pids.len() <= 3 && pids.iter().all(|p| *p < 10), "ps: {}", logs.all());
    assert!(!out.iter().any(|l| l.contains("containers")), "a host process is visible: {}", logs.all());
    assert!(out.contains(&"invisible".to_string()), "{}", logs.all());
    // The image rootfs (the overlay's lower dir) is never written.
    assert!(!f.rootfs.path().join("tmp/written").exists());
    assert!(std::fs::read_to_string(f.rootfs.path().join("etc/passwd")).unwrap().starts_with("root:x:0:0"));
    let traces = Traces::of(&container);
    container.stop(Duration::from_secs(1)).await;
    assert_gone(&f, RuntimeKind::Runc, &traces);
}

async fn memory_hog(kind: RuntimeKind) {
    let Some(f) = fixture(kind).await else { return };
    let logs = Logs::default();
    let id = unique_id(&format!("hog-{kind}"));
    let mut hog = config(&id, f.rootfs.path(), &["sh", "-c", "x=a; while true; do x=$x$x; done"]);
    hog.memory_limit = Some(32 << 20);
    let container = f.start(hog, &logs).await;
    let exit = wait_for(&container, Duration::from_secs(60)).await;
    assert!(exit.oom_killed, "{exit:?}\n{}", logs.all());
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    let traces = Traces::of(&container);
    container.stop(Duration::from_secs(1)).await;
    assert_gone(&f, kind, &traces);
}

#[tokio::test]
async fn runc_memory_hog_is_oom_killed() {
    memory_hog(RuntimeKind::Runc).await;
}

#[tokio::test]
async fn crun_memory_hog_is_oom_killed() {
    memory_hog(RuntimeKind::Crun).await;
}

async fn stop_kills_after_the_grace(kind: RuntimeKind) {
    let Some(f) = fixture(kind).await else { return };
    let logs = Logs::default();
    let id = unique_id(&format!("stubborn-{kind}"));
    let mut stubborn = config(&id, f.rootfs.path(), &["sh", "-c", "trap '' TERM; echo ready; sleep 1000"]);
    stubborn.memory_limit = Some(64 << 20);
    stubborn.cpu_limit_millis = Some(500);
    let container = f.start(stubborn, &logs).await;
    let traces = Traces::of(&container);
    assert!(Path::new("/var/run/netns").join(format!("skiff-{id}")).exists());
    let cgroup = Path::new("/sys/fs/cgroup/memory/skiff").join(&id);
    if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        let limit = std::fs::read_to_string(cgroup.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), (64u64 << 20).to_string());
        let quota =
            std::fs::read_to_string(Path::new("/sys/fs/cgroup/cpu/skiff").join(&id).join("cpu.cfs_quota_us"))
                .unwrap();
        assert_eq!(quota.trim(), "50000");
    }

    let grace = Duration::from_millis(1500);
    let began = Instant::now();
    container.stop(grace).await;
    let took = began.elapsed();
    assert!(took >= grace && took < grace + Duration::from_secs(8), "stop took {took:?}");
    let exit = container.wait().await;
    assert_eq!(exit, Exit { code: None, signal: Some(9), oom_killed: false }, "{}", logs.all());
    assert_gone(&f, kind, &traces);

    // Again: nothing to do.
    let began = Instant::now();
    container.stop(grace).await;
    assert!(began.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn runc_stop_kills_after_the_grace_and_leaves_nothing() {
    stop_kills_after_the_grace(RuntimeKind::Runc).await;
}

#[tokio::test]
async fn crun_stop_kills_after_the_grace_and_leaves_nothing() {
    stop_kills_after_the_grace(RuntimeKind::Crun).await;
}

async fn stop_is_quick_with_a_sigterm_handler(kind: RuntimeKind) {
    let Some(f) = fixture(kind).await else { return };
    let logs = Logs::default();
    let id = unique_id(&format!("polite-{kind}"));
    let script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    let container = f.start(config(&id, f.rootfs.path(), &["sh", "-c", script]), &logs).await;
    let traces = Traces::of(&container);
    // A pid 1 ignores SIGTERM until it has a handler: wait for the trap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.of("stdout").contains(&"ready".to_string()) {
        assert!(Instant::now() < deadline, "the container never got ready: {}", logs.all());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let began = Instant::now();
    container.stop(Duration::from_secs(20)).await;
    assert!(began.elapsed() < Duration::from_secs(5), "stop took {:?}", began.elapsed());
    assert_eq!(
        container.wait().await,
        Exit { code: Some(0), signal: None, oom_killed: false },
        "{}",
        logs.all()
    );
    assert!(logs.of("stdout").contains(&"bye".to_string()), "{}", logs.all());
    assert_gone(&f, kind, &traces);
}

#[tokio::test]
async fn runc_stop_is_quick_when_the_process_handles_sigterm() {
    stop_is_quick_with_a_sigterm_handler(RuntimeKind::Runc).await;
}

#[tokio::test]
async fn crun_stop_is_quick_when_the_process_handles_sigterm() {
    stop_is_quick_with_a_sigterm_handler(RuntimeKind::Crun).await;
}

#[tokio::test]
async fn runc_two_containers_at_once_get_different_addresses() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let (a, b) = (unique_id("pair-a"), unique_id("pair-b"));
    let first = f.start(config(&a, f.rootfs.path(), &["sleep", "1000"]), &logs).await;
    let second = f.start(config(&b, f.rootfs.path(), &["sleep", "1000"]), &logs).await;
    assert_ne!(first.ip(), second.ip());
    // The same id twice is refused.
    let again = f.runtime.start(config(&a, f.rootfs.path(), &["true"]), logs.sink()).await;
    assert!(matches!(again, Err(ContainerError::AlreadyExists { .. })), "{again:?}");
    let traces = [Traces::of(&first), Traces::of(&second)];
    tokio::join!(first.stop(Duration::ZERO), second.stop(Duration::ZERO));
    for traces in &traces {
        assert_gone(&f, RuntimeKind::Runc, traces);
    }
}

#[tokio::test]
async fn runc_runs_as_the_configured_user_with_env_and_working_dir() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let id = unique_id("user");
    let mut app =
        config(&id, f.rootfs.path(), &["sh", "-c", "id; pwd; echo \"$GREETING $PORT\"; echo $PATH"]);
    app.user = Some("app".into());
    app.working_dir = "/home/app".into();
    app.env.push(("GREETING".into(), "hello".into()));
    let container = f.start(app, &logs).await;
    assert_eq!(wait_for(&container, Duration::from_secs(20)).await.code, Some(0), "{}", logs.all());
    let out = logs.of("stdout");
    assert!(out[0].starts_with("uid=1000(app) gid=1000(app)") && out[0].contains("50(staff)"), "{out:?}");
    assert_eq!(
        out[1..4],
        ["/home/app", "hello 8080", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    container.stop(Duration::ZERO).await;

    // A numeric uid:gid not in /etc/passwd.
    let id = unique_id("uid");
    let mut numeric = config(&id, f.rootfs.path(), &["id"]);
    numeric.user = Some("4321:8765".into());
    let logs = Logs::default();
    let container = f.start(numeric, &logs).await;
    wait_for(&container, Duration::from_secs(20)).await;
    assert!(logs.of("stdout")[0].starts_with("uid=4321 gid=8765"), "{}", logs.all());
    container.stop(Duration::ZERO).await;

    // An unknown user name fails the start, before anything is made.
    let mut unknown = config(&unique_id("nouser"), f.rootfs.path(), &["id"]);
    unknown.user = Some("nobody".into());
    let error = f.runtime.start(unknown, logs.sink()).await.unwrap_err();
    assert!(matches!(error, ContainerError::User { .. }) && error.to_string().contains("nobody"), "{error}");
}

#[tokio::test]
async fn runc_start_failure_carries_the_runtime_error_and_leaves_nothing() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let id = unique_id("missing");
    let error = f
        .runtime
        .start(config(&id, f.rootfs.path(), &["/no/such/program"]), logs.sink())
        .await
        .expect_err("a missing program cannot start");
    let message = error.to_string();
    assert!(matches!(error, ContainerError::Start { .. }), "{message}");
    assert!(message.contains("/no/such/program") && message.contains("runc"), "{message}");
    assert!(!f.work.path().join("bundles").join(&id).exists());
    assert!(!Path::new("/var/run/netns").join(format!("skiff-{id}")).exists());
    // The id is free again.
    let container = f.start(config(&id, f.rootfs.path(), &["true"]), &logs).await;
    assert_eq!(wait_for(&container, Duration::from_secs(20)).await.code, Some(0));
    container.stop(Duration::ZERO).await;
}

#[tokio::test]
async fn runc_new_runtime_removes_what_a_crashed_one_left() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let id = unique_id("orphan");
    let container = f.start(config(&id, f.rootfs.path(), &["sleep", "1000"]), &logs).await;
    let traces = Traces::of(&container);
    // As if the process died: no stop, no Drop.
    std::mem::forget(container);
    assert!(f.work.path().join("bundles").join(&id).exists());

    let began = Instant::now();
    let _again = ContainerRuntime::new(RuntimeKind::Runc, f.work.path()).await.expect("runtime");
    eprintln!("cleanup of one leftover took {:?}", began.elapsed());
    assert_gone(&f, RuntimeKind::Runc, &traces);
}

#[tokio::test]
async fn runc_dropping_a_container_cleans_up() {
    let Some(f) = fixture(RuntimeKind::Runc).await else { return };
    let logs = Logs::default();
    let id = unique_id("dropped");
    let container = f.start(config(&id, f.rootfs.path(), &["sleep", "1000"]), &logs).await;
    let traces = Traces::of(&container);
    drop(container);
    assert_gone(&f, RuntimeKind::Runc, &traces);
}
