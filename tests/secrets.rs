//! No secret given in the configuration or the environment appears in any
//! output of any command: not in a configuration error (a mistyped property, a
//! Java-style JAAS line librdkafka refuses, a value of the wrong type, a TOML
//! syntax error on the line that holds the password), not in `check-config`'s
//! listing, not in `run`'s logs at debug level while it waits for a broker.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "pw-Zq81-NEVER-PRINT-ME";

/// The embedded district with `extra` appended, in a file of its own.
fn config_with(name: &str, extra: &str) -> PathBuf {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/crowdpark.toml"
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("crowdpark-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{base}\n{extra}\n")).unwrap();
    path
}

/// Runs `crowdpark args` (with `env`) to its end, or SIGTERM after 4 s; its
/// stdout and stderr together, and whether it succeeded.
fn output(args: &[&str], env: &[(&str, &str)]) -> (String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(4) {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

/// Every command that reads the configuration, with `--config file` or the
/// embedded one, against a port where no broker listens.
fn commands(config: Option<&str>, port: &str) -> Vec<Vec<String>> {
    let brokers = format!("127.0.0.1:{port}");
    let mut all = vec![
        vec!["run".to_string(), "--listen".into(), "127.0.0.1:0".into()],
        vec!["topics".into(), "create".into()],
        vec!["simulate".into(), "--duration".into(), "1".into()],
    ];
    for c in &mut all {
        c.extend(["--brokers".to_string(), brokers.clone()]);
        if let Some(path) = config {
            c.extend(["--config".to_string(), path.to_string()]);
        }
    }
    if let Some(path) = config {
        all.push(vec!["check-config".into(), path.into()]);
    }
    all
}

fn assert_never_printed(case: &str, config: Option<&str>, env: &[(&str, &str)], valid: bool) {
    let port = common::free_port().to_string();
    for cmd in commands(config, &port) {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let (text, ok) = output(&args, env);
        assert!(
            !text.contains(SECRET) && !text.contains("NEVER-PRINT"),
            "{case}: `crowdpark {}` printed the secret:\n{text}",
            args.join(" ")
        );
        if !valid {
            assert!(!ok, "{case}: `crowdpark {}` accepted it", args.join(" "));
            assert!(
                text.contains("error:"),
                "{case}: `crowdpark {}` gave no error:\n{text}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn a_mistyped_property_never_prints_its_value() {
    assert_never_printed(
        "mistyped, environment",
        None,
        &[("CROWDPARK_KAFKA__CLIENT__SASL_PASSWRD", SECRET)],
        false,
    );
    let file = config_with(
        "mistyped",
        &format!("[kafka.client]\n\"sasl.passwrd\" = \"{SECRET}\""),
    );
    assert_never_printed("mistyped, file", file.to_str(), &[], false);
}

#[test]
fn a_java_jaas_line_is_refused_without_echo() {
    let jaas = format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"crowdpark\" password=\"{SECRET}\";"
    );
    assert_never_printed(
        "jaas",
        None,
        &[("CROWDPARK_KAFKA__CLIENT__SASL_JAAS_CONFIG", &jaas)],
        false,
    );
}

#[test]
fn a_toml_error_on_the_password_line_does_not_quote_it() {
    // Unquoted: not TOML.
    let file = config_with(
        "syntax",
        &format!("[kafka.client]\n\"sasl.password\" = {SECRET}"),
    );
    let (text, ok) = output(&["check-config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(text.contains("invalid TOML at line"), "{text}");
    assert_never_printed("syntax", file.to_str(), &[], false);
}

#[test]
fn numbers_and_dotted_keys_are_properties_and_secrets_are_masked() {
    // An unquoted numeric password is a property value like any other, and
    // dotted keys under [kafka.client] are librdkafka's dotted names.
    let numeric = config_with(
        "numeric",
        "[kafka.client]\nsecurity.protocol = \"SASL_SSL\"\nsasl.mechanism = \"SCRAM-SHA-512\"\nsasl.username = \"crowdpark\"\nsasl.password = 8675309123",
    );
    let (text, ok) = output(&["check-config", numeric.to_str().unwrap()], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("sasl.password = ***"), "{text}");
    assert!(text.contains("security.protocol = SASL_SSL"), "{text}");
    assert!(!text.contains("8675309123"), "{text}");
    // A valid secret, in the file and in the environment, through every
    // command at debug level (run waits for a broker that is not there).
    let valid = config_with(
        "valid",
        &format!(
            "[kafka.client]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"crowdpark\"\n\"sasl.password\" = \"{SECRET}\""
        ),
    );
    assert_never_printed("valid, file", valid.to_str(), &[], true);
    assert_never_printed(
        "valid, environment",
        None,
        &[
            (
                "CROWDPARK_KAFKA__CLIENT__SECURITY_PROTOCOL",
                "SASL_PLAINTEXT",
            ),
            ("CROWDPARK_KAFKA__CLIENT__SASL_MECHANISM", "SCRAM-SHA-512"),
            ("CROWDPARK_KAFKA__CLIENT__SASL_USERNAME", "crowdpark"),
            ("CROWDPARK_KAFKA__CLIENT__SASL_PASSWORD", SECRET),
        ],
        true,
    );
}
