//! Optional TLS and basic authentication for the HTTP API, as Prometheus
//! exporters have them: wrong or missing credentials get 401, TLS works with
//! the test's own CA, and a real Prometheus server scrapes over TLS with basic
//! auth (and gets nowhere with a wrong password).

mod common;

use common::tools::{openssl as run_openssl, prometheus, test_ca};
use common::{free_port, spawn_crowdpark, wait_for_line};
use openssl::ssl::{SslConnector, SslMethod};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USER: &str = "prometheus";
const PASSWORD: &str = "scrape-Pw-4471";

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    test_ca(dir, "test CA");
    let p = |f: &str| dir.join(f).display().to_string();
    run_openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=crowdpark",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run_openssl(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &p("server.pem"),
        "-extfile",
        &p("san.ext"),
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// GET over TLS (trusting `ca`), with basic auth if given: status and body.
fn https_get(addr: &str, ca: &Path, path: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    use base64::Engine;
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = b
        .build()
        .connect("127.0.0.1", tcp)
        .expect("a TLS handshake");
    let authorization = auth
        .map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = tls.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

/// Asks the Prometheus API at `web` for `query`; the results' values by job.
fn query(web: &str, query: &str) -> Vec<(String, String)> {
    let Ok((200, body)) = common::http_get(web, &format!("/api/v1/query?query={query}")) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["metric"]["job"].as_str().unwrap_or("").to_string(),
                r["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn tls_and_basic_auth_guard_the_api_and_prometheus_scrapes_through_them() {
    let dir = std::env::temp_dir().join(format!(
        "crowdpark-https-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    let env = [
        ("CROWDPARK_HTTP__TLS_CERT_FILE", cert.display().to_string()),
        ("CROWDPARK_HTTP__TLS_KEY_FILE", key.display().to_string()),
        ("CROWDPARK_HTTP__BASIC_AUTH_USERS__PROMETHEUS", hash),
    ];
    let (_demo, rx) = spawn_crowdpark(&["demo", "--listen", "127.0.0.1:0", "--quiet"], &env);
    let mut lines = Vec::new();
    let banner = wait_for_line(&rx, "HTTP on", Duration::from_secs(30), &mut lines).unwrap();
    let addr = banner
        .split("https://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("an https:// banner")
        .to_string();

    assert_eq!(https_get(&addr, &ca, "/metrics", None).0, 401);
    let (status, body) = https_get(&addr, &ca, "/healthz", Some((USER, "wrong")));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("WWW-Authenticate: Basic") || body.contains("www-authenticate: Basic"));
    let (status, body) = https_get(&addr, &ca, "/metrics", Some((USER, PASSWORD)));
    assert_eq!(status, 200);
    assert!(body.contains("crowdpark_events_consumed_total"));
    // Plain HTTP on the TLS port gets no answer of the API.
    let plain = common::http_get(&addr, "/metrics")
        .map(|(s, _)| s)
        .unwrap_or(0);
    assert_ne!(plain, 200);

    // A real Prometheus: one job with the password, one without it.
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: {USER}\n      password: {password}\n    static_configs:\n      - targets: [\"{addr}\"]\n",
            ca.display()
        )
    };
    let (_server, web) = prometheus(
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
            job("crowdpark", PASSWORD),
            job("intruder", "guess")
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        let mut up = query(&web, "up");
        up.sort();
        let levels = query(&web, "crowdpark_zone_alert_level");
        if up.len() == 2 && !levels.is_empty() || Instant::now() > deadline {
            break up;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        up,
        vec![
            ("crowdpark".to_string(), "1".to_string()),
            ("intruder".to_string(), "0".to_string())
        ],
        "Prometheus scrapes with the password over TLS, and not without it"
    );
}
