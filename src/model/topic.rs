//! The topics the engine consumes: the one list of input streams. Adding a
//! stream adds a variant here, its decoder (`decode`), its operator
//! (`engine::streams`) and its configured name (`config::TopicSettings`).

use crate::config::TopicSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputTopic {
    CrowdCounts,
    ParkingEvents,
    Payments,
    /// Internal: accepted payments re-keyed by zone (see `engine`), so that one
    /// zone's sales meet in one partition whatever merchant sold them.
    PaymentsByZone,
    /// Internal: zone windows and car park figures keyed by district (see
    /// `district`), so that one task sums a district whatever partitions
    /// and instances its zones are spread over.
    DistrictPartials,
}

impl InputTopic {
    /// The topics users produce to.
    pub const ALL: [InputTopic; 3] = [
        InputTopic::CrowdCounts,
        InputTopic::ParkingEvents,
        InputTopic::Payments,
    ];

    /// Every topic the engine consumes: the inputs and the internal
    /// repartition topic. The consumer subscribes to these, `topics create`
    /// creates them, and the engine has one operator per partition of each.
    pub const CONSUMED: [InputTopic; 5] = [
        InputTopic::CrowdCounts,
        InputTopic::ParkingEvents,
        InputTopic::Payments,
        InputTopic::PaymentsByZone,
        InputTopic::DistrictPartials,
    ];

    /// The engine's own repartition topics, which users do not produce to.
    pub fn is_internal(self) -> bool {
        matches!(
            self,
            InputTopic::PaymentsByZone | InputTopic::DistrictPartials
        )
    }

    /// The default topic name (contract §1); configuration may rename topics.
    pub fn default_name(self) -> &'static str {
        match self {
            InputTopic::CrowdCounts => "crowd.counts",
            InputTopic::ParkingEvents => "parking.events",
            InputTopic::Payments => "payments",
            InputTopic::PaymentsByZone => "crowdpark.payments-by-zone",
            InputTopic::DistrictPartials => "crowdpark.partials-by-district",
        }
    }
}

impl InputTopic {
    /// The consumed topic a configured name stands for.
    pub fn named(name: &str, topics: &TopicSettings) -> Option<InputTopic> {
        InputTopic::CONSUMED
            .into_iter()
            .find(|t| t.name_in(topics) == name)
    }

    /// The topic's configured name.
    pub fn name_in(self, topics: &TopicSettings) -> &str {
        use InputTopic::*;
        match self {
            CrowdCounts => &topics.crowd_counts,
            ParkingEvents => &topics.parking_events,
            Payments => &topics.payments,
            PaymentsByZone => &topics.payments_by_zone,
            DistrictPartials => &topics.partials_by_district,
        }
    }
}
