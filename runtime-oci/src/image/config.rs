//! The parts of an OCI (or Docker) image config that running a container needs, read from the
//! config blob on pull and written into one on push.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// Config media type of an OCI image.
pub(crate) const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Config media type of a Docker (schema 2) image.
pub(crate) const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// How an image says to run it: its config's `config` section, as Docker and containerd read
/// it. The container runtime combines it with the revision's overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    /// `Entrypoint`: the executable and its first arguments.
    pub entrypoint: Vec<String>,
    /// `Cmd`: the arguments after the entrypoint (or the command, when there is none).
    pub cmd: Vec<String>,
    /// `Env`: `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// `WorkingDir`, when set and not empty.
    pub working_dir: Option<String>,
    /// `User` (`uid`, `uid:gid`, `name` or `name:group`), when set and not empty.
    pub user: Option<String>,
    /// `ExposedPorts`, by number (`8080/tcp` and `8080/udp` are both 8080), ascending.
    pub exposed_ports: Vec<u16>,
    /// `StopSignal` (`SIGTERM`, `15`), when set and not empty.
    pub stop_signal: Option<String>,
}

/// An image config blob: only the fields this crate reads; `null`s count as absent.
#[derive(Debug, Default, Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    stop_signal: Option<String>,
}

impl ImageConfig {
    /// Reads an image config blob. An image for another OS than Linux is refused.
    pub(crate) fn parse(blob: &[u8]) -> Result<Self, String> {
        let blob: ConfigBlob =
            serde_json::from_slice(blob).map_err(|e| format!("malformed image config: {e}"))?;
        if let Some(os) = blob.os.as_deref().filter(|os| !os.is_empty() && *os != "linux") {
            return Err(format!("the image is for {os}, not linux"));
        }
        let run = blob.config.unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let exposed_ports: BTreeSet<u16> = run
            .exposed_ports
            .unwrap_or_default()
            .keys()
            .filter_map(|key| key.split('/').next().and_then(|port| port.trim().parse().ok()))
            .collect();
        Ok(Self {
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            env: run.env.unwrap_or_default(),
            working_dir: non_empty(run.working_dir),
            user: non_empty(run.user),
            exposed_ports: exposed_ports.into_iter().collect(),
            stop_signal: non_empty(run.stop_signal),
        })
    }

    /// An OCI image config blob (linux/amd64) running as `self` says, over layers whose
    /// uncompressed digests are `diff_ids`. Without a creation time, so that pushing the same
    /// files twice gives the same image.
    pub(crate) fn to_blob(&self, diff_ids: &[String]) -> Vec<u8> {
        let mut run = serde_json::Map::new();
        let mut put = |key: &str, value: serde_json::Value| {
            run.insert(key.to_owned(), value);
        };
        if !self.entrypoint.is_empty() {
            put("Entrypoint", self.entrypoint.clone().into());
        }
        if !self.cmd.is_empty() {
            put("Cmd", self.cmd.clone().into());
        }
        if !self.env.is_empty() {
            put("Env", self.env.clone().into());
        }
        if let Some(dir) = &self.working_dir {
            put("WorkingDir", dir.clone().into());
        }
        if let Some(user) = &self.user {
            put("User", user.clone().into());
        }
        if !self.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, serde_json::Value> =
                self.exposed_ports.iter().map(|p| (format!("{p}/tcp"), serde_json::json!({}))).collect();
            put("ExposedPorts", ports.into());
        }
        if let Some(signal) = &self.stop_signal {
            put("StopSignal", signal.clone().into());
        }
        let blob = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": run,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        serde_json::to_vec(&blob).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_config_blob() {
        let config = ImageConfig {
            entrypoint: vec!["/server".into()],
            cmd: vec!["--port".into(), "8080".into()],
            env: vec!["PATH=/usr/bin".into(), "GREETING=hi".into()],
            working_dir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            exposed_ports: vec![80, 8080],
            stop_signal: Some("SIGINT".into()),
        };
        let blob = config.to_blob(&["sha256:00".into()]);
        assert_eq!(ImageConfig::parse(&blob).unwrap(), config);
        let json: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        assert_eq!(json["rootfs"]["diff_ids"][0], "sha256:00");
        assert_eq!(json["config"]["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
        assert_eq!(ImageConfig::parse(&ImageConfig::default().to_blob(&[])).unwrap(), ImageConfig::default());
    }

    #[test]
    fn docker_configs_with_nulls_and_udp_ports() {
        let blob = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],
            "Env":null,"WorkingDir":"","User":"","ExposedPorts":{"53/udp":{},"53/tcp":{},"9000":{}},
            "Labels":{"a":"b"},"StopSignal":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config = ImageConfig::parse(blob).unwrap();
        assert_eq!(
            config,
            ImageConfig { cmd: vec!["sh".into()], exposed_ports: vec![53, 9000], ..Default::default() }
        );
        assert_eq!(ImageConfig::parse(br#"{"os":"linux"}"#).unwrap(), ImageConfig::default());
    }

    #[test]
    fn other_systems_and_garbage_are_refused() {
        assert!(ImageConfig::parse(br#"{"os":"windows","config":{}}"#).unwrap_err().contains("windows"));
        assert!(ImageConfig::parse(b"nope").unwrap_err().contains("malformed"));
    }
}
