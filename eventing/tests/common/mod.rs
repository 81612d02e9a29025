//! Helpers shared by the integration tests: a span recorder, and the harness of the `kill -9`
//! tests, which run a test of their own binary as a child that prints what it acknowledges.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub mod spans;

/// Runs the test `test` of this test binary again in a child process with `env` set, and hands
/// every line the child prints to `record`, which says whether the line acknowledges something.
/// Kills the child (SIGKILL) after `kill_after` acknowledgements, then hands over the rest of
/// what it printed before it died. Returns how many acknowledgements came before the kill.
pub fn kill_9_after(
    kill_after: usize,
    test: &str,
    env: &[(&str, &OsStr)],
    mut record: impl FnMut(&str) -> bool,
) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines.by_ref() {
        if record(&line.unwrap()) {
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What the child printed before it died was acknowledged too.
    for line in lines {
        record(&line.unwrap());
    }
    seen
}

/// Writes to stdout at once, for the parent reading a child's acknowledgements.
pub fn print_now(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).unwrap();
    out.flush().unwrap();
}
