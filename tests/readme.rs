//! The README's examples are real: every TOML snippet is valid TOML that the
//! engine accepts as configuration (laid over the embedded district), and the
//! ACL list it shows is what `crowdpark topics acls` prints.

use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The fenced code blocks of `text` tagged `lang`.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let end = body.find("```").expect("a closed code block");
        out.push(&body[..end]);
        rest = &body[end..];
    }
    out
}

/// Lays `over` onto `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[test]
fn every_toml_snippet_is_a_valid_configuration() {
    let text = readme();
    let snippets = blocks(&text, "toml");
    assert!(!snippets.is_empty(), "the README shows configuration");
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/crowdpark.toml"
    ))
    .unwrap();
    for snippet in snippets {
        let parsed: toml::Table = snippet
            .parse()
            .unwrap_or_else(|e| panic!("README snippet is not TOML ({e}):\n{snippet}"));
        let mut config: toml::Table = default.parse().unwrap();
        merge(&mut config, parsed);
        let dir = std::env::temp_dir().join(format!("crowdpark-readme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("snippet.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
            .args(["check-config", path.to_str().unwrap()])
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README snippet refused: {}\n{snippet}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_acl_list_is_what_topics_acls_prints() {
    let text = readme();
    let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["topics", "acls", "--principal", "User:crowdpark"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.lines().count() >= 13, "{printed}");
    assert!(
        blocks(&text, "text").contains(&printed.as_str()),
        "the README's ACL list differs from `crowdpark topics acls`:\n{printed}"
    );
}
