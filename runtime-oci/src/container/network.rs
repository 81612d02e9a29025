//! Pod networking with iproute2: the bridge `skiff0` (10.88.0.1/16), one network namespace per
//! pod with `lo` and `eth0` up, `eth0` the far end of a veth pair whose host end is on the
//! bridge, the pod's address from a host index, a default route via the bridge.
//!
//! The host end of the veth is named after the index (`skiff-0002` for 10.88.0.2): a link of
//! that name existing means the address is taken, by this runtime or another on the host, so
//! creating the link is what claims the address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::ContainerError;

/// The bridge every pod's veth joins.
pub(crate) const BRIDGE: &str = "skiff0";
/// The bridge's own MAC (locally administered), fixed so that it never follows its ports.
const BRIDGE_MAC: &str = "02:5b:1f:f0:00:01";
/// The bridge's address: the pods' gateway.
pub(crate) const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const PREFIX_LEN: u8 = 16;
/// Where `ip netns` keeps named network namespaces.
pub(crate) const NETNS_DIR: &str = "/var/run/netns";
/// Names of netns and host veths start with this.
pub(crate) const NAME_PREFIX: &str = "skiff-";
/// Host indexes: 10.88.0.2 to 10.88.255.254.
const FIRST_INDEX: u16 = 2;
const LAST_INDEX: u16 = 0xfffe;

/// One pod's network: what to remove when it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PodNetwork {
    pub netns: String,
    pub veth: Option<String>,
    pub ip: Option<Ipv4Addr>,
}

impl PodNetwork {
    pub fn for_id(id: &str) -> Self {
        PodNetwork { netns: format!("{NAME_PREFIX}{id}"), veth: None, ip: None }
    }

    pub fn netns_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.netns)
    }
}

/// Where the next search for a free index starts: shared by the runtimes of this process, so
/// that a released address is not handed out again at once (stale ARP entries, and tests
/// checking that a pod's veth is gone).
static NEXT_INDEX: AtomicU16 = AtomicU16::new(FIRST_INDEX);

/// Addresses this runtime holds; the links on the host hold the rest.
#[derive(Debug, Default)]
pub(crate) struct Ipam {
    used: BTreeSet<u16>,
}

impl Ipam {
    /// Candidate indexes, round robin from the last one handed out, skipping those held here
    /// and those whose veth exists on the host.
    fn candidates(&mut self) -> Vec<u16> {
        let start = NEXT_INDEX.load(Ordering::Relaxed).clamp(FIRST_INDEX, LAST_INDEX);
        let mut out = Vec::new();
        let range = (start..=LAST_INDEX).chain(FIRST_INDEX..start);
        for index in range {
            if out.len() >= 16 {
                break;
            }
            if self.used.contains(&index) || Path::new("/sys/class/net").join(veth_name(index)).exists() {
                continue;
            }
            out.push(index);
        }
        out
    }

    fn claim(&mut self, index: u16) {
        self.used.insert(index);
        NEXT_INDEX.store(if index >= LAST_INDEX { FIRST_INDEX } else { index + 1 }, Ordering::Relaxed);
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        let [_, _, hi, lo] = ip.octets();
        self.used.remove(&u16::from_be_bytes([hi, lo]));
    }
}

fn veth_name(index: u16) -> String {
    format!("{NAME_PREFIX}{index:04x}")
}

fn address(index: u16) -> Ipv4Addr {
    let [hi, lo] = index.to_be_bytes();
    Ipv4Addr::new(10, 88, hi, lo)
}

/// The output of a finished command, or a message naming it with its stderr.
async fn run(ip: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut command = tokio::process::Command::new(ip);
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let describe = || format!("`ip {}`", args.join(" "));
    let mut child = command.spawn().map_err(|e| format!("{}: {e}", describe()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(|e| format!("{}: writing stdin: {e}", describe()))?;
    }
    let output = child.wait_with_output().await.map_err(|e| format!("{}: {e}", describe()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let input = stdin.map(|s| format!(" with input {:?}", s.trim())).unwrap_or_default();
        Err(format!(
            "{}{input} failed ({}): {}",
            describe(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The same, blocking (for cleanup in `Drop` and blocking tasks).
pub(crate) fn run_blocking(ip: &Path, args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Creates `skiff0` with 10.88.0.1/16 if missing, and makes sure it has the address and is up.
pub(crate) async fn ensure_bridge(ip: &Path) -> Result<(), ContainerError> {
    let error = |message: String| ContainerError::Network { id: BRIDGE.into(), message };
    if !Path::new("/sys/class/net").join(BRIDGE).exists()
        && let Err(message) = run(ip, &["link", "add", BRIDGE, "type", "bridge"], None).await
        && !message.contains("File exists")
    {
        return Err(error(message));
    }
    // A bridge without an address of its own takes the lowest MAC of its ports, so it would
    // change as pods come and go, and pods' replies to the old one would be lost until their
    // ARP entries expire: a new pod's first SYN could go unanswered for half a minute.
    run(ip, &["link", "set", BRIDGE, "address", BRIDGE_MAC], None).await.map_err(error)?;
    let cidr = format!("{GATEWAY}/{PREFIX_LEN}");
    run(ip, &["addr", "replace", &cidr, "dev", BRIDGE], None).await.map_err(error)?;
    run(ip, &["link", "set", BRIDGE, "up"], None).await.map_err(error)?;
    Ok(())
}

/// Creates the pod's netns, veth pair and address; `net` records each piece as it is made so
/// that a failure part way can be undone with [`teardown`].
pub(crate) async fn setup(
    ip: &Path,
    id: &str,
    ipam: &Mutex<Ipam>,
    net: &mut PodNetwork,
) -> Result<(), ContainerError> {
    let error = |message: String| ContainerError::Network { id: id.to_string(), message };
    let netns_path = net.netns_path();
    if netns_path.exists() {
        // A leftover of this id (a crash before cleanup): reuse the name if nothing runs in it.
        let pids = run(ip, &["netns", "pids", &net.netns], None).await.unwrap_or_default();
        if !pids.trim().is_empty() {
            return Err(error(format!("network namespace {} exists and is in use", net.netns)));
        }
        run(ip, &["netns", "delete", &net.netns], None).await.map_err(error)?;
    }
    run(ip, &["netns", "add", &net.netns], None).await.map_err(error)?;

    let mut last_error = String::from("no free address in 10.88.0.0/16");
    let mut claimed = None;
    for _ in 0..8 {
        let candidates = ipam.lock().unwrap_or_else(|e| e.into_inner()).candidates();
        for index in candidates {
            let veth = veth_name(index);
            let created = run(
                ip,
                &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &net.netns],
                None,
            )
            .await;
            match created {
                Ok(_) => {
                    ipam.lock().unwrap_or_else(|e| e.into_inner()).claim(index);
                    claimed = Some(index);
                    break;
                }
                Err(message) if message.contains("File exists") => last_error = message,
                Err(message) => return Err(error(message)),
            }
        }
        if claimed.is_some() {
            break;
        }
    }
    let Some(index) = claimed else { return Err(error(last_error)) };
    let veth = veth_name(index);
    let pod_ip = address(index);
    net.veth = Some(veth.clone());
    net.ip = Some(pod_ip);

    run(ip, &["link", "set", &veth, "master", BRIDGE, "up"], None).await.map_err(error)?;
    let inside = format!(
        "addr add {pod_ip}/{PREFIX_LEN} dev eth0\nlink set eth0 up\nlink set lo up\n\
         route add default via {GATEWAY}\n"
    );
    run(ip, &["-n", &net.netns, "-batch", "-"], Some(&inside)).await.map_err(error)?;
    // The address may have been another pod's a moment ago (of this process or another): the
    // host would keep sending to that pod's MAC until its ARP entry ages out.
    run(ip, &["neigh", "flush", "to", &pod_ip.to_string(), "dev", BRIDGE], None).await.map_err(error)?;
    Ok(())
}

/// Removes the netns (which takes the veth pair with it) and the host veth if still there, and
/// gives the address back. Missing pieces are fine; returns what could not be removed.
pub(crate) fn teardown(ip: &Path, net: &PodNetwork, ipam: &Mutex<Ipam>) -> Vec<String> {
    let mut problems = Vec::new();
    if net.netns_path().exists()
        && let Err(message) = run_blocking(ip, &["netns", "delete", &net.netns])
        && net.netns_path().exists()
    {
        problems.push(message);
    }
    if let Some(veth) = &net.veth
        && Path::new("/sys/class/net").join(veth).exists()
        && let Err(message) = run_blocking(ip, &["link", "delete", veth])
        && Path::new("/sys/class/net").join(veth).exists()
    {
        problems.push(message);
    }
    if let Some(pod_ip) = net.ip {
        ipam.lock().unwrap_or_else(|e| e.into_inner()).release(pod_ip);
    }
    problems
}

/// `/etc/hosts` for a pod.
pub(crate) fn hosts(ip: Ipv4Addr, hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{ip}\t{hostname}\n"
    )
}

/// `/etc/resolv.conf` for a pod: the host's, without loopback nameservers (they do not answer
/// inside the pod's namespace); Google's public resolvers when none is left.
pub(crate) fn resolv_conf(host: &str) -> String {
    let mut nameservers = Vec::new();
    let mut other = Vec::new();
    for line in host.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(address) = words.next() {
                    let loopback =
                        address.parse::<std::net::IpAddr>().map(|a| a.is_loopback()).unwrap_or(true);
                    if !loopback {
                        nameservers.push(format!("nameserver {address}"));
                    }
                }
            }
            Some("search" | "domain" | "options") => other.push(line.to_string()),
            _ => {}
        }
    }
    if nameservers.is_empty() {
        nameservers = vec!["nameserver 8.8.8.8".into(), "nameserver 8.8.4.4".into()];
    }
    let mut out = nameservers.join("\n");
    for line in other {
        out.push('\n');
        out.push_str(&line);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_name_addresses_and_veths() {
        assert_eq!(address(2), Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(address(0x1ff), Ipv4Addr::new(10, 88, 1, 255));
        assert_eq!(veth_name(0x1ff), "skiff-01ff");
        assert!(veth_name(LAST_INDEX).len() <= 15);
        let mut ipam = Ipam::default();
        ipam.claim(2);
        ipam.release(Ipv4Addr::new(10, 88, 0, 2));
        assert!(ipam.used.is_empty());
    }

    #[test]
    fn resolv_conf_drops_loopback_nameservers() {
        let host =
            "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n";
        assert_eq!(resolv_conf(host), "nameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n");
        assert_eq!(resolv_conf("nameserver 127.0.0.1\n"), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
}
