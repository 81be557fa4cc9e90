//! `crowdpark topics acls`: the exact Kafka ACLs `crowdpark run` needs on a
//! cluster with an authorizer, derived from the configuration, so the list in
//! docs/operations.md and what the engine does cannot drift apart (a test grants only
//! these and runs, restarts and restores the engine).

use crate::config::Config;

/// One ACL binding to allow: a resource and the operations on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `topic`, `group` or `transactional-id` (kafka-acls option names).
    pub kind: &'static str,
    pub name: String,
    /// The name is a prefix (kafka-acls `--resource-pattern-type prefixed`).
    pub prefixed: bool,
    pub operations: &'static [&'static str],
    pub why: &'static str,
}

impl Grant {
    /// The `kafka-acls` options for this grant (after `--add`).
    pub fn options(&self, principal: &str) -> String {
        let mut s = format!("--allow-principal {principal}");
        for op in self.operations {
            s.push_str(" --operation ");
            s.push_str(op);
        }
        s.push_str(&format!(" --{} {}", self.kind, self.name));
        if self.prefixed {
            s.push_str(" --resource-pattern-type prefixed");
        }
        s
    }
}

/// Every grant `run` needs. Read and Write imply Describe.
pub fn grants(c: &Config) -> Vec<Grant> {
    let t = &c.topics;
    let topic = |name: &str, operations, why| Grant {
        kind: "topic",
        name: name.to_string(),
        prefixed: false,
        operations,
        why,
    };
    let mut out = Vec::new();
    for input in crate::model::InputTopic::ALL {
        out.push(topic(input.name_in(t), &["Read"], "input"));
    }
    for output in [
        &t.crowd_alerts,
        &t.crowd_density,
        &t.parking_availability,
        &t.payments_stats,
        &t.deadletter,
    ] {
        out.push(topic(output, &["Write"], "output"));
    }
    out.push(topic(
        &t.payments_by_zone,
        &["Read", "Write"],
        "internal: payments forwarded by zone",
    ));
    out.push(topic(
        &t.partials_by_district,
        &["Read", "Write"],
        "internal: zone windows and car parks forwarded by district",
    ));
    out.push(topic(
        &t.view,
        &["Read", "Write"],
        "internal: the shared view every instance's API answers from",
    ));
    out.push(topic(
        &t.state,
        &["Read", "Write", "DescribeConfigs"],
        "internal: state changelog (read at restore; max.message.bytes read at start)",
    ));
    let group = |name: String, why| Grant {
        kind: "group",
        name,
        prefixed: false,
        operations: &["Read"],
        why,
    };
    out.push(group(c.kafka.group_id.clone(), "the consumer group"));
    out.push(group(
        format!("{}-restore", c.kafka.group_id),
        "the state restore and shared-view readers (assign only)",
    ));
    // Both guarantees checkpoint in a transaction (state and offsets together),
    // so both need the transactional id. Without an instance id it is
    // `<group_id>-<host>`: grant the prefix, so every host of the group is covered.
    let explicit = !c.kafka.instance_id.trim().is_empty();
    out.push(Grant {
        kind: "transactional-id",
        name: if explicit {
            c.kafka.transactional_id()
        } else {
            format!("{}-", c.kafka.group_id)
        },
        prefixed: !explicit,
        operations: &["Write"],
        why: "the transactional producer of checkpoints",
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProcessingGuarantee;

    #[test]
    fn the_transactional_id_follows_the_instance_id() {
        let mut c = crate::config::load_str(
            crate::config::DEFAULT_CONFIG,
            std::iter::empty::<(String, String)>(),
        )
        .unwrap();
        assert_eq!(grants(&c).len(), 15);
        c.kafka.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
        let eos = grants(&c);
        let grant = eos.last().unwrap();
        assert_eq!(
            grant.options("User:crowdpark"),
            "--allow-principal User:crowdpark --operation Write --transactional-id crowdpark- --resource-pattern-type prefixed"
        );
        c.kafka.instance_id = "hubin-1".into();
        let grant = grants(&c).pop().unwrap();
        assert_eq!(grant.name, "hubin-1");
        assert!(!grant.prefixed);
        assert_eq!(
            eos[0].options("User:crowdpark"),
            "--allow-principal User:crowdpark --operation Read --topic crowd.counts"
        );
    }
}
