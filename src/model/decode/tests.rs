//! Decoding: every field checked, every refusal classified.

use super::*;
use crate::config::{load_str, DEFAULT_CONFIG};

fn catalog() -> Catalog {
    Catalog::new(&load_str(DEFAULT_CONFIG, Vec::new()).unwrap())
}

fn reject(topic: InputTopic, text: &str) -> Reject {
    decode(topic, text.as_bytes(), &catalog(), 1 << 20).unwrap_err()
}

#[test]
fn decodes_all_shapes() {
    let c = catalog();
    let d = decode(
        InputTopic::CrowdCounts,
        br#"{"zone":"lakeside-promenade","ts":"2026-10-01T14:03:00.250+08:00","source":"cam-17","people":412}"#,
        &c,
        1 << 20,
    )
    .unwrap();
    assert_eq!(d.ts, 1_790_834_580_250);
    assert!(matches!(
        d.event,
        Some(Event::Crowd(CrowdEvent {
            reading: CrowdReading::Headcount { people: 412 },
            ..
        }))
    ));

    let d = decode(
        InputTopic::CrowdCounts,
        br#"{"zone":"lakeside-promenade","ts":1790834580250,"source":"gate-3","entered":12,"exited":9,"event_id":"e1"}"#,
        &c,
        1 << 20,
    )
    .unwrap();
    assert_eq!(d.dedup_id.as_deref(), Some("e1"));
    assert!(matches!(
        d.event,
        Some(Event::Crowd(CrowdEvent {
            reading: CrowdReading::Line {
                entered: 12,
                exited: 9
            },
            ..
        }))
    ));

    let d = decode(
        InputTopic::ParkingEvents,
        br#"{"lot":"p02-in77-d","ts":1790834580250,"gate":"exit","count":3}"#,
        &c,
        1 << 20,
    )
    .unwrap();
    assert!(matches!(
        d.event,
        Some(Event::Parking(ParkingEvent {
            reading: ParkingReading::Gate {
                entry: false,
                count: 3
            },
            ..
        }))
    ));

    let d = decode(
        InputTopic::Payments,
        br#"{"txn_id":"wx-1","ts":1790834580250,"merchant":"m-1001","amount":"128.50","currency":"CNY","channel":"wechat"}"#,
        &c,
        1 << 20,
    )
    .unwrap();
    assert!(matches!(
        d.event,
        Some(Event::Payment(Payment {
            amount_fen: 12_850,
            ..
        }))
    ));
    let d = decode(
        InputTopic::Payments,
        br#"{"txn_id":"wx-2","ts":1790834580250,"merchant":"m-1001","amount":-0.5}"#,
        &c,
        1 << 20,
    )
    .unwrap();
    assert!(matches!(
        d.event,
        Some(Event::Payment(Payment {
            amount_fen: -50,
            ..
        }))
    ));
}

#[test]
fn classifies_failures_and_names_fields() {
    use InputTopic::*;
    use RejectReason::*;
    let cases: &[(InputTopic, &str, RejectReason, &str)] = &[
        (CrowdCounts, "{\"zone\":", MalformedJson, "JSON"),
        (CrowdCounts, "[1,2]", MalformedJson, "object"),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","source":"c","people":1}"#,
            InvalidField,
            "`ts`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"atlantis","ts":1790834580250,"source":"c","people":1}"#,
            UnknownEntity,
            "atlantis",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":1790834580250,"source":"c","people":-4}"#,
            OutOfRange,
            "`people`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":1790834580250,"source":"c","people":"4"}"#,
            InvalidField,
            "`people`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":1790834580,"source":"c","people":4}"#,
            OutOfRange,
            "`ts`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":"yesterday","source":"c","people":4}"#,
            InvalidField,
            "`ts`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":"2026-10-01T14:03:00","source":"c","people":4}"#,
            InvalidField,
            "`ts`",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","ts":1790834580250,"source":"c","people":4,"entered":1}"#,
            InvalidField,
            "both",
        ),
        (
            CrowdCounts,
            r#"{"zone":"lakeside-promenade","zone":"x","ts":1790834580250,"source":"c","people":4}"#,
            InvalidField,
            "duplicate",
        ),
        (
            ParkingEvents,
            r#"{"lot":"p01-in77-a","ts":1790834580250,"slot":"A1","state":"parked"}"#,
            InvalidField,
            "`state`",
        ),
        (
            ParkingEvents,
            r#"{"lot":"p02-in77-d","ts":1790834580250,"slot":"A1","state":"vacant"}"#,
            InvalidField,
            "gates",
        ),
        (
            ParkingEvents,
            r#"{"lot":"p02-in77-d","ts":1790834580250,"gate":"entry","count":0}"#,
            OutOfRange,
            "`count`",
        ),
        (
            Payments,
            r#"{"txn_id":"t","ts":1790834580250,"merchant":"m-1001","amount":"1.234"}"#,
            InvalidField,
            "`amount`",
        ),
        (
            Payments,
            r#"{"txn_id":"t","ts":1790834580250,"merchant":"m-1001","amount":1e3}"#,
            InvalidField,
            "`amount`",
        ),
        (
            Payments,
            r#"{"txn_id":"t","ts":1790834580250,"merchant":"m-1001","amount":"99999999999"}"#,
            OutOfRange,
            "`amount`",
        ),
        (
            Payments,
            r#"{"txn_id":"t","ts":1790834580250,"merchant":"m-1001","amount":"1","currency":"USD"}"#,
            InvalidField,
            "`currency`",
        ),
        (
            Payments,
            r#"{"txn_id":"t","ts":1790834580250,"merchant":"m-9","amount":"1"}"#,
            UnknownEntity,
            "m-9",
        ),
    ];
    for (topic, text, reason, needle) in cases {
        let r = reject(*topic, text);
        assert_eq!(r.reason, *reason, "{text} → {r}");
        assert!(
            r.error.contains(needle),
            "{text} → {r} should mention {needle}"
        );
    }
}

#[test]
fn oversized_is_refused_unparsed() {
    let big = vec![b'{'; 2048];
    let r = decode(InputTopic::Payments, &big, &catalog(), 1024).unwrap_err();
    assert_eq!(r.reason, RejectReason::TooLarge);
}

/// Whatever the scanner reads, `serde_json` reads the same: for the
/// simulator's messages, and for each of them cut short and with every byte
/// replaced by each character that matters to JSON.
#[test]
fn the_scanner_agrees_with_serde_json_wherever_it_reads() {
    let config = load_str(DEFAULT_CONFIG, Vec::new()).unwrap();
    let opts = crate::sim::SimOptions::default();
    let msgs =
        crate::sim::Simulator::new(&config, opts.clone()).advance_to(opts.start_ms + 120_000);
    let mut texts: Vec<String> = Vec::new();
    for m in msgs.iter().take(40) {
        let t = String::from_utf8(m.payload.clone()).unwrap();
        for cut in 0..t.len() {
            texts.push(t[..cut].to_string());
        }
        for (i, _) in t.char_indices() {
            for c in [
                '"', '\\', '{', '[', ',', ':', ' ', '0', '-', 'e', '.', 'n', '\u{1}', 'x',
            ] {
                let mut v = t.clone();
                v.replace_range(
                    i..i + t[i..].chars().next().unwrap().len_utf8(),
                    &c.to_string(),
                );
                texts.push(v);
            }
        }
        texts.push(format!("{t}{t}"));
        texts.push(t.replace(':', ": ").replace(',', " ,\n"));
        texts.push(t.replacen('{', "{\"ts\":null,", 1));
    }
    let mut read = 0;
    for t in &texts {
        let Some(fields) = scanned(t) else {
            continue;
        };
        read += 1;
        let serde = serde_json::from_str::<SerdeFields<'_>>(t)
            .unwrap_or_else(|e| panic!("the scanner read {t:?}, serde_json refused it: {e}"));
        assert_eq!(fields.texts(), RawFields::from(serde).texts(), "{t:?}");
    }
    assert!(read > 1000, "only {read} of {} read", texts.len());
}
