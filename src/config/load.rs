//! Reading a configuration: TOML text, environment overrides, typed deserialisation.

use super::{secrets, validate, Config};
use std::fmt;
use std::path::Path;

/// A configuration problem, always tied to the key it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Dotted path of the key (`zones[2].area_m2`), or `(file)` for syntax errors.
    pub key: String,
    pub problem: String,
    /// The environment variable that set the key, when one did: the error is
    /// then the variable's, not the file's.
    pub variable: Option<String>,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            variable: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variable {
            Some(v) => write!(f, "{v} (sets {}): {}", self.key, self.problem),
            None => write!(f, "{}: {}", self.key, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

const ENV_PREFIX: &str = "CROWDPARK_";

/// Loads a file and applies the process environment's overrides.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("(file)", format!("cannot read {}: {e}", path.display())))?;
    load_str(&text, std::env::vars())
}

/// Parses `text`, lays the `CROWDPARK_SECTION__KEY` variables of `env` over it and
/// validates the result. `env` is a parameter so tests need not touch the process.
pub fn load_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| syntax_error(text, &e))?;
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    overrides.sort();
    let mut set_by = Vec::new();
    for (name, value) in overrides {
        let key = apply_override(&mut doc, &name, &value)?;
        set_by.push((key, name));
    }
    parse(doc).map_err(|mut e| {
        // The error is the variable's when it concerns a key it set.
        // A key it set, inside it, or a section holding it.
        let within = |inner: &str, outer: &str| {
            inner == outer
                || inner.starts_with(&format!("{outer}."))
                || inner.starts_with(&format!("{outer}["))
        };
        let concerns = |key: &str| within(&e.key, key) || within(key, &e.key);
        let variable = set_by.iter().find(|(key, _)| concerns(key));
        e.variable = variable.map(|(_, name)| name.clone());
        e
    })
}

/// The configuration from its TOML document, deserialised and validated.
fn parse(mut doc: toml::Table) -> Result<Config, ConfigError> {
    flatten_client_properties(&mut doc)?;
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                "(top level)".to_string()
            } else {
                path
            };
            let problem = e.into_inner().to_string();
            let problem = if secrets::hide_value_of(&key) {
                without_value(&problem)
            } else {
                problem
            };
            ConfigError::new(key, problem)
        })?;
    validate::validate(&config)?;
    Ok(config)
}

/// A TOML syntax error as a line, a column and the parser's message, without
/// the offending line the parser quotes: it may hold a secret.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let at = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        }
        None => String::new(),
    };
    ConfigError::new(
        "(file)",
        format!(
            "invalid TOML at {at}{}",
            e.message().trim().replace('\n', "; ")
        ),
    )
}

/// A deserialiser's message with the value it quotes left out: `invalid type:
/// integer `123`, expected a string` becomes `invalid value (not shown),
/// expected a string`.
fn without_value(problem: &str) -> String {
    // These name a field, never a value.
    if ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| problem.starts_with(p))
    {
        return problem.to_string();
    }
    match problem.find("expected") {
        Some(i) => format!("invalid value (not shown), {}", &problem[i..]),
        None => "invalid value (not shown)".into(),
    }
}

/// `kafka.client` holds librdkafka properties, all strings to librdkafka. A
/// file may write them as TOML dotted keys (`security.protocol = "SASL_SSL"`
/// under `[kafka.client]` is a nested table to TOML) and numbers or booleans
/// unquoted: both are read as the property librdkafka expects.
fn flatten_client_properties(doc: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(client) = doc
        .get_mut("kafka")
        .and_then(|k| k.as_table_mut())
        .and_then(|k| k.get_mut("client"))
    else {
        return Ok(());
    };
    let toml::Value::Table(table) = client else {
        return Err(ConfigError::new(
            "kafka.client",
            "must be a table of librdkafka properties (the value is not shown)",
        ));
    };
    let mut flat = toml::Table::new();
    flatten_into(&mut flat, "", std::mem::take(table))?;
    *table = flat;
    Ok(())
}

fn flatten_into(
    flat: &mut toml::Table,
    prefix: &str,
    table: toml::Table,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = format!("{prefix}{key}");
        let text = match value {
            toml::Value::Table(inner) => {
                flatten_into(flat, &format!("{name}."), inner)?;
                continue;
            }
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(_) | toml::Value::Datetime(_) => {
                return Err(ConfigError::new(
                    format!("kafka.client.{name}"),
                    "must be a string, number or boolean (the value is not shown)",
                ))
            }
        };
        flat.insert(name, toml::Value::String(text));
    }
    Ok(())
}

/// `CROWDPARK_CROWD__MIN_DWELL=90s` sets `crowd.min_dwell`. Keys under
/// `kafka.client` are librdkafka properties, which use dots where the environment
/// can only carry underscores, so there `SECURITY_PROTOCOL` becomes
/// `security.protocol`.
/// Returns the dotted key it set.
fn apply_override(doc: &mut toml::Table, name: &str, value: &str) -> Result<String, ConfigError> {
    let path: Vec<String> = name[ENV_PREFIX.len()..]
        .split("__")
        .map(|p| p.to_ascii_lowercase())
        .collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::new(
            name,
            "environment override has an empty key part",
        ));
    }
    let (last, parents) = path.split_last().expect("split on a non-empty string");
    let mut table = doc;
    for part in parents {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            ConfigError::new(
                name,
                format!("`{part}` is not a section, so it cannot be overridden key by key"),
            )
        })?;
    }
    let librdkafka = parents == ["kafka", "client"];
    let key = if librdkafka {
        last.replace('_', ".")
    } else {
        last.clone()
    };
    let typed = match table.get(&key) {
        // librdkafka takes every property as a string, numbers included.
        _ if librdkafka => toml::Value::String(value.to_string()),
        // Keep the type the file already gives the key: "0800" stays a string.
        Some(toml::Value::String(_)) => toml::Value::String(value.to_string()),
        _ => parse_scalar(value),
    };
    let dotted = format!("{}.{key}", parents.join("."));
    table.insert(key, typed);
    Ok(dotted)
}

/// Reads an environment value as a TOML scalar when it is one (numbers, booleans,
/// arrays), else as a plain string, so `CROWDPARK_CROWD__HYSTERESIS=0.9` is a float.
fn parse_scalar(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_config_is_valid() {
        let c = load_str(DEFAULT_CONFIG, env(&[])).unwrap();
        assert_eq!(c.lots.len(), 10);
        assert_eq!(c.total_spaces(), 2413);
        assert!(c.zones.len() >= 8);
        assert!(c.merchants.len() >= 30);
    }

    #[test]
    fn environment_overrides_keys_with_their_types() {
        let c = load_str(
            DEFAULT_CONFIG,
            env(&[
                ("CROWDPARK_CROWD__MIN_DWELL", "90s"),
                ("CROWDPARK_CROWD__HYSTERESIS", "0.9"),
                ("CROWDPARK_HTTP__LISTEN", "127.0.0.1:19898"),
                ("CROWDPARK_KAFKA__CLIENT__SECURITY_PROTOCOL", "SASL_SSL"),
                ("CROWDPARK_UNRELATED", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.crowd.min_dwell.as_ms(), 90_000);
        assert_eq!(c.crowd.hysteresis, 0.9);
        assert_eq!(c.http.listen, "127.0.0.1:19898");
        assert_eq!(c.kafka.client.get("security.protocol").unwrap(), "SASL_SSL");
        let c = load_str(
            DEFAULT_CONFIG,
            env(&[("CROWDPARK_KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000")]),
        )
        .unwrap();
        assert_eq!(c.kafka.client.get("session.timeout.ms").unwrap(), "6000");
    }

    #[test]
    fn more_entities_than_their_index_numbers_are_refused() {
        let mut c = load_str(DEFAULT_CONFIG, env(&[])).unwrap();
        let categories = c.payments.categories.clone();
        c.payments.categories = (0..=usize::from(u16::MAX))
            .map(|i| format!("category-{i}"))
            .collect();
        let e = validate::validate(&c).unwrap_err();
        assert_eq!(e.key, "payments.categories");
        assert!(e.problem.contains("65536 entries"), "{e}");
        // Zones are numbered wider: 100,000 are fine.
        c.payments.categories = categories;
        let template = c.zones[0].clone();
        for i in 0..100_000 {
            let mut z = template.clone();
            z.id = format!("zone-{i}");
            c.zones.push(z);
        }
        validate::validate(&c).unwrap();
    }

    #[test]
    fn workers_are_one_per_core_unless_set_within_bounds() {
        let c = load_str(DEFAULT_CONFIG, env(&[])).unwrap();
        assert_eq!(c.engine.workers, None);
        assert!(c.engine.worker_count() >= 1);
        let c = load_str(DEFAULT_CONFIG, env(&[("CROWDPARK_ENGINE__WORKERS", "3")])).unwrap();
        assert_eq!(c.engine.worker_count(), 3);
        for bad in ["0", "257"] {
            let e =
                load_str(DEFAULT_CONFIG, env(&[("CROWDPARK_ENGINE__WORKERS", bad)])).unwrap_err();
            assert_eq!(e.key, "engine.workers", "{e}");
            assert!(e.problem.contains("must be 1 to 256"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = load_str(
            DEFAULT_CONFIG,
            env(&[("CROWDPARK_CROWD__MIN_DWELL", "soon")]),
        )
        .unwrap_err();
        assert_eq!(e.key, "crowd.min_dwell");
        assert!(e.problem.contains("soon"), "{e}");

        let e = load_str(
            DEFAULT_CONFIG,
            env(&[("CROWDPARK_ENGINE__NO_SUCH_KEY", "1")]),
        )
        .unwrap_err();
        assert!(e.key.starts_with("engine"), "{e}");
        assert!(e.problem.contains("no_such_key"), "{e}");

        let bad = DEFAULT_CONFIG.replacen("area_m2 = ", "area_m2 = -", 1);
        let e = load_str(&bad, env(&[])).unwrap_err();
        assert_eq!(e.key, "zones[0].area_m2");

        let e = load_str("[district\nid=1", env(&[])).unwrap_err();
        assert_eq!(e.key, "(file)");
    }

    #[test]
    fn client_properties_are_flat_strings_and_errors_quote_no_secret() {
        let text = format!(
            "{DEFAULT_CONFIG}\n[kafka.client]\nsasl.password = 12345\n\"socket.keepalive.enable\" = true\n"
        );
        let c = load_str(&text, env(&[])).unwrap();
        assert_eq!(c.kafka.client["sasl.password"], "12345");
        assert_eq!(c.kafka.client["socket.keepalive.enable"], "true");

        let text = format!("{DEFAULT_CONFIG}\n[kafka.client]\n\"sasl.password\" = hunter2\n");
        let e = load_str(&text, env(&[])).unwrap_err();
        assert!(e.problem.starts_with("invalid TOML at line"), "{e}");
        assert!(!e.problem.contains("hunter2"), "{e}");

        let text = format!("{DEFAULT_CONFIG}\n[kafka.client]\n\"sasl.password\" = [\"hunter2\"]\n");
        let e = load_str(&text, env(&[])).unwrap_err();
        assert_eq!(e.key, "kafka.client.sasl.password");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    /// The embedded district as the first of two, `[[districts]]`, each zone
    /// and car park naming `hubin` except the last car park, in `wulin`.
    fn two_districts() -> String {
        let mut text = DEFAULT_CONFIG
            .replace("[district]\n", "[[districts]]\n")
            .replace("[[zones]]\n", "[[zones]]\ndistrict = \"hubin\"\n")
            .replace("[[lots]]\n", "[[lots]]\ndistrict = \"hubin\"\n");
        let last = text.rfind("district = \"hubin\"").unwrap();
        text.replace_range(last..last + 18, "district = \"wulin\"");
        text + "\n[[districts]]\nid = \"wulin\"\nname = \"Wulin\"\nutc_offset = \"+09:00\"\n"
    }

    #[test]
    fn several_districts_each_zone_and_car_park_names_one() {
        let c = load_str(&two_districts(), env(&[])).unwrap();
        let catalog = crate::model::Catalog::new(&c);
        let ids: Vec<&str> = catalog.districts.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["hubin", "wulin"]);
        assert_eq!(catalog.lots[9].district, 1);
        assert_eq!(catalog.lot_district(9).utc_offset.seconds, 9 * 3600);
        assert!(catalog.lots[..9].iter().all(|l| l.district == 0));
        assert!(catalog.zones.iter().all(|z| z.district == 0));
        assert_eq!(
            catalog.district_selling_area_centi(0),
            (0..catalog.zones.len() as u32)
                .map(|z| catalog.zone_selling_area_centi(z))
                .sum::<u64>()
        );
        assert_eq!(catalog.district_selling_area_centi(1), 0);

        let missing = two_districts().replacen("district = \"hubin\"\n", "", 1);
        let e = load_str(&missing, env(&[])).unwrap_err();
        assert_eq!(e.key, "zones[0].district");
        assert!(
            e.to_string().contains("several districts (hubin, wulin)"),
            "{e}"
        );

        let unknown = two_districts().replacen("district = \"hubin\"", "district = \"xihu\"", 1);
        let e = load_str(&unknown, env(&[])).unwrap_err();
        assert_eq!(e.key, "zones[0].district");
        assert!(
            e.to_string()
                .contains("`xihu` is not a configured district"),
            "{e}"
        );

        let both = format!(
            "{}\n[district]\nid = \"x\"\nname = \"x\"\n",
            two_districts()
        );
        let e = load_str(&both, env(&[])).unwrap_err();
        assert_eq!(e.key, "districts");

        let clash = two_districts().replace("\"wulin\"", "\"p10-huanglong-east\"");
        let e = load_str(&clash, env(&[])).unwrap_err();
        assert!(
            e.to_string().contains("district's and a car park's id"),
            "{e}"
        );
    }

    #[test]
    fn one_district_needs_no_district_on_its_zones_but_may_name_it() {
        let named = DEFAULT_CONFIG.replace("[[zones]]\n", "[[zones]]\ndistrict = \"hubin\"\n");
        load_str(&named, env(&[])).unwrap();
        let wrong = DEFAULT_CONFIG.replace("[[lots]]\n", "[[lots]]\ndistrict = \"wulin\"\n");
        let e = load_str(&wrong, env(&[])).unwrap_err();
        assert_eq!(e.key, "lots[0].district");
    }

    #[test]
    fn a_bad_environment_override_is_named_by_its_variable() {
        let e = load_str(
            DEFAULT_CONFIG,
            env(&[("CROWDPARK_CROWD__MIN_DWELL", "abc")]),
        )
        .unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("CROWDPARK_CROWD__MIN_DWELL"));
        assert!(
            e.to_string()
                .starts_with("CROWDPARK_CROWD__MIN_DWELL (sets crowd.min_dwell): "),
            "{e}"
        );
        // Rules past deserialisation too: yellow above red.
        let e = load_str(
            DEFAULT_CONFIG,
            env(&[("CROWDPARK_CROWD__THRESHOLDS__YELLOW", "9")]),
        )
        .unwrap_err();
        assert_eq!(
            e.variable.as_deref(),
            Some("CROWDPARK_CROWD__THRESHOLDS__YELLOW"),
            "{e}"
        );
        // A file's own mistake stays the file's.
        let bad = DEFAULT_CONFIG.replace("min_dwell = \"120s\"", "min_dwell = \"abc\"");
        let e = load_str(&bad, env(&[("CROWDPARK_CROWD__HYSTERESIS", "0.9")])).unwrap_err();
        assert_eq!((e.key.as_str(), e.variable), ("crowd.min_dwell", None));
    }
}
