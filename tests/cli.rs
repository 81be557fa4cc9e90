//! The command line as an operator meets it: logs that a file or a log
//! shipper can take (no escape codes unless stderr is a terminal, or one JSON
//! object per line), a bad environment override blamed on its variable, and
//! a `--version` that says which build it is.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `crowdpark run` against a port where no broker listens, for 3 s (it logs
/// its start and the connection failures), with `extra` arguments and
/// environment; its stderr.
fn run_logs(extra: &[&str], env: &[(&str, &str)]) -> String {
    let brokers = format!("127.0.0.1:{}", common::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["run", "--listen", "127.0.0.1:0", "--brokers", &brokers])
        .args(extra)
        .env_remove("CROWDPARK_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn logs_to_a_file_have_no_escape_codes_and_json_logs_parse() {
    let text = run_logs(&[], &[]);
    assert!(text.lines().count() >= 2, "some log lines: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a file:\n{text:?}"
    );
    assert!(text.contains(" INFO "), "{text}");

    for (args, env) in [
        (vec!["--log-format", "json"], vec![]),
        (vec![], vec![("CROWDPARK_LOG_FORMAT", "json")]),
    ] {
        let text = run_logs(&args, &env);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() >= 2, "{text}");
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            assert!(v["message"].is_string(), "{line}");
        }
    }
}

#[test]
fn a_bad_environment_override_is_named_by_its_variable() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crowdpark.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["check-config", config])
        .env("CROWDPARK_CROWD__MIN_DWELL", "abc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: environment: CROWDPARK_CROWD__MIN_DWELL (sets crowd.min_dwell): "),
        "{err}"
    );
    assert!(
        !err.contains("crowdpark.toml"),
        "the file is not to blame: {err}"
    );
}

#[test]
fn the_version_names_the_revision_and_the_build_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("crowdpark {} (revision ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(git) = git.ok().filter(|g| g.status.success()) {
        let revision = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert!(
            text.contains(&format!("revision {revision}, built ")),
            "{text}"
        );
    }
    let date = text
        .split("built ")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches([')', '\n']);
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{text}"
    );
}
