//! Helpers shared by the integration tests: a child process that is always killed,
//! and a tiny HTTP/1.1 GET over loopback (no client library needed).
#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod districts;
pub mod engine;
pub mod kafka;
pub mod scenario;
pub mod secure;
pub mod tools;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A port nothing listens on right now, on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps the child when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `crowdpark` with `args`; stdout lines arrive on the returned channel.
pub fn spawn_crowdpark<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    env: &[(K, V)],
) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crowdpark"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// [`spawn_crowdpark`] under a soft and hard open-file limit of `files`, as
/// `ulimit -n` sets it in a shell.
pub fn spawn_crowdpark_limited<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    files: u32,
    args: &[&str],
    env: &[(K, V)],
) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_crowdpark"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// [`spawn_crowdpark`] with its log (stderr) appended to `log` as well as
/// shown, for tests that check what it says.
pub fn spawn_crowdpark_logged<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    log: &std::path::Path,
    args: &[&str],
    env: &[(K, V)],
) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" 2>>\"$CROWDPARK_TEST_LOG\"")
        .arg(env!("CARGO_BIN_EXE_crowdpark"))
        .args(args)
        .env("CROWDPARK_TEST_LOG", log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// Starts `cmd`; stdout lines arrive on the returned channel.
pub fn spawn_command(mut cmd: Command) -> (ChildGuard, mpsc::Receiver<String>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("crowdpark starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (ChildGuard(Some(child)), rx)
}

/// Waits for a stdout line containing `needle`, collecting every line seen.
pub fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> Option<String> {
    let deadline = std::time::Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// The `host:port` of the HTTP server, from the `HTTP on http://...` banner
/// of `demo` and `run`, waited for up to `timeout`.
pub fn http_address(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> String {
    let banner = wait_for_line(rx, "HTTP on http://", timeout, seen).expect("banner with address");
    banner
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("address in banner")
        .to_string()
}

/// `GET path` on `addr`; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Reads a streaming response (SSE) for `for_how_long`, returning what arrived.
pub fn read_stream(addr: &str, path: &str, for_how_long: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let deadline = std::time::Instant::now() + for_how_long;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}
