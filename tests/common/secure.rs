//! The secured broker that `scripts/kafka.sh start --secure` runs (SASL_SSL with
//! SCRAM-SHA-512, a private CA, ACLs enforced): its address, its users, and ACL
//! grants through the script. A test binary calls [`use_secure_cluster`] first;
//! from then on every helper in `kafka` and `engine` talks to this broker, as
//! its super user `admin` unless a test says otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct SecureCluster {
    pub brokers: String,
    /// The listener whose certificate names another host.
    pub mismatch_brokers: String,
    /// The listener that takes OAUTHBEARER with unsecured JWTs.
    pub oauth_brokers: String,
    pub run: PathBuf,
}

static CHOSEN: OnceLock<SecureCluster> = OnceLock::new();

pub fn chosen() -> Option<&'static SecureCluster> {
    CHOSEN.get()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Points every helper at the secured broker; fails with instructions when it
/// is not running.
pub fn use_secure_cluster() -> &'static SecureCluster {
    CHOSEN.get_or_init(|| {
        let run = std::env::var("CROWDPARK_SECURE_KAFKA_RUN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join(".cache/kafka-secure-run"));
        let port = std::env::var("KAFKA_SECURE_PORT").unwrap_or_else(|_| "9094".into());
        let mismatch = std::env::var("KAFKA_MISMATCH_PORT").unwrap_or_else(|_| "9096".into());
        let oauth = std::env::var("KAFKA_OAUTH_PORT").unwrap_or_else(|_| "9097".into());
        let cluster = SecureCluster {
            brokers: format!("127.0.0.1:{port}"),
            mismatch_brokers: format!("127.0.0.1:{mismatch}"),
            oauth_brokers: format!("127.0.0.1:{oauth}"),
            run,
        };
        assert!(
            script(&["status", "--secure"]).status.success(),
            "no secured broker: start one with `scripts/kafka.sh start --secure`, or run `scripts/test.sh`, which does"
        );
        cluster
    })
}

fn script(args: &[&str]) -> std::process::Output {
    Command::new(root().join("scripts/kafka.sh"))
        .args(args)
        .output()
        .expect("scripts/kafka.sh runs")
}

impl SecureCluster {
    pub fn ca(&self) -> PathBuf {
        self.run.join("tls/ca.pem")
    }

    pub fn password(&self, user: &str) -> String {
        std::fs::read_to_string(self.run.join("users").join(user))
            .unwrap_or_else(|e| panic!("password of {user}: {e}"))
            .trim()
            .to_string()
    }

    /// librdkafka properties that log in as `user`.
    pub fn client_properties(&self, user: &str) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "SASL_SSL".into()),
            ("sasl.mechanism", "SCRAM-SHA-512".into()),
            ("sasl.username", user.into()),
            ("sasl.password", self.password(user)),
            ("ssl.ca.location", self.ca().display().to_string()),
        ]
    }

    /// librdkafka properties that log in on the OAUTHBEARER listener with an
    /// unsecured token naming `user` (librdkafka makes the token itself).
    pub fn oauth_properties(&self, user: &str) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "SASL_SSL".into()),
            ("sasl.mechanism", "OAUTHBEARER".into()),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true".into()),
            ("sasl.oauthbearer.config", format!("principal={user}")),
            ("ssl.ca.location", self.ca().display().to_string()),
        ]
    }

    /// The same, as `crowdpark` reads them from the environment.
    pub fn engine_env(&self, user: &str) -> Vec<(String, String)> {
        as_env(self.client_properties(user))
    }

    /// [`oauth_properties`](Self::oauth_properties) as `crowdpark` reads them.
    pub fn oauth_env(&self, user: &str) -> Vec<(String, String)> {
        as_env(self.oauth_properties(user))
    }

    /// A new SCRAM user (its password made by the script).
    pub fn create_user(&self, user: &str) {
        let out = script(&["user", "--secure", user]);
        assert!(
            out.status.success(),
            "creating user {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kafka-acls --add` (grant) or `--remove` (revoke) with `options`.
    pub fn acl(&self, action: &str, options: &str) {
        let mut args = vec!["acl", "--secure", action];
        args.extend(options.split_whitespace());
        let out = script(&args);
        assert!(
            out.status.success(),
            "acl {action} {options}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Grants `principal` exactly what `crowdpark topics acls` prints for the
    /// engine configured by `env`; returns the option lists granted.
    pub fn grant_documented(&self, env: &[(String, String)], principal: &str) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
            .args(["topics", "acls", "--principal", principal])
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        assert!(out.status.success(), "topics acls failed");
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert!(!lines.is_empty());
        // One JVM per distinct operation set: grants that share operations and a
        // resource kind go in one kafka-acls call (it applies the cross product).
        let mut batches: Vec<(String, String, Vec<String>)> = Vec::new();
        for line in &lines {
            let (batch, ops, resource) = split_grant(line);
            match batches.iter_mut().find(|(b, _, _)| *b == batch) {
                Some((_, _, resources)) => resources.push(resource),
                None => batches.push((batch, ops, vec![resource])),
            }
        }
        for (_, ops, resources) in batches {
            self.acl("grant", &format!("{ops} {}", resources.join(" ")));
        }
        lines
    }
}

/// Splits a `topics acls` line into a batch key, its principal and
/// operations, and its resource (kind, name and pattern type), so grants can be
/// batched; prefixed patterns stay alone (the pattern type applies to every
/// resource of a call).
fn split_grant(line: &str) -> (String, String, String) {
    let at = line
        .find(" --topic ")
        .or_else(|| line.find(" --group "))
        .or_else(|| line.find(" --transactional-id "))
        .expect("a resource");
    let (ops, resource) = line.split_at(at);
    let kind = resource.split_whitespace().next().unwrap();
    let batch = if resource.contains("prefixed") {
        line.to_string()
    } else {
        format!("{ops} {kind}")
    };
    (batch, ops.to_string(), resource.trim().to_string())
}

/// librdkafka properties as `kafka.client` settings in the environment.
fn as_env(properties: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    properties
        .into_iter()
        .map(|(k, v)| {
            let key = k.replace('.', "_").to_uppercase();
            (format!("CROWDPARK_KAFKA__CLIENT__{key}"), v)
        })
        .collect()
}
