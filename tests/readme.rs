//! The documentation's examples are real: every TOML snippet in the README
//! and `docs/` is valid TOML that the engine accepts as configuration (laid
//! over the embedded district), the ACL list `docs/operations.md` shows is
//! what `crowdpark topics acls` prints, and the README is a guide, not a
//! manual (at most 16 KB).

use std::process::Command;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The README and every Markdown file under `docs/`, one after another.
fn documentation() -> String {
    let mut text = read("README.md");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut docs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for doc in docs {
        text.push_str(&std::fs::read_to_string(doc).unwrap());
    }
    text
}

#[test]
fn the_readme_is_a_guide_of_at_most_16_kb() {
    let size = read("README.md").len();
    assert!(size <= 16 * 1024, "README.md is {size} bytes");
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

/// Lays `over` onto `base`, table by table. A snippet's `[[districts]]`
/// replaces the base's `[district]`, and the base's zones and car parks join
/// its first district.
fn merge(base: &mut toml::Table, over: toml::Table) {
    if let Some(toml::Value::Array(districts)) = over.get("districts") {
        base.remove("district");
        let first = districts[0]["id"].clone();
        for list in ["zones", "lots"] {
            for entity in base[list].as_array_mut().unwrap() {
                entity
                    .as_table_mut()
                    .unwrap()
                    .insert("district".into(), first.clone());
            }
        }
    }
    merge_tables(base, over);
}

fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[test]
fn every_toml_snippet_is_a_valid_configuration() {
    let text = documentation();
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
            .unwrap_or_else(|e| panic!("documentation snippet is not TOML ({e}):\n{snippet}"));
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
            "documentation snippet refused: {}\n{snippet}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_acl_list_is_what_topics_acls_prints() {
    let text = read("docs/operations.md");
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
        "the ACL list in docs/operations.md differs from `crowdpark topics acls`:\n{printed}"
    );
}
