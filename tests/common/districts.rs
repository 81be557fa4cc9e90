//! Two districts in one configuration: the model district, with its last
//! four zones and car parks moved to a second district, Wulin.

use crowdpark::config::{load_str, Config, DistrictConfig, DEFAULT_CONFIG};
use std::path::PathBuf;

/// The second district's id.
pub const WULIN: &str = "wulin";

/// The embedded configuration split into `hubin` and `wulin`.
pub fn two_districts() -> Config {
    let mut c = load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap();
    let hubin = c
        .district
        .take()
        .expect("the embedded config has one district");
    let wulin = DistrictConfig {
        id: WULIN.into(),
        name: "Wulin square business district, Hangzhou".into(),
        ..hubin.clone()
    };
    let zones = c.zones.len();
    for (i, z) in c.zones.iter_mut().enumerate() {
        let id = if i + 4 >= zones { WULIN } else { &hubin.id };
        z.district = Some(id.to_string());
    }
    let lots = c.lots.len();
    for (i, l) in c.lots.iter_mut().enumerate() {
        let id = if i + 4 >= lots { WULIN } else { &hubin.id };
        l.district = Some(id.to_string());
    }
    c.districts = vec![hubin, wulin];
    c
}

/// [`two_districts`] as a TOML file (read back to check it is valid).
pub fn two_districts_file(name: &str) -> PathBuf {
    let text = toml::to_string(&two_districts()).unwrap();
    load_str(&text, Vec::<(String, String)>::new()).expect("a valid configuration");
    let path = std::env::temp_dir().join(format!("crowdpark-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}
