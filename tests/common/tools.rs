//! The real tools some tests drive: openssl for test CAs and certificates, and
//! a Prometheus server (Debian package `prometheus`) on a free loopback port.

use super::{free_port, ChildGuard};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `openssl` with `args`; fails the test if it fails.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A fresh self-signed CA named `name` in `dir`: `ca.pem` and `ca.key`.
pub fn test_ca(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let subject = format!("/CN={name}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &subject,
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    dir.join("ca.pem")
}

/// Starts a Prometheus server with `config` (YAML) and its data under `dir`;
/// the process (killed when dropped) and its web address.
pub fn prometheus(dir: &Path, config: &str) -> (ChildGuard, String) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("prometheus not found ({e}): install the Debian package `prometheus`")
        });
    (ChildGuard(Some(server)), web)
}
