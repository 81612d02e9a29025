//! `http-server`: Skiff's container example, a plain HTTP/1.1 server on `$PORT` (8080 by
//! default, as Knative sets it) with keep-alive, one thread per connection.
//!
//! - `/` answers `Hello {TARGET}!` (`TARGET` from the environment, default `World`);
//! - `/sleep?ms=N` holds the request N milliseconds (load for the autoscaler);
//! - `/ps` lists the processes it can see, `/ls?path=P` the entries of a directory (what a
//!   container can see of its host);
//! - `/alloc?mb=N` allocates and touches N MiB (to cross a memory limit);
//! - `/exit?code=N` ends the process with exit code N;
//! - `/headers` lists the request's headers (what reached the container, `traceparent` included).
//!
//! `EXIT_ON_START=N` makes it exit with N at once (a crashing container); `START_DELAY_MS=N`
//! makes it wait before it listens (a slow start). SIGTERM ends it at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn _exit(code: i32) -> !;
}

extern "C" fn on_term(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    const SIGTERM: i32 = 15;
    // As PID 1 of its namespace the process ignores SIGTERM unless it handles it.
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        signal(SIGTERM, on_term as extern "C" fn(i32) as usize);
    }
    if let Some(code) = std::env::var("EXIT_ON_START").ok().and_then(|c| c.parse::<i32>().ok()) {
        eprintln!("http-server: exiting with {code} on start, as asked");
        std::process::exit(code);
    }
    if let Some(ms) = std::env::var("START_DELAY_MS").ok().and_then(|c| c.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let port = std::env::var("PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(8080);
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("http-server: cannot listen on port {port}: {err}");
            std::process::exit(1);
        }
    };
    println!("http-server: listening on port {port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut content_length = 0usize;
        let mut close = false;
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                headers.push_str(&format!("{name}: {value}\n"));
                if name == "content-length" {
                    content_length = value.parse().unwrap_or(0);
                } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (status, text) = if target == "/headers" { ("200 OK", headers.clone()) } else { answer(&target) };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{text}",
            text.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

fn answer(target: &str) -> (&'static str, String) {
    let path = target.split('?').next().unwrap_or("/");
    match path {
        "/" => {
            let name = std::env::var("TARGET").unwrap_or_else(|_| "World".into());
            ("200 OK", format!("Hello {name}!\n"))
        }
        "/sleep" => {
            let ms = query(target, "ms").and_then(|v| v.parse().ok()).unwrap_or(100);
            std::thread::sleep(Duration::from_millis(ms));
            ("200 OK", format!("slept {ms} ms\n"))
        }
        "/ps" => {
            let mut seen = Vec::new();
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.chars().all(|c| c.is_ascii_digit()) {
                    let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    seen.push(format!("{name} {}", comm.trim()));
                }
            }
            ("200 OK", seen.join("\n") + "\n")
        }
        "/ls" => {
            let dir = query(target, "path").unwrap_or("/");
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut names: Vec<String> =
                        entries.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
                    names.sort();
                    ("200 OK", names.join("\n") + "\n")
                }
                Err(err) => ("404 Not Found", format!("{dir}: {err}\n")),
            }
        }
        "/alloc" => {
            let mb: usize = query(target, "mb").and_then(|v| v.parse().ok()).unwrap_or(64);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mb {
                hoard.push(vec![1u8; 1 << 20]);
            }
            let total: usize = hoard.iter().map(|chunk| chunk[chunk.len() - 1] as usize).sum();
            ("200 OK", format!("allocated {total} MiB\n"))
        }
        "/exit" => {
            let code = query(target, "code").and_then(|v| v.parse().ok()).unwrap_or(1);
            eprintln!("http-server: exiting with {code}, as asked");
            std::process::exit(code);
        }
        _ => ("404 Not Found", format!("no route {path}\n")),
    }
}
