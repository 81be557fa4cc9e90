//! Changelog values larger than one Kafka record may be are written in parts.
//!
//! Some state grows with the input: the crowd readings waiting for the
//! watermark grow with the event rate, a zone's camera table with the number of
//! cameras. Written as one record each, a fast but valid feed made records the
//! broker refused, and every checkpoint failed. Here a value over the part size
//! becomes parts `{key}\0{i}` followed by a head `{key}` whose value says how
//! many there are; all of them go into the checkpoint's one transaction, so a
//! reader sees all parts or none. When a value shrinks or is deleted, the parts
//! it no longer needs are tombstoned, so compaction removes them.

use super::{RestoreError, StateRecord};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// The default part size: a quarter of the broker's default
/// `max.message.bytes` (1 MiB), leaving room for the key and record overhead.
pub const DEFAULT_PART_BYTES: usize = 256 * 1024;

/// A head value starts with this; state values are JSON, which never does.
const HEAD: &[u8] = b"\0parts:";

fn part_key(key: &str, i: u32) -> String {
    format!("{key}\0{i:05}")
}

/// True for a part's key, which readers skip (its head stands for it).
pub fn is_part(key: &str) -> bool {
    key.contains('\0')
}

/// How many parts a head value announces; `None` for an ordinary value.
fn parts_of(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value.strip_prefix(HEAD)?)
        .ok()?
        .parse()
        .ok()
}

/// The writer's side: how many parts each split key has in the changelog now.
#[derive(Debug, Clone, Default)]
pub struct Splitter {
    parts: HashMap<String, u32>,
}

impl Splitter {
    /// Appends `records` to `out`, splitting values over `part_bytes` and
    /// tombstoning parts a key no longer has.
    pub fn split(
        &mut self,
        records: Vec<StateRecord>,
        part_bytes: usize,
        out: &mut Vec<StateRecord>,
    ) {
        let part_bytes = part_bytes.max(1);
        for r in records {
            let old = self.parts.get(&r.key).copied().unwrap_or(0);
            let whole = r.value.as_ref().is_none_or(|v| v.len() <= part_bytes);
            if whole {
                for i in 0..old {
                    out.push(StateRecord::delete(part_key(&r.key, i)));
                }
                if old > 0 {
                    self.parts.remove(&r.key);
                }
                // Nearly every record: passed on as it is, not copied.
                out.push(r);
                continue;
            }
            let value = r.value.as_deref().unwrap_or_default();
            let mut new = 0;
            for chunk in value.chunks(part_bytes) {
                out.push(StateRecord {
                    key: part_key(&r.key, new),
                    value: Some(chunk.to_vec()),
                });
                new += 1;
            }
            for i in new..old {
                out.push(StateRecord::delete(part_key(&r.key, i)));
            }
            let mut head = HEAD.to_vec();
            head.extend_from_slice(new.to_string().as_bytes());
            out.push(StateRecord {
                key: r.key.clone(),
                value: Some(head),
            });
            self.parts.insert(r.key, new);
        }
    }

    /// Remembers a split key read back from the changelog.
    fn remember(&mut self, key: &str, parts: u32) {
        self.parts.insert(key.to_string(), parts);
    }
}

/// A changelog entry read back: key without its prefix, whole value.
pub type Entry<'a> = (&'a str, Cow<'a, [u8]>);

/// The records of one key range (`prefix`) of a changelog read back, with split
/// values joined and parts left out, in key order; `splitter` learns which keys
/// are split. Keys are returned without the prefix.
pub fn joined<'a>(
    records: &'a BTreeMap<String, Vec<u8>>,
    prefix: &str,
    splitter: &mut Splitter,
) -> Result<Vec<Entry<'a>>, RestoreError> {
    let mut out = Vec::new();
    let own = records
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix));
    for (key, value) in own {
        if is_part(key) {
            continue;
        }
        let short = &key[prefix.len()..];
        let Some(n) = parts_of(value) else {
            out.push((short, Cow::Borrowed(value.as_slice())));
            continue;
        };
        let mut whole = Vec::new();
        for i in 0..n {
            let part = records.get(&part_key(key, i)).ok_or_else(|| RestoreError {
                key: key.clone(),
                problem: format!("part {i} of {n} is missing"),
            })?;
            whole.extend_from_slice(part);
        }
        splitter.remember(key, n);
        out.push((short, Cow::Owned(whole)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(log: &mut BTreeMap<String, Vec<u8>>, records: Vec<StateRecord>) {
        for r in records {
            match r.value {
                Some(v) => log.insert(r.key, v),
                None => log.remove(&r.key),
            };
        }
    }

    fn write(s: &mut Splitter, log: &mut BTreeMap<String, Vec<u8>>, key: &str, v: Option<Vec<u8>>) {
        let mut out = Vec::new();
        let r = StateRecord {
            key: key.into(),
            value: v,
        };
        s.split(vec![r], 10, &mut out);
        assert!(out
            .iter()
            .all(|r| r.value.as_ref().is_none_or(|v| v.len() <= 10)));
        compact(log, out);
    }

    #[test]
    fn a_large_value_is_split_and_joined_back() {
        let (mut s, mut log) = (Splitter::default(), BTreeMap::new());
        let big: Vec<u8> = (0..95u8).collect();
        write(&mut s, &mut log, "p/0/pending", Some(big.clone()));
        write(&mut s, &mut log, "p/0/zone/a", Some(b"{}".to_vec()));
        assert_eq!(log.len(), 10 + 1 + 1);
        let mut reader = Splitter::default();
        let back = joined(&log, "p/0/", &mut reader).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], ("pending", Cow::Owned(big)));
        assert_eq!(back[1].0, "zone/a");
        assert_eq!(reader.parts.get("p/0/pending"), Some(&10));
    }

    #[test]
    fn parts_no_longer_needed_are_tombstoned() {
        let (mut s, mut log) = (Splitter::default(), BTreeMap::new());
        write(&mut s, &mut log, "k", Some(vec![1; 50]));
        write(&mut s, &mut log, "k", Some(vec![2; 25]));
        assert_eq!(log.len(), 3 + 1, "three parts and the head");
        write(&mut s, &mut log, "k", Some(vec![3; 5]));
        assert_eq!(log.len(), 1, "whole again: every part deleted");
        write(&mut s, &mut log, "k", Some(vec![4; 30]));
        write(&mut s, &mut log, "k", None);
        assert!(log.is_empty(), "a deleted key takes its parts along");
    }

    #[test]
    fn a_restored_splitter_cleans_up_parts_written_before() {
        let (mut s, mut log) = (Splitter::default(), BTreeMap::new());
        write(&mut s, &mut log, "k", Some(vec![1; 50]));
        let mut restored = Splitter::default();
        joined(&log, "", &mut restored).unwrap();
        write(&mut restored, &mut log, "k", None);
        assert!(log.is_empty());
    }

    #[test]
    fn a_missing_part_is_an_error_not_a_silent_gap() {
        let (mut s, mut log) = (Splitter::default(), BTreeMap::new());
        write(&mut s, &mut log, "k", Some(vec![1; 50]));
        log.remove(&part_key("k", 2));
        let e = joined(&log, "", &mut Splitter::default()).unwrap_err();
        assert!(e.to_string().contains("part 2 of 5"), "{e}");
    }
}
