//! Input keys must name the entity a message is about.

use crate::model::{Catalog, Decoded, Reject, RejectReason, StreamEvent};

/// Refuses a message not keyed by the entity it is about. All of an
/// entity's state lives in the partition its key hashes to; a message keyed
/// otherwise (or not at all) lands elsewhere and would start a second,
/// partial state there (a red alert from half the cameras, a car park with
/// more spaces than it has). Re-routing it would hide the producer's bug,
/// and the message would still be out of order with the entity's others.
pub(crate) fn check_key<E: StreamEvent>(
    c: &Catalog,
    key: Option<&[u8]>,
    d: &Decoded<'_, E>,
) -> Result<(), Reject> {
    let Some((what, entity)) = d
        .event
        .as_ref()
        .and_then(|e| e.entity(c, d.merchant.as_deref()))
    else {
        return Ok(());
    };
    match key {
        Some(k) if k == entity.as_bytes() => Ok(()),
        Some(k) => {
            let shown: String = String::from_utf8_lossy(k).chars().take(200).collect();
            Err(Reject::new(
                RejectReason::KeyMismatch,
                format!("message is keyed `{shown}` but is about {what} `{entity}`; key every message by its {what}"),
            ))
        }
        None => Err(Reject::new(
            RejectReason::KeyMismatch,
            format!("message has no key; key it by its {what} (`{entity}`)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, DEFAULT_CONFIG};
    use crate::model::{decode, InputTopic};

    fn check(topic: InputTopic, key: Option<&[u8]>, payload: &str) -> Result<(), Reject> {
        let config = load_str(DEFAULT_CONFIG, Vec::new()).unwrap();
        let catalog = Catalog::new(&config);
        let d = decode(topic, payload.as_bytes(), &catalog, 1 << 20).unwrap();
        check_key(&catalog, key, &d)
    }

    #[test]
    fn each_topic_is_keyed_by_its_entity() {
        let crowd = r#"{"zone":"lakeside-promenade","ts":1790834400000,"source":"c","people":1}"#;
        let sale = r#"{"txn_id":"t","ts":1790834400000,"merchant":"m-1001","amount":"1.00"}"#;
        assert!(check(InputTopic::CrowdCounts, Some(b"lakeside-promenade"), crowd).is_ok());
        assert!(check(InputTopic::Payments, Some(b"m-1001"), sale).is_ok());
        let wrong = check(InputTopic::CrowdCounts, Some(b"east-pier-queue"), crowd).unwrap_err();
        assert_eq!(wrong.reason, RejectReason::KeyMismatch);
        assert!(
            wrong.error.contains("zone `lakeside-promenade`"),
            "{}",
            wrong.error
        );
        let keyless = check(InputTopic::Payments, None, sale).unwrap_err();
        assert_eq!(keyless.reason, RejectReason::KeyMismatch);
        assert!(keyless.error.contains("no key"), "{}", keyless.error);
    }
}
