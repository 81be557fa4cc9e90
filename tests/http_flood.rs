//! The HTTP server bounds its clients: a flood of connections that send half a
//! request and stop does not lock out `/healthz`, the slow connections are
//! closed after `http.header_timeout`, and memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The process's soft limit on open files (from /proc/self/limits).
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// `/healthz`, with 2 s to connect and 2 s to answer.
fn healthz_within_2s(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
    else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// True once the server has closed `s` (end of stream or reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn half_sent_requests_neither_lock_out_healthz_nor_stay_open() {
    let (mut demo, rx) = common::spawn_crowdpark(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--speed",
            "10",
        ],
        &[
            ("CROWDPARK_HTTP__MAX_CONNECTIONS", "1000"),
            ("CROWDPARK_HTTP__HEADER_TIMEOUT", "3s"),
        ],
    );
    let mut lines = Vec::new();
    let banner = common::wait_for_line(&rx, "http://", Duration::from_secs(30), &mut lines)
        .expect("demo banner");
    let addr = banner
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let pid = demo.0.as_ref().unwrap().id();
    assert!(healthz_within_2s(&addr));
    let rss_before = rss_kb(pid);

    // Twice the connection limit, if this process may open that many.
    let flood = 2_000.min(open_file_limit().saturating_sub(200));
    assert!(
        flood > 1000,
        "too few file descriptors for the test: {flood}"
    );
    let mut slow = Vec::with_capacity(flood);
    for _ in 0..flood {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /api/v1/zones HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        slow.push(s);
    }
    let mut answered = 0;
    for _ in 0..5 {
        answered += usize::from(healthz_within_2s(&addr));
    }
    assert_eq!(answered, 5, "/healthz answered within 2 s during the flood");
    let rss_during = rss_kb(pid);

    // The slow ones are closed: made room for others, or timed out.
    let deadline = Instant::now() + Duration::from_secs(60);
    for s in &slow {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    }
    let mut open: Vec<TcpStream> = slow;
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed_by_server(s));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        open.is_empty(),
        "{} of {flood} half-sent connections still open",
        open.len()
    );
    assert!(healthz_within_2s(&addr));
    eprintln!(
        "{flood} half-sent requests: RSS {} kB before, {} kB during; all closed by the server",
        rss_before, rss_during
    );
    // Bounded: well under the 400 MB that 20,000 such connections once took.
    assert!(
        rss_during < rss_before + 100_000,
        "RSS grew from {rss_before} to {rss_during} kB"
    );
    let c = demo.0.as_mut().unwrap();
    let _ = c.kill();
}
