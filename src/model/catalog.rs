//! The configuration's entities as dense indices, for lookups on the hot path.

use crate::config::area_to_centi;
use crate::config::{Config, Detection, Thresholds};
use crate::time::UtcOffset;
use crate::time::{Calendar, OpeningHours};
use foldhash::{HashMap, HashMapExt};

/// Districts with more than 65,536 zones exist in simulation at least (issue
/// 6's memory benchmark has 100,000); car parks and categories stay far fewer,
/// and `config::validate` refuses more than their index can number.
pub type ZoneIx = u32;
pub type LotIx = u16;
pub type CategoryIx = u16;
pub type DistrictIx = u16;

// The configuration's limits are what these indices can number.
const _: () = assert!(ZoneIx::MAX as usize == crate::config::MAX_ZONES);
const _: () = assert!(LotIx::MAX as usize == crate::config::MAX_LOTS);
const _: () = assert!(CategoryIx::MAX as usize == crate::config::MAX_CATEGORIES);
const _: () = assert!(DistrictIx::MAX as usize == crate::config::MAX_DISTRICTS);

/// A district: the key of its records, its clock and its holidays.
#[derive(Debug, Clone)]
pub struct DistrictInfo {
    pub id: String,
    pub name: String,
    pub utc_offset: UtcOffset,
    /// Weekdays and public holidays, for forecasts.
    pub calendar: Calendar,
}

#[derive(Debug, Clone)]
pub struct ZoneInfo {
    pub id: String,
    pub name: String,
    pub area_m2: f64,
    pub thresholds: Thresholds,
    pub baseline: u32,
    /// `(lat, lon)`, when configured.
    pub position: Option<(f64, f64)>,
    pub district: DistrictIx,
}

#[derive(Debug, Clone)]
pub struct LotInfo {
    pub id: String,
    pub name: String,
    pub spaces: u32,
    pub detection: Detection,
    pub hours: OpeningHours,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub district: DistrictIx,
}

impl LotInfo {
    /// FIWARE `occupancyDetectionType`: known from the configuration, so
    /// present before the first reading.
    pub fn detection_type(&self) -> &'static str {
        match self.detection {
            Detection::SingleSpace => "singleSpaceDetection",
            Detection::Gate => "balancing",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MerchantInfo {
    pub zone: ZoneIx,
    pub category: CategoryIx,
}

/// Ids → indices and the per-entity facts the operators need. Built once from a
/// validated [`Config`]; shared read-only by every partition.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// In configuration order: the first is the default one.
    pub districts: Vec<DistrictInfo>,
    pub zones: Vec<ZoneInfo>,
    pub lots: Vec<LotInfo>,
    pub categories: Vec<String>,
    pub currency: String,
    zone_ix: HashMap<String, ZoneIx>,
    lot_ix: HashMap<String, LotIx>,
    category_ix: HashMap<String, CategoryIx>,
    merchants: HashMap<String, MerchantInfo>,
    /// Selling area in hundredths of m², per zone, and per zone and category.
    zone_area_centi: Vec<u64>,
    zone_category_area_centi: HashMap<(ZoneIx, CategoryIx), u64>,
}

impl Catalog {
    /// Builds the catalog. The config must have passed validation.
    pub fn new(c: &Config) -> Self {
        let districts = districts_of(c);
        let district_ix = |named: Option<&String>| -> DistrictIx {
            let d = c
                .district_of(named.map(String::as_str))
                .expect("validated district");
            districts.iter().position(|x| x.id == d.id).unwrap_or(0) as DistrictIx
        };
        let zones: Vec<ZoneInfo> = c
            .zones
            .iter()
            .map(|z| ZoneInfo {
                id: z.id.clone(),
                name: z.name.clone(),
                area_m2: z.area_m2,
                thresholds: c.thresholds_for(z),
                baseline: z.baseline,
                position: z.lat.zip(z.lon),
                district: district_ix(z.district.as_ref()),
            })
            .collect();
        let lots: Vec<LotInfo> = c
            .lots
            .iter()
            .map(|l| LotInfo {
                id: l.id.clone(),
                name: l.name.clone(),
                spaces: l.spaces,
                detection: l.detection,
                hours: OpeningHours::parse(&l.opening_hours).expect("validated opening hours"),
                lat: l.lat,
                lon: l.lon,
                district: district_ix(l.district.as_ref()),
            })
            .collect();
        let zone_ix: HashMap<String, ZoneIx> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.id.clone(), i as ZoneIx))
            .collect();
        let lot_ix = lots
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.clone(), i as LotIx))
            .collect();
        let category_ix: HashMap<String, CategoryIx> = c
            .payments
            .categories
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as CategoryIx))
            .collect();
        let mut merchants = HashMap::new();
        let mut zone_area_centi = vec![0u64; zones.len()];
        let mut zone_category_area_centi = HashMap::new();
        for m in &c.merchants {
            let zone = zone_ix[&m.zone];
            let category = category_ix[&m.category];
            let area = area_to_centi(m.selling_area_m2).expect("validated area");
            zone_area_centi[zone as usize] += area;
            *zone_category_area_centi
                .entry((zone, category))
                .or_insert(0) += area;
            merchants.insert(m.id.clone(), MerchantInfo { zone, category });
        }
        Catalog {
            districts,
            zones,
            lots,
            categories: c.payments.categories.clone(),
            currency: c.payments.currency.clone(),
            zone_ix,
            lot_ix,
            category_ix,
            merchants,
            zone_area_centi,
            zone_category_area_centi,
        }
    }

    /// A district's index by id.
    pub fn district(&self, id: &str) -> Option<DistrictIx> {
        self.districts
            .iter()
            .position(|d| d.id == id)
            .map(|i| i as DistrictIx)
    }
    /// The district a zone is in.
    pub fn zone_district(&self, zone: ZoneIx) -> &DistrictInfo {
        &self.districts[self.zones[zone as usize].district as usize]
    }
    /// The district a car park is in.
    pub fn lot_district(&self, lot: LotIx) -> &DistrictInfo {
        &self.districts[self.lots[lot as usize].district as usize]
    }
    /// The default district: the first configured.
    pub fn first_district(&self) -> &DistrictInfo {
        &self.districts[0]
    }
    pub fn zone(&self, id: &str) -> Option<ZoneIx> {
        self.zone_ix.get(id).copied()
    }
    pub fn lot(&self, id: &str) -> Option<LotIx> {
        self.lot_ix.get(id).copied()
    }
    pub fn category(&self, id: &str) -> Option<CategoryIx> {
        self.category_ix.get(id).copied()
    }
    pub fn merchant(&self, id: &str) -> Option<MerchantInfo> {
        self.merchants.get(id).copied()
    }
    pub fn zone_selling_area_centi(&self, zone: ZoneIx) -> u64 {
        self.zone_area_centi[zone as usize]
    }
    /// Selling area of a whole district, in hundredths of m².
    pub fn district_selling_area_centi(&self, district: DistrictIx) -> u64 {
        self.zones
            .iter()
            .zip(&self.zone_area_centi)
            .filter(|(z, _)| z.district == district)
            .map(|(_, a)| a)
            .sum()
    }

    pub fn category_selling_area_centi(&self, zone: ZoneIx, category: CategoryIx) -> u64 {
        self.zone_category_area_centi
            .get(&(zone, category))
            .copied()
            .unwrap_or(0)
    }
}

fn districts_of(c: &Config) -> Vec<DistrictInfo> {
    let info = |d: &crate::config::DistrictConfig| {
        let utc_offset = UtcOffset::parse(&d.utc_offset).expect("validated offset");
        DistrictInfo {
            id: d.id.clone(),
            name: d.name.clone(),
            utc_offset,
            calendar: Calendar::new(utc_offset, &d.holidays),
        }
    };
    c.districts().map(info).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_are_exact_hundredths() {
        assert_eq!(area_to_centi(85.5), Some(8_550));
        assert_eq!(area_to_centi(0.01), Some(1));
        assert_eq!(area_to_centi(12.345), None);
        assert_eq!(area_to_centi(-1.0), None);
        assert_eq!(area_to_centi(f64::NAN), None);
    }
}
