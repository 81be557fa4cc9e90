//! Fuzz-style tests: whatever bytes arrive, decoding and the whole engine neither
//! panic nor lose a message: each one is accepted, a duplicate, or rejected with
//! exactly one dead letter carrying a reason and a sentence.

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::Disposition;
use crowdpark::model::{decode, Catalog, InputTopic};
use crowdpark::output::Output;
use crowdpark::testing::{TestDriver, T0};
use proptest::prelude::*;
use std::sync::OnceLock;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::new(&load_str(DEFAULT_CONFIG, Vec::new()).unwrap()))
}

const VALID: &[(InputTopic, &str)] = &[
    (
        InputTopic::CrowdCounts,
        r#"{"zone":"lakeside-promenade","ts":"2026-10-01T14:03:00.250+08:00","source":"cam-17","people":412}"#,
    ),
    (
        InputTopic::CrowdCounts,
        r#"{"zone":"longxiang-bridge-exit","ts":1790834580250,"source":"gate-3","entered":12,"exited":9,"event_id":"g3-1"}"#,
    ),
    (
        InputTopic::ParkingEvents,
        r#"{"lot":"p03-hubin88","ts":"2026-10-01T14:03:00+08:00","slot":"B2-117","state":"occupied"}"#,
    ),
    (
        InputTopic::ParkingEvents,
        r#"{"lot":"p02-in77-d","ts":1790834580250,"gate":"entry","count":2}"#,
    ),
    (
        InputTopic::Payments,
        r#"{"txn_id":"wx-20261001-000123","ts":"2026-10-01T14:03:00+08:00","merchant":"m-1029","amount":"128.50","currency":"CNY","channel":"wechat"}"#,
    ),
    (
        InputTopic::Payments,
        r#"{"txn_id":"ali-9","ts":1790834580250,"merchant":"m-9999","zone":"in77-atrium","category":"food","amount":-12.5}"#,
    ),
];

fn topic() -> impl Strategy<Value = InputTopic> {
    prop_oneof![
        Just(InputTopic::CrowdCounts),
        Just(InputTopic::ParkingEvents),
        Just(InputTopic::Payments)
    ]
}

/// A valid message with random byte-level damage: flips, insertions, deletions,
/// truncation.
fn mutated() -> impl Strategy<Value = (InputTopic, Vec<u8>)> {
    (
        0..VALID.len(),
        prop::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<u8>()), 1..8),
    )
        .prop_map(|(i, edits)| {
            let (topic, text) = VALID[i];
            let mut bytes = text.as_bytes().to_vec();
            for (kind, at, byte) in edits {
                if bytes.is_empty() {
                    break;
                }
                let pos = at.index(bytes.len());
                match kind {
                    0 => bytes[pos] = byte,
                    1 => bytes.insert(pos, byte),
                    2 => {
                        bytes.remove(pos);
                    }
                    _ => bytes.truncate(pos),
                }
            }
            (topic, bytes)
        })
}

/// JSON objects over the real field names with values of any type.
fn json_like() -> impl Strategy<Value = (InputTopic, Vec<u8>)> {
    let names = prop::sample::select(vec![
        "zone", "ts", "source", "people", "entered", "exited", "event_id", "lot", "slot", "state",
        "gate", "count", "txn_id", "merchant", "amount", "currency", "category", "channel",
        "extra",
    ]);
    let values = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[a-z0-9\\-\\.:+T ]{0,30}".prop_map(|s| format!("{s:?}")),
        Just("\"lakeside-promenade\"".to_string()),
        Just("\"p03-hubin88\"".to_string()),
        Just("\"m-1029\"".to_string()),
        Just("1790834580250".to_string()),
        Just("\"2026-10-01T14:03:00+08:00\"".to_string()),
        Just("{\"nested\":[1,2,{}]}".to_string()),
        Just("\"\\u00e9\\n\\\"\"".to_string()),
        Just("1e400".to_string()),
    ];
    (topic(), prop::collection::vec((names, values), 0..12)).prop_map(|(t, fields)| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        (t, format!("{{{}}}", body.join(",")).into_bytes())
    })
}

fn check_decode(topic: InputTopic, bytes: &[u8]) {
    match decode(topic, bytes, catalog(), 1 << 20) {
        Ok(_) => {}
        Err(r) => assert!(!r.error.is_empty(), "a rejection must say why"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(t in topic(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decode(t, &bytes);
    }

    #[test]
    fn mutated_messages_never_panic((t, bytes) in mutated()) {
        check_decode(t, &bytes);
    }

    #[test]
    fn json_with_wrong_types_never_panics((t, bytes) in json_like()) {
        check_decode(t, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A batch of damaged and valid messages through the whole engine: every one
    /// is accounted for, and each rejection has exactly one dead letter.
    #[test]
    fn engine_accounts_for_every_damaged_message(batch in prop::collection::vec(prop_oneof![mutated(), json_like()], 1..200)) {
        let mut driver = TestDriver::new();
        driver.set_now(T0 + 180_000);
        let mut rejected = 0;
        for (topic, bytes) in &batch {
            let d = driver.send_to(*topic, 0, Some(b"k"), bytes);
            let dead = driver.take().iter().filter(|o| matches!(o, Output::DeadLetter(_))).count();
            if let Disposition::Rejected(_) = d {
                rejected += 1;
                prop_assert_eq!(dead, 1);
            } else {
                prop_assert_eq!(dead, 0);
            }
        }
        driver.tick_at(T0 + 180_000 + 3_600_000);
        let dead = driver.take().iter().filter(|o| matches!(o, Output::DeadLetter(_))).count();
        prop_assert_eq!(dead, 0, "no dead letter but for a rejected message ({} rejected)", rejected);
    }
}

#[test]
fn oversized_messages_are_dead_lettered_with_a_cut_payload() {
    let mut driver = TestDriver::new();
    let big = vec![b'x'; 2 << 20];
    let d = driver.send_to(InputTopic::Payments, 1, None, &big);
    let out = driver.take();
    assert_eq!(
        d,
        Disposition::Rejected(crowdpark::model::RejectReason::TooLarge)
    );
    let Output::DeadLetter(dl) = &out[0] else {
        panic!("expected a dead letter")
    };
    assert_eq!(dl.payload.len(), 64 * 1024);
    assert_eq!((dl.partition, dl.offset), (1, 0));
    assert!(dl.error.contains("bytes"));
}
