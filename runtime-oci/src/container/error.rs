//! What can go wrong setting up or starting a container: each variant names the container or
//! tool and carries what the tool said.

/// An error creating the container runtime or starting a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A runtime name other than `runc` or `crun`.
    #[error("unknown container runtime {0:?} (expected runc or crun)")]
    UnknownRuntime(String),
    /// The runtime, `ip` or another tool is missing or unusable, or Skiff lacks the privileges.
    #[error("{tool} is not usable: {message}")]
    Unavailable {
        /// The tool or facility (`runc`, `ip`, `root privileges`, ...).
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The [`ContainerConfig`](super::ContainerConfig) cannot be run as given.
    #[error("invalid container config for {id:?}: {message}")]
    InvalidConfig {
        /// The container id.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A container with this id is already running under this runtime.
    #[error("container {id} already exists")]
    AlreadyExists {
        /// The container id.
        id: String,
    },
    /// The configured user or group is not in the image's `/etc/passwd` or `/etc/group`.
    #[error("cannot resolve user {user:?} for container {id}: {message}")]
    User {
        /// The container id.
        id: String,
        /// The user as configured.
        user: String,
        /// Why it does not resolve.
        message: String,
    },
    /// Setting up the bridge, network namespace, veth or address failed.
    #[error("network setup for {id} failed: {message}")]
    Network {
        /// The container id, or `skiff0` for the bridge.
        id: String,
        /// The failing command and its stderr.
        message: String,
    },
    /// Mounting the overlay root failed.
    #[error("mounting the overlay root of {id} failed: {message}")]
    Mount {
        /// The container id.
        id: String,
        /// The mount options and the error.
        message: String,
    },
    /// A file of the bundle or work dir could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime did not start the process: exec failure, bad spec, cgroup trouble.
    #[error("{runtime} could not start container {id}: {stderr}")]
    Start {
        /// `runc` or `crun`.
        runtime: String,
        /// The container id.
        id: String,
        /// The runtime's error output (and its exit status).
        stderr: String,
    },
}

impl ContainerError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ContainerError::Io { what: what.into(), source }
    }
}
