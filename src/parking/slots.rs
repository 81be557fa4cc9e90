//! The space readings of every car park: a changelogged store with one record
//! per space (`slot/{car park}/{space}`), since a car park's 2,000 spaces
//! would make one large record that changes with every reading.

use crate::model::LotIx;
use crate::state::{read, unknown_key, KeyFormat, RestoreError, StateRecord, Store};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `since` of a space first heard taken: when its car came is not known.
pub const UNSEEN_ARRIVAL: i64 = i64::MIN;

fn unseen_arrival() -> i64 {
    UNSEEN_ARRIVAL
}

/// One space's last sensor reading. 24 bytes: the map entry, not this, dominates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotReading {
    pub ts: i64,
    /// When the space last changed between free and taken: a departure's stay
    /// is measured from it (a sensor's heartbeat repeats `ts`, not this).
    #[serde(default = "unseen_arrival")]
    pub since: i64,
    pub occupied: bool,
    /// False once the sensor has been silent longer than `slot_ttl`.
    pub fresh: bool,
}

/// One car park's spaces; a reading set here is logged at the next checkpoint.
#[derive(Debug, Clone, Default)]
pub struct SlotTable {
    /// The reading, and whether it changed since the last checkpoint.
    readings: HashMap<Box<str>, (SlotReading, bool)>,
}

impl SlotTable {
    pub fn get(&self, slot: &str) -> Option<&SlotReading> {
        self.readings.get(slot).map(|(r, _)| r)
    }

    /// The held reading of `slot`, to replace in one lookup.
    pub fn entry(&mut self, slot: &str) -> Option<SlotEntry<'_>> {
        self.readings.get_mut(slot).map(|held| SlotEntry { held })
    }

    pub fn set(&mut self, slot: &str, reading: SlotReading) {
        match self.readings.get_mut(slot) {
            Some(held) => *held = (reading, true),
            None => {
                self.readings.insert(slot.into(), (reading, true));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    pub fn readings(&self) -> impl Iterator<Item = &SlotReading> {
        self.readings.values().map(|(r, _)| r)
    }

    /// Lets `change` alter each reading; those it reports changed are logged.
    pub fn update_each(&mut self, mut change: impl FnMut(&mut SlotReading) -> bool) {
        for (r, changed) in self.readings.values_mut() {
            if change(r) {
                *changed = true;
            }
        }
    }
}

/// A held reading; replacing it logs it.
pub struct SlotEntry<'a> {
    held: &'a mut (SlotReading, bool),
}

impl SlotEntry<'_> {
    pub fn reading(&self) -> SlotReading {
        self.held.0
    }

    pub fn set(self, reading: SlotReading) {
        *self.held = (reading, true);
    }
}

/// The tables of every car park, by car park.
#[derive(Clone)]
pub struct Slots {
    tables: BTreeMap<LotIx, SlotTable>,
    lots: Arc<dyn KeyFormat<LotIx>>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.tables.fmt(f)
    }
}

impl Slots {
    pub fn new(lots: Arc<dyn KeyFormat<LotIx>>) -> Self {
        Slots {
            tables: BTreeMap::new(),
            lots,
        }
    }

    pub fn table(&mut self, lot: LotIx) -> &mut SlotTable {
        self.tables.entry(lot).or_default()
    }
}

impl Store for Slots {
    fn flush(&mut self, key: &str, out: &mut Vec<StateRecord>) {
        for (lot, table) in &mut self.tables {
            let lot_id = self.lots.write(lot);
            for (slot, (reading, changed)) in &mut table.readings {
                if std::mem::take(changed) {
                    out.push(StateRecord::put(format!("{key}/{lot_id}/{slot}"), reading));
                }
            }
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        let (lot_id, slot) = key.split_once('/').ok_or_else(|| unknown_key(key))?;
        // A car park no longer configured: its spaces go with it.
        let Some(lot) = self.lots.read(lot_id) else {
            return Ok(());
        };
        let reading: SlotReading = read(key, value)?;
        let table = self.table(lot);
        table.readings.insert(slot.into(), (reading, false));
        Ok(())
    }
}
