//! The crowd settings, in milliseconds, ready for arithmetic.

use crate::config::Config;
use crate::time::WindowSpec;

/// The crowd settings in milliseconds, ready for arithmetic.
#[derive(Debug, Clone)]
pub struct CrowdParams {
    pub source_ttl: i64,
    pub half_life: i64,
    pub hysteresis: f64,
    pub min_dwell: i64,
    pub forecast_horizon: i64,
    pub trend_window: i64,
    pub max_sources: usize,
    pub window: WindowSpec,
    pub lateness: i64,
}

impl CrowdParams {
    pub fn from_config(c: &Config) -> Self {
        let cr = &c.crowd;
        let size = cr.window.as_ms();
        CrowdParams {
            source_ttl: cr.source_ttl.as_ms(),
            half_life: cr.ewma_half_life.as_ms(),
            hysteresis: cr.hysteresis,
            min_dwell: cr.min_dwell.as_ms(),
            forecast_horizon: cr.forecast_horizon.as_ms(),
            trend_window: cr.trend_window.as_ms(),
            max_sources: cr.max_sources_per_zone,
            window: WindowSpec::hopping(size, cr.window_advance.map_or(size, |a| a.as_ms())),
            lateness: c.engine.allowed_lateness.as_ms(),
        }
    }
}
