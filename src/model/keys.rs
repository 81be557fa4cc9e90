//! Changelog keys of configured entities: written by their configured id, so
//! a checkpoint survives a configuration whose zones or car parks were
//! reordered, and an entity no longer configured is recognised as such.

use super::{Catalog, LotIx, ZoneIx};
use crate::state::KeyFormat;
use std::borrow::Cow;
use std::sync::Arc;

/// Zones by id.
pub struct ZoneKeys(pub Arc<Catalog>);

impl KeyFormat<ZoneIx> for ZoneKeys {
    fn write(&self, key: &ZoneIx) -> Cow<'_, str> {
        Cow::Borrowed(&self.0.zones[*key as usize].id)
    }

    fn read(&self, text: &str) -> Option<ZoneIx> {
        self.0.zone(text)
    }
}

/// Car parks by id.
pub struct LotKeys(pub Arc<Catalog>);

impl KeyFormat<LotIx> for LotKeys {
    fn write(&self, key: &LotIx) -> Cow<'_, str> {
        Cow::Borrowed(&self.0.lots[*key as usize].id)
    }

    fn read(&self, text: &str) -> Option<LotIx> {
        self.0.lot(text)
    }
}
