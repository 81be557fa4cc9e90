//! Rules a well-typed configuration must still obey.

use super::{Config, ConfigError, Thresholds};
use crate::time::{OpeningHours, UtcOffset};
use std::collections::HashSet;

pub fn validate(c: &Config) -> Result<(), ConfigError> {
    district(c)?;
    limits(c)?;
    engine(c)?;
    crowd(c)?;
    parking(c)?;
    payments(c)?;
    http(c)?;
    topics(c)?;
    zones(c)?;
    lots(c)?;
    merchants(c)?;
    kafka(c)
}

fn err(key: String, problem: String) -> Result<(), ConfigError> {
    Err(ConfigError::new(key, problem))
}

/// The districts: one `[district]` or `[[districts]]`, each with an id,
/// a clock and holidays.
fn district(c: &Config) -> Result<(), ConfigError> {
    let keys: Vec<String> = match (&c.district, c.districts.len()) {
        (Some(_), 0) => vec!["district".into()],
        (None, 0) => {
            return err(
                "district".into(),
                "missing: give [district], or [[districts]] for several".into(),
            )
        }
        (None, n) => (0..n).map(|i| format!("districts[{i}]")).collect(),
        (Some(_), _) => {
            return err(
                "districts".into(),
                "give [district] for one district or [[districts]] for several, not both".into(),
            )
        }
    };
    if keys.len() > MAX_DISTRICTS {
        return err(
            "districts".into(),
            format!(
                "{} entries; at most {MAX_DISTRICTS} are supported",
                keys.len()
            ),
        );
    }
    unique("districts", c.districts().map(|d| d.id.as_str()))?;
    for (d, key) in c.districts().zip(keys) {
        if d.id.trim().is_empty() {
            return err(format!("{key}.id"), "must not be empty".into());
        }
        if let Err(e) = UtcOffset::parse(&d.utc_offset) {
            return err(format!("{key}.utc_offset"), e);
        }
        for (i, day) in d.holidays.iter().enumerate() {
            if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
                return err(
                    format!("{key}.holidays[{i}]"),
                    format!("`{day}` is not a YYYY-MM-DD date"),
                );
            }
        }
    }
    Ok(())
}

/// A zone's or car park's `district`: one configured, and given whenever
/// there are several.
fn check_district(c: &Config, key: &str, named: Option<&str>) -> Result<(), ConfigError> {
    let ids: Vec<&str> = c.districts().map(|d| d.id.as_str()).collect();
    match named {
        Some(id) if !ids.contains(&id) => err(
            format!("{key}.district"),
            format!("`{id}` is not a configured district ({})", ids.join(", ")),
        ),
        None if ids.len() > 1 => err(
            format!("{key}.district"),
            format!(
                "required when there are several districts ({})",
                ids.join(", ")
            ),
        ),
        _ => Ok(()),
    }
}

/// Entities are numbered by compact indices; more would wrap around and
/// mix two of them up.
fn limits(c: &Config) -> Result<(), ConfigError> {
    for (key, n, max) in [
        ("zones", c.zones.len(), MAX_ZONES),
        ("lots", c.lots.len(), MAX_LOTS),
        (
            "payments.categories",
            c.payments.categories.len(),
            MAX_CATEGORIES,
        ),
    ] {
        if n > max {
            return err(
                key.into(),
                format!("{n} entries; at most {max} are supported"),
            );
        }
    }
    Ok(())
}

/// Event time and dedup.
fn engine(c: &Config) -> Result<(), ConfigError> {
    let e = &c.engine;
    if e.dedup_horizon <= crate::config::Millis(e.max_out_of_orderness.0 + e.allowed_lateness.0) {
        return err(
            "engine.dedup_horizon".into(),
            format!(
                "must be longer than max_out_of_orderness + allowed_lateness ({} + {}), or a late \
                 duplicate could slip past the dedup set",
                e.max_out_of_orderness, e.allowed_lateness
            ),
        );
    }
    if e.max_message_bytes == 0 {
        return err(
            "engine.max_message_bytes".into(),
            "must be at least 1".into(),
        );
    }
    if e.idle_timeout.0 == 0 {
        return err(
            "engine.idle_timeout".into(),
            "must be longer than 0s".into(),
        );
    }
    if e.dedup_max_ids == 0 {
        return err("engine.dedup_max_ids".into(), "must be at least 1".into());
    }
    if let Some(n) = e.workers {
        if !(1..=crate::config::MAX_WORKERS).contains(&n) {
            return err(
                "engine.workers".into(),
                format!("is {n}; must be 1 to {}", crate::config::MAX_WORKERS),
            );
        }
    }
    snapshots(e)
}

/// Local snapshots: refreshed well within their age limit, and that limit
/// under the broker's default tombstone retention.
fn snapshots(e: &crate::config::EngineSettings) -> Result<(), ConfigError> {
    if e.snapshot_interval.0 < 0 {
        return err(
            "engine.snapshot_interval".into(),
            "must be 0s (off) or longer".into(),
        );
    }
    if e.snapshot_interval.0 > 0 && e.snapshot_max_age.0 < 4 * e.snapshot_interval.0 {
        return err(
            "engine.snapshot_max_age".into(),
            format!(
                "must be at least 4 × engine.snapshot_interval ({}): a snapshot is renewed at half its age limit",
                e.snapshot_interval
            ),
        );
    }
    if e.snapshot_max_age.0 >= 24 * 3600 * 1000 {
        return err(
            "engine.snapshot_max_age".into(),
            "must be under 24h, the changelog's delete.retention.ms: tombstones older than that may be gone, and a snapshot older than them would bring deleted state back".into(),
        );
    }
    Ok(())
}

/// Crowd levels, smoothing and forecasts.
fn crowd(c: &Config) -> Result<(), ConfigError> {
    let cr = &c.crowd;
    if cr.max_sources_per_zone == 0 {
        return err(
            "crowd.max_sources_per_zone".into(),
            "must be at least 1".into(),
        );
    }
    if !(cr.hysteresis > 0.0 && cr.hysteresis <= 1.0) {
        return err(
            "crowd.hysteresis".into(),
            format!("{} is not in (0, 1]", cr.hysteresis),
        );
    }
    check_thresholds("crowd.thresholds", &cr.thresholds)?;
    check_window("crowd", cr.window.0, cr.window_advance.map(|m| m.0))?;
    for (key, v) in [
        ("crowd.ewma_half_life", cr.ewma_half_life),
        ("crowd.source_ttl", cr.source_ttl),
        ("crowd.trend_window", cr.trend_window),
        ("crowd.forecast_horizon", cr.forecast_horizon),
    ] {
        if v.0 <= 0 {
            return err(key.into(), "must be longer than 0s".into());
        }
    }
    Ok(())
}

/// Car park publication.
fn parking(c: &Config) -> Result<(), ConfigError> {
    let p = &c.parking;
    if !(p.almost_full > 0.0 && p.almost_full <= 1.0) {
        return err(
            "parking.almost_full".into(),
            format!("{} is not in (0, 1]", p.almost_full),
        );
    }
    if p.heartbeat.0 <= 0 || p.min_emit_interval > p.heartbeat {
        return err(
            "parking.heartbeat".into(),
            "must be positive and at least parking.min_emit_interval".into(),
        );
    }
    if p.slot_ttl.0 <= 0 {
        return err("parking.slot_ttl".into(), "must be longer than 0s".into());
    }
    Ok(())
}

/// Currency, windows, categories.
fn payments(c: &Config) -> Result<(), ConfigError> {
    let pay = &c.payments;
    if pay.currency.len() != 3 || !pay.currency.chars().all(|ch| ch.is_ascii_uppercase()) {
        return err(
            "payments.currency".into(),
            format!("`{}` is not an ISO 4217 code", pay.currency),
        );
    }
    check_window("payments", pay.window.0, pay.window_advance.map(|m| m.0))?;
    unique(
        "payments.categories",
        pay.categories.iter().map(String::as_str),
    )?;
    Ok(())
}

/// The HTTP API.
fn http(c: &Config) -> Result<(), ConfigError> {
    if c.http.listen.parse::<std::net::SocketAddr>().is_err() {
        return err(
            "http.listen".into(),
            format!("`{}` is not an address like 127.0.0.1:9898", c.http.listen),
        );
    }
    if c.http.max_connections < 2 || c.http.header_timeout.0 == 0 {
        return err(
            "http".into(),
            "max_connections must be at least 2 and header_timeout above zero".into(),
        );
    }
    if c.http.tls_cert_file.is_some() != c.http.tls_key_file.is_some() {
        return err(
            "http".into(),
            "tls_cert_file and tls_key_file go together: set both or neither".into(),
        );
    }
    for (user, hash) in &c.http.basic_auth_users {
        // bcrypt: `$2b$` (or 2a, 2y), the cost, then 53 characters.
        let bcrypt =
            hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
        if !bcrypt {
            return err(
                format!("http.basic_auth_users.{user}"),
                "must be a bcrypt hash (`$2b$...`, 60 characters; e.g. `htpasswd -nbBC 10 USER PASSWORD`); the value is not shown".into(),
            );
        }
    }
    Ok(())
}

/// Topic layout.
fn topics(c: &Config) -> Result<(), ConfigError> {
    if c.topics.input_partitions < 1
        || c.topics.output_partitions < 1
        || c.topics.replication_factor < 1
    {
        return err(
            "topics".into(),
            "partition counts and replication_factor must be at least 1".into(),
        );
    }
    let (rf, isr) = (c.topics.replication_factor, c.topics.min_insync_replicas);
    if isr < 1 || isr > rf {
        return err(
            "topics.min_insync_replicas".into(),
            format!("must be between 1 and topics.replication_factor ({rf}), not {isr}"),
        );
    }
    Ok(())
}

/// Zones: unique ids, areas, thresholds.
fn zones(c: &Config) -> Result<(), ConfigError> {
    if c.zones.is_empty() {
        return err("zones".into(), "at least one zone is needed".into());
    }
    unique("zones", c.zones.iter().map(|z| z.id.as_str()))?;
    for (i, z) in c.zones.iter().enumerate() {
        if !(z.area_m2.is_finite() && z.area_m2 > 0.0) {
            return err(
                format!("zones[{i}].area_m2"),
                format!("{} is not a positive area", z.area_m2),
            );
        }
        if let Some(t) = &z.thresholds {
            check_thresholds(&format!("zones[{i}].thresholds"), t)?;
        }
        check_position(&format!("zones[{i}]"), z.lat, z.lon)?;
        check_district(c, &format!("zones[{i}]"), z.district.as_deref())?;
    }
    Ok(())
}

/// Car parks: unique ids, spaces, hours, position.
fn lots(c: &Config) -> Result<(), ConfigError> {
    unique("lots", c.lots.iter().map(|l| l.id.as_str()))?;
    for (i, l) in c.lots.iter().enumerate() {
        if l.spaces == 0 {
            return err(
                format!("lots[{i}].spaces"),
                "a car park needs at least one space".into(),
            );
        }
        if let Err(e) = OpeningHours::parse(&l.opening_hours) {
            return err(format!("lots[{i}].opening_hours"), e);
        }
        check_position(&format!("lots[{i}]"), l.lat, l.lon)?;
        check_district(c, &format!("lots[{i}]"), l.district.as_deref())?;
    }
    // District records share the output topics with zone and car park
    // records, keyed by id: one id for two things would mix them up.
    for d in c.districts() {
        let zone = c.zones.iter().any(|z| z.id == d.id);
        if zone || c.lots.iter().any(|l| l.id == d.id) {
            let what = if zone { "zone" } else { "car park" };
            return err(
                "districts".into(),
                format!(
                    "`{}` is both a district's and a {what}'s id; output records are keyed by it",
                    d.id
                ),
            );
        }
    }
    Ok(())
}

/// Merchants: unique ids, known zone and category, exact areas.
fn merchants(c: &Config) -> Result<(), ConfigError> {
    unique("merchants", c.merchants.iter().map(|m| m.id.as_str()))?;
    let zones: HashSet<&str> = c.zones.iter().map(|z| z.id.as_str()).collect();
    let cats: HashSet<&str> = c.payments.categories.iter().map(String::as_str).collect();
    for (i, m) in c.merchants.iter().enumerate() {
        if !zones.contains(m.zone.as_str()) {
            return err(
                format!("merchants[{i}].zone"),
                format!("`{}` is not a configured zone", m.zone),
            );
        }
        if !cats.contains(m.category.as_str()) {
            return err(
                format!("merchants[{i}].category"),
                format!("`{}` is not in payments.categories", m.category),
            );
        }
        if area_to_centi(m.selling_area_m2).is_none() {
            return err(
                format!("merchants[{i}].selling_area_m2"),
                format!(
                    "{} is not a non-negative area with at most two decimals",
                    m.selling_area_m2
                ),
            );
        }
    }
    Ok(())
}

/// Kafka client behaviour.
fn kafka(c: &Config) -> Result<(), ConfigError> {
    let k = &c.kafka;
    if k.commit_interval.0 <= 0 {
        return err("kafka.commit_interval".into(), "must be positive".into());
    }
    if k.unhealthy_after.0 <= 0 {
        return err("kafka.unhealthy_after".into(), "must be positive".into());
    }
    if k.max_buffered_mb == 0 || k.max_buffered_mb > 2048 {
        return err(
            "kafka.max_buffered_mb".into(),
            format!("{} is not between 1 and 2048", k.max_buffered_mb),
        );
    }
    Ok(())
}

/// A position is both coordinates or neither, each within its range.
fn check_position(key: &str, lat: Option<f64>, lon: Option<f64>) -> Result<(), ConfigError> {
    if lat.is_some() != lon.is_some() {
        return err(
            key.into(),
            "lat and lon go together: set both or neither".into(),
        );
    }
    if lat.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return err(format!("{key}.lat"), "must be within -90..90".into());
    }
    if lon.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return err(format!("{key}.lon"), "must be within -180..180".into());
    }
    Ok(())
}

fn check_thresholds(key: &str, t: &Thresholds) -> Result<(), ConfigError> {
    if !(t.yellow.is_finite() && t.red.is_finite() && t.yellow > 0.0 && t.yellow < t.red) {
        return Err(ConfigError::new(
            key,
            format!(
                "need 0 < yellow < red, got yellow {} and red {}",
                t.yellow, t.red
            ),
        ));
    }
    Ok(())
}

fn check_window(section: &str, size: i64, advance: Option<i64>) -> Result<(), ConfigError> {
    if size <= 0 {
        return Err(ConfigError::new(
            format!("{section}.window"),
            "must be longer than 0s",
        ));
    }
    if let Some(a) = advance {
        if a <= 0 || a > size || size % a != 0 {
            return Err(ConfigError::new(
                format!("{section}.window_advance"),
                "must be positive, at most the window and divide it evenly",
            ));
        }
    }
    Ok(())
}

fn unique<'a>(key: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if id.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{key}[{i}]"),
                "id must not be empty",
            ));
        }
        if !seen.insert(id) {
            return Err(ConfigError::new(
                format!("{key}[{i}]"),
                format!("`{id}` appears twice"),
            ));
        }
    }
    Ok(())
}

/// How many zones, car parks and payment categories a district may have: what
/// the engine's compact indices (`model::ZoneIx` and kin) can number.
pub const MAX_ZONES: usize = u32::MAX as usize;
pub const MAX_LOTS: usize = u16::MAX as usize;
pub const MAX_CATEGORIES: usize = u16::MAX as usize;
pub const MAX_DISTRICTS: usize = u16::MAX as usize;

/// m² with at most two decimals → hundredths of m², exactly; `None` otherwise.
/// Areas divide money (sales per m²), so they are kept as integers too.
pub fn area_to_centi(m2: f64) -> Option<u64> {
    if !m2.is_finite() || !(0.0..=1e12).contains(&m2) {
        return None;
    }
    let centi = (m2 * 100.0).round();
    ((m2 * 100.0 - centi).abs() < 1e-6).then_some(centi as u64)
}
