//! A real OCI registry for tests: Debian's `docker-registry` (distribution v2.8), started on a
//! free loopback port with its storage in a temporary directory, optionally behind htpasswd
//! basic auth. Dropping the [`Registry`] stops it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "docker-registry";
const INSTALL_HINT: &str = "apt-get install docker-registry";

/// A running `docker-registry serve`.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, the registry part of references.
    pub host: String,
    dir: tempfile::TempDir,
}

/// Username and password of [`Registry::start_with_basic_auth`].
pub struct BasicAuth<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

impl Registry {
    /// An open registry, or `None` (after saying so) when the binary is missing outside CI.
    pub fn start() -> Option<Self> {
        Self::start_inner(None)
    }

    /// A registry that wants `auth` (htpasswd with a bcrypt entry).
    pub fn start_with_basic_auth(auth: BasicAuth<'_>) -> Option<Self> {
        Self::start_inner(Some(auth))
    }

    fn start_inner(auth: Option<BasicAuth<'_>>) -> Option<Self> {
        let binary = find_binary()?;
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let auth_section = match &auth {
            Some(BasicAuth { username, password }) => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{username}:{hash}\n")).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n", htpasswd.display())
            }
            None => String::new(),
        };
        // The port is free when we look; another process may take it before the registry
        // binds it, so try a few times.
        let log_path = dir.path().join("registry.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            let host = format!("127.0.0.1:{}", free_port());
            let config = dir.path().join("config.yml");
            let yaml = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: skiff-test-secret\n{auth_section}",
                dir.path().join("data").display()
            );
            std::fs::write(&config, yaml).expect("write registry config");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            match wait_ready(&mut child, &host, &log_path, Duration::from_secs(20)) {
                Ok(()) => return Some(Registry { child, host, dir }),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        panic!("docker-registry did not come up: {last_error}");
    }

    /// A reference in this registry: `127.0.0.1:PORT/{path}`.
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.host)
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A directory that lives as long as the registry.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `GET /v2/` answers 200 (open) or 401 (wants credentials): either way it serves.
fn wait_ready(child: &mut Child, host: &str, log: &Path, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}; log:\n{}", log()));
        }
        if matches!(get_v2_status(host), Some(200 | 401)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("GET /v2/ did not answer within {timeout:?}; log:\n{}", log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The registry binary, or `None` after a skip notice; in CI (`CI=true`) a missing binary fails.
fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|p| p.join(BINARY)).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(found) = on_path.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("`{BINARY}` is not installed and CI=true: the registry tests need it ({INSTALL_HINT})");
    }
    eprintln!("skipping: `{BINARY}` is not installed ({INSTALL_HINT} to run this test)");
    None
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// The status code of `GET /v2/`, or `None` when nothing answers.
fn get_v2_status(host: &str) -> Option<u16> {
    let addr: SocketAddr = host.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
