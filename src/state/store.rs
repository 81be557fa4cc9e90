//! Changelogged stores: state whose every write is also a change to log.
//!
//! As Kafka Streams wraps a store in `ChangeLoggingKeyValueBytesStore` (a
//! `put` is the inner put plus `logChange`), an operator here keeps its state
//! in these types, and they, not the operator, remember what changed since
//! the last checkpoint, write its changelog records and read them back. An
//! operator names its stores once ([`Stores`]); their changelog keys are
//! `{partition prefix}{store}` for a single value and
//! `{partition prefix}{store}/{key}` for a keyed one. Each store restores
//! from its own records alone, so a restore does not depend on the order in
//! which keys come back; whatever spans stores is rebuilt after all of them
//! are in (`finish_restore`).

use super::{read, unknown_key, RestoreError, StateRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A store's side of checkpoints and restores.
pub trait Store {
    /// Appends the records of what changed since the last call; `key` is the
    /// store's own changelog key (`{partition prefix}{store}`).
    fn flush(&mut self, key: &str, out: &mut Vec<StateRecord>);
    /// Applies one record read back: `key` is what follows `{store}/`, empty
    /// for a single value.
    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError>;
}

/// An operator's stores by name, in checkpoint order.
pub type Stores<'a> = Vec<(&'static str, &'a mut dyn Store)>;

/// Writes every store's changes, in the order given.
pub fn flush_all(prefix: &str, stores: Stores<'_>, out: &mut Vec<StateRecord>) {
    for (name, store) in stores {
        store.flush(&format!("{prefix}{name}"), out);
    }
}

/// Hands a restored record (key without the partition prefix) to the store it
/// names; a key no store claims is refused, since ignoring state silently
/// would be losing it.
pub fn restore_into(stores: &mut Stores<'_>, key: &str, value: &[u8]) -> Result<(), RestoreError> {
    let (name, rest) = key.split_once('/').unwrap_or((key, ""));
    let (_, store) = stores
        .iter_mut()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| unknown_key(key))?;
    store.restore(rest, value).map_err(|mut e| {
        e.key = key.to_string();
        e
    })
}

/// How a store's keys are spelled in changelog keys. Entities are written by
/// their configured id, not their index, so a reordered configuration still
/// restores; `read` is `None` for an entity no longer configured.
pub trait KeyFormat<K>: Send + Sync {
    fn write(&self, key: &K) -> Cow<'_, str>;
    fn read(&self, text: &str) -> Option<K>;
}

/// How a store's values are written.
pub trait ValueFormat<V>: Send + Sync {
    fn write(&self, value: &V) -> Vec<u8>;
    fn read(&self, value: &[u8]) -> Result<V, RestoreError>;
}

/// Values as their own JSON.
pub struct Json;

impl<V: Serialize + DeserializeOwned> ValueFormat<V> for Json {
    fn write(&self, value: &V) -> Vec<u8> {
        serde_json::to_vec(value).expect("state types serialise")
    }

    fn read(&self, value: &[u8]) -> Result<V, RestoreError> {
        read("", value)
    }
}

/// A map's entries as a JSON list of `[key, value]` pairs, keys spelled by a
/// [`KeyFormat`]; an entry whose key is no longer configured is dropped.
pub struct Pairs<K>(pub Arc<dyn KeyFormat<K>>);

impl<K: Ord, V: Serialize + DeserializeOwned> ValueFormat<BTreeMap<K, V>> for Pairs<K> {
    fn write(&self, value: &BTreeMap<K, V>) -> Vec<u8> {
        let pairs: Vec<(Cow<'_, str>, &V)> =
            value.iter().map(|(k, v)| (self.0.write(k), v)).collect();
        serde_json::to_vec(&pairs).expect("state types serialise")
    }

    fn read(&self, value: &[u8]) -> Result<BTreeMap<K, V>, RestoreError> {
        let pairs: Vec<(String, V)> = read("", value)?;
        Ok(pairs
            .into_iter()
            .filter_map(|(k, v)| Some((self.0.read(&k)?, v)))
            .collect())
    }
}

/// One value, logged whole when it changed.
#[derive(Clone)]
pub struct Cell<V> {
    value: V,
    changed: bool,
    format: Arc<dyn ValueFormat<V>>,
}

impl<V: std::fmt::Debug> std::fmt::Debug for Cell<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<V> Cell<V> {
    pub fn new(value: V, format: Arc<dyn ValueFormat<V>>) -> Self {
        Cell {
            value,
            changed: false,
            format,
        }
    }

    pub fn get(&self) -> &V {
        &self.value
    }

    /// The value, to change: it is logged at the next checkpoint.
    pub fn get_mut(&mut self) -> &mut V {
        self.changed = true;
        &mut self.value
    }
}

impl<V> Store for Cell<V> {
    fn flush(&mut self, key: &str, out: &mut Vec<StateRecord>) {
        if std::mem::take(&mut self.changed) {
            out.push(StateRecord {
                key: key.to_string(),
                value: Some(self.format.write(&self.value)),
            });
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        if !key.is_empty() {
            return Err(unknown_key(key));
        }
        self.value = self.format.read(value)?;
        Ok(())
    }
}

/// A map logged one record per key: a changed key's value. Entries are never removed (zones, car parks and
/// spaces are bounded by the configuration). Reads are free; a write through `get_mut`,
/// `get_or_insert_with`, `iter_mut` or `insert` marks its key.
#[derive(Clone)]
pub struct KeyMap<K: Ord, V> {
    map: BTreeMap<K, V>,
    changed: BTreeSet<K>,
    keys: Arc<dyn KeyFormat<K>>,
    values: Arc<dyn ValueFormat<V>>,
}

impl<K: Ord + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for KeyMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl<K: Ord + Clone, V> KeyMap<K, V> {
    pub fn new(keys: Arc<dyn KeyFormat<K>>, values: Arc<dyn ValueFormat<V>>) -> Self {
        KeyMap {
            map: BTreeMap::new(),
            changed: BTreeSet::new(),
            keys,
            values,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn touch(&mut self, key: &K) {
        if !self.changed.contains(key) {
            self.changed.insert(key.clone());
        }
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.map.contains_key(key) {
            self.touch(key);
        }
        self.map.get_mut(key)
    }

    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.touch(&key);
        self.map.entry(key).or_insert_with(make)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.touch(&key);
        self.map.insert(key, value);
    }

    /// Every entry, to change: all of them are logged at the next checkpoint.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.changed.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }
}

impl<K: Ord + Clone, V> Store for KeyMap<K, V> {
    fn flush(&mut self, key: &str, out: &mut Vec<StateRecord>) {
        for k in std::mem::take(&mut self.changed) {
            if let Some(v) = self.map.get(&k) {
                out.push(StateRecord {
                    key: format!("{key}/{}", self.keys.write(&k)),
                    value: Some(self.values.write(v)),
                });
            }
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        let Some(k) = self.keys.read(key) else {
            tracing::warn!(
                entity = key,
                "checkpointed entity is no longer configured; its state is dropped"
            );
            return Ok(());
        };
        let v = self.values.read(value)?;
        self.map.insert(k, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;

    impl KeyFormat<u8> for Plain {
        fn write(&self, key: &u8) -> Cow<'_, str> {
            Cow::Owned(format!("k{key}"))
        }

        fn read(&self, text: &str) -> Option<u8> {
            text.strip_prefix('k')?.parse().ok().filter(|k| *k < 100)
        }
    }

    fn map() -> KeyMap<u8, u32> {
        KeyMap::new(Arc::new(Plain), Arc::new(Json))
    }

    fn flush(stores: Stores<'_>) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        flush_all("t/0/", stores, &mut out);
        out.into_iter()
            .map(|r| (r.key, r.value.map(|v| String::from_utf8(v).unwrap())))
            .collect()
    }

    #[test]
    fn writes_are_logged_once_each_and_reads_not_at_all() {
        let (mut m, mut c) = (map(), Cell::new(0u32, Arc::new(Json)));
        *m.get_or_insert_with(2, || 0) += 5;
        *m.get_or_insert_with(2, || 0) += 1;
        m.insert(1, 7);
        *c.get_mut() = 9;
        let logged = flush(vec![("m", &mut m), ("c", &mut c)]);
        let expect = [("t/0/m/k1", "7"), ("t/0/m/k2", "6"), ("t/0/c", "9")];
        let expect: Vec<_> = expect
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        assert_eq!(logged, expect);
        assert_eq!(m.get(&2), Some(&6));
        assert!(flush(vec![("m", &mut m), ("c", &mut c)]).is_empty());
        m.iter_mut().for_each(|(_, v)| *v += 1);
        assert_eq!(flush(vec![("m", &mut m)]).len(), 2, "iter_mut logs all");
    }

    #[test]
    fn records_restore_into_their_own_store_in_any_order() {
        let (mut m, mut c) = (map(), Cell::new(0u32, Arc::new(Json)));
        let mut stores: Stores<'_> = vec![("m", &mut m), ("c", &mut c)];
        restore_into(&mut stores, "c", b"4").unwrap();
        restore_into(&mut stores, "m/k3", b"8").unwrap();
        restore_into(&mut stores, "m/k200", b"1").unwrap(); // not configured: dropped
        let unknown = restore_into(&mut stores, "other/k1", b"1").unwrap_err();
        assert_eq!(unknown.key, "other/k1");
        let bad = restore_into(&mut stores, "m/k4", b"x").unwrap_err();
        assert_eq!(bad.key, "m/k4", "{bad}");
        assert!(restore_into(&mut stores, "c/extra", b"1").is_err());
        assert_eq!(
            (m.iter().collect::<Vec<_>>(), *c.get()),
            (vec![(&3, &8)], 4)
        );
        assert!(
            flush(vec![("m", &mut m)]).is_empty(),
            "restored is not changed"
        );
    }
}
