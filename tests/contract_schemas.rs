//! The published contract (`schemas/`, `docs/asyncapi.yaml`) checked against
//! what the engine does, both ways, over the simulated afternoon with bad and
//! duplicate messages mixed in:
//! - every record the engine publishes validates against its topic's schema;
//! - every message the simulator sends that the engine accepts validates
//!   against its input schema;
//! - every message the engine rejects violates its schema, or is refused for
//!   what a schema cannot know (an entity the configuration lacks, a key,
//!   lateness, the configured currency, a car park's detection type).
//!
//! A change to an output without a matching schema change fails here.

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::Disposition;
use crowdpark::model::{InputTopic, RejectReason};
use crowdpark::output::Output;
use crowdpark::sim::{SimOptions, Simulator};
use crowdpark::testing::TestDriver;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

fn errors(v: &jsonschema::Validator, record: &Value) -> Vec<String> {
    v.iter_errors(record).map(|e| e.to_string()).collect()
}

fn input_schema(topic: InputTopic) -> &'static str {
    match topic {
        InputTopic::CrowdCounts => "crowd-count.schema.json",
        InputTopic::ParkingEvents => "parking-event.schema.json",
        InputTopic::Payments => "payment.schema.json",
        InputTopic::PaymentsByZone | InputTopic::DistrictPartials => unreachable!("internal"),
    }
}

/// The schema of an output record, by the topic it goes to; `None` for the
/// internal repartition records.
fn output_schema(o: &Output) -> Option<&'static str> {
    use crowdpark::output::OutputTopic::*;
    Some(match o.topic() {
        CrowdAlerts => "crowd-alert.schema.json",
        CrowdDensity => "crowd-density.schema.json",
        ParkingAvailability => "parking-availability.schema.json",
        PaymentsStats => "payments-stats.schema.json",
        DeadLetter => "deadletter.schema.json",
        PaymentsByZone => return None,
    })
}

/// Refusals a schema cannot express: they depend on the configuration, the
/// key, the clock or what came before.
fn beyond_a_schema(reason: RejectReason, error: &str) -> bool {
    matches!(
        reason,
        RejectReason::UnknownEntity | RejectReason::Late | RejectReason::KeyMismatch
    ) || (reason == RejectReason::InvalidField
        && (error.contains("currency") || error.contains("detection")))
}

#[test]
fn the_simulated_afternoon_matches_the_published_schemas() {
    let mut driver = TestDriver::new();
    let config = driver.config().clone();
    let opts = SimOptions {
        bad_ratio: 0.05,
        duplicate_ratio: 0.02,
        ..SimOptions::default()
    };
    let mut sim = Simulator::new(&config, opts.clone());
    let validators: BTreeMap<&str, jsonschema::Validator> = [
        "crowd-count.schema.json",
        "parking-event.schema.json",
        "payment.schema.json",
        "crowd-alert.schema.json",
        "crowd-density.schema.json",
        "parking-availability.schema.json",
        "payments-stats.schema.json",
        "deadletter.schema.json",
    ]
    .into_iter()
    .map(|n| (n, schema(n)))
    .collect();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    for second in 1..=45 * 60 {
        let now = opts.start_ms + second * 1000;
        driver.set_now(now);
        for m in sim.advance_to(now) {
            let disposition = driver.send(m.topic, &m.key, &m.payload);
            let name = input_schema(m.topic);
            let parsed: Option<Value> = serde_json::from_slice(&m.payload).ok();
            let problems = parsed
                .as_ref()
                .map(|v| errors(&validators[name], v))
                .unwrap_or_else(|| vec!["not JSON".into()]);
            let text = String::from_utf8_lossy(&m.payload);
            match disposition {
                Disposition::Accepted | Disposition::Duplicate => {
                    assert!(
                        problems.is_empty(),
                        "accepted but invalid per {name}: {problems:?}\n{text}"
                    );
                    *checked.entry(format!("accepted {name}")).or_default() += 1;
                }
                Disposition::Rejected(reason) => {
                    let error = driver
                        .pending()
                        .iter()
                        .rev()
                        .find_map(|o| match o {
                            Output::DeadLetter(d) => Some(d.error.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    assert!(
                        !problems.is_empty() || beyond_a_schema(reason, &error),
                        "rejected ({reason:?}: {error}) although valid per {name}\n{text}"
                    );
                    *checked.entry(format!("rejected {name}")).or_default() += 1;
                }
            }
        }
        driver.tick_at(now);
        for o in driver.take() {
            let Some(name) = output_schema(&o) else {
                continue;
            };
            let record: Value = serde_json::from_slice(&o.to_json()).unwrap();
            let problems = errors(&validators[name], &record);
            assert!(problems.is_empty(), "{name}: {problems:?}\n{record}");
            *checked.entry(name.to_string()).or_default() += 1;
        }
    }
    eprintln!("{checked:#?}");
    for name in validators.keys() {
        assert!(
            checked.keys().any(|k| k.ends_with(name)),
            "nothing checked against {name}"
        );
    }
}

/// `docs/asyncapi.yaml` names every topic the engine uses, under its default
/// name, and every message payload is a schema file here (all of them used).
#[test]
fn the_asyncapi_document_covers_every_topic_and_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("docs/asyncapi.yaml")).unwrap())
            .unwrap();
    assert_eq!(doc["asyncapi"].as_str(), Some("3.0.0"));
    let config = load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap();
    let t = &config.topics;
    let mut topics: Vec<&str> = [
        &t.crowd_counts,
        &t.parking_events,
        &t.payments,
        &t.crowd_alerts,
        &t.crowd_density,
        &t.parking_availability,
        &t.payments_stats,
        &t.deadletter,
        &t.state,
        &t.payments_by_zone,
        &t.partials_by_district,
        &t.view,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    topics.sort();
    let channels = doc["channels"].as_mapping().unwrap();
    let mut addresses: Vec<&str> = channels
        .values()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    addresses.sort();
    assert_eq!(addresses, topics);
    let mut referenced = std::collections::BTreeSet::new();
    for channel in channels.values() {
        for message in channel["messages"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(_, m)| m)
        {
            let r = message["payload"]["schema"]["$ref"].as_str().unwrap();
            let file = r
                .strip_prefix("../schemas/")
                .expect("a schema under schemas/");
            schema(file);
            assert!(
                message["bindings"]["kafka"]["key"].is_mapping(),
                "{r}: the key is described"
            );
            referenced.insert(file.to_string());
        }
    }
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(root.join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        referenced, on_disk,
        "every schema is a message of the document"
    );
    for (name, op) in doc["operations"].as_mapping().unwrap() {
        let channel = op["channel"]["$ref"].as_str().unwrap();
        let id = channel.strip_prefix("#/channels/").unwrap();
        assert!(channels.contains_key(id), "{name:?} refers to {channel}");
    }
}

/// The dead-letter schema lists exactly the engine's reasons.
#[test]
fn the_dead_letter_reasons_are_the_engines() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/deadletter.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let listed: Vec<&str> = schema["properties"]["reason"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let engine: Vec<String> = RejectReason::ALL
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(listed, engine);
}

/// Every JSON example in the README and `docs/outputs.md` (one per line in
/// their `json` blocks) is valid against one of the schemas: the examples are
/// the contract's, not older shapes.
#[test]
fn the_readme_examples_follow_the_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap()
        + &std::fs::read_to_string(root.join("docs/outputs.md")).unwrap();
    let validators: Vec<(String, jsonschema::Validator)> = std::fs::read_dir(root.join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| {
            let v = schema(&n);
            (n, v)
        })
        .collect();
    let mut examples = 0;
    for block in readme.split("```json\n").skip(1) {
        let body = block.split("```").next().unwrap();
        for line in body.lines().filter(|l| l.starts_with('{')) {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("README example is not JSON ({e}): {line}"));
            assert!(
                validators.iter().any(|(_, v)| v.is_valid(&value)),
                "README example valid under no schema: {line}\n{:?}",
                validators
                    .iter()
                    .map(|(n, v)| (n, errors(v, &value)))
                    .collect::<Vec<_>>()
            );
            examples += 1;
        }
    }
    assert!(examples >= 10, "{examples} examples");
}
