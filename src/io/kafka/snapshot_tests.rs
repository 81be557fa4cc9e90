use super::*;

/// A directory of its own per test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("crowdpark-snapshot-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }

    fn snapshots(&self, partitions: i32) -> SnapshotDir {
        SnapshotDir::new(self.0.clone(), "app.state", partitions)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn records(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn write(s: &SnapshotDir, partition: i32, offset: i64, r: &BTreeMap<String, Vec<u8>>) {
    let header = s.header(partition, offset);
    s.write(&header, r.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .unwrap();
}

#[test]
fn a_snapshot_reads_back_as_written() {
    let dir = Dir::new("roundtrip");
    let s = dir.snapshots(3);
    assert_eq!(s.read(1).unwrap(), None, "none yet");
    let r = records(&[
        ("crowd/1/meta", "{}"),
        ("crowd/1/zone/a", "[1,2]"),
        ("x\0 00001", ""),
    ]);
    write(&s, 1, 42, &r);
    let back = s.read(1).unwrap().unwrap();
    assert_eq!(back.records, r);
    assert_eq!((back.header.offset, back.header.partition), (42, 1));
    assert_eq!(s.read_header(1).unwrap().unwrap().offset, 42);
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn a_merge_applies_the_tail_in_key_order() {
    let dir = Dir::new("merge");
    let s = dir.snapshots(3);
    let base = records(&[("a", "1"), ("c", "3"), ("e", "5"), ("g", "7")]);
    write(&s, 0, 10, &base);
    let tail: BTreeMap<String, Option<Vec<u8>>> = [
        ("0", Some("new first")),
        ("c", None),         // deleted
        ("d", Some("4")),    // new, between two old keys
        ("e", Some("5'")),   // replaced
        ("z", Some("last")), // new, after the last
        ("zz", None),        // a tombstone for a key never seen
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
    .collect();
    s.merge(10, &s.header(0, 20), &tail).unwrap();
    let mut expect = base.clone();
    for (k, v) in &tail {
        match v {
            Some(v) => expect.insert(k.clone(), v.clone()),
            None => expect.remove(k),
        };
    }
    let back = s.read(0).unwrap().unwrap();
    assert_eq!(back.records, expect);
    assert_eq!(back.header.offset, 20);
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused() {
    let dir = Dir::new("damaged");
    let s = dir.snapshots(3);
    let r = records(&[("k1", "some value"), ("k2", "another value")]);
    write(&s, 2, 7, &r);
    let path = s.path(2);
    let good = std::fs::read(&path).unwrap();

    // One bit flipped in a value.
    let mut flipped = good.clone();
    let at = flipped.len() - 30;
    flipped[at] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let e = s.read(2).unwrap_err().to_string();
    assert!(
        e.contains("damaged") || e.contains("not UTF-8") || e.contains("tag"),
        "{e}"
    );

    // Cut short.
    std::fs::write(&path, &good[..good.len() - 5]).unwrap();
    assert!(s.read(2).unwrap_err().to_string().contains("truncated"));

    // Not a snapshot at all.
    std::fs::write(&path, b"{\"hello\": 1}").unwrap();
    assert!(s.read(2).is_err());

    // Written under another partition count.
    std::fs::write(&path, &good).unwrap();
    let e = dir.snapshots(6).read(2).unwrap_err().to_string();
    assert!(e.contains("under 3 partitions"), "{e}");
    assert_eq!(
        s.read(2).unwrap().unwrap().records,
        r,
        "the good file reads"
    );
}

#[test]
fn a_merge_over_a_damaged_snapshot_fails_and_keeps_no_half_file() {
    let dir = Dir::new("merge-damaged");
    let s = dir.snapshots(3);
    write(&s, 0, 5, &records(&[("a", "1"), ("b", "2")]));
    let path = s.path(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the checksum itself
    std::fs::write(&path, &bytes).unwrap();
    let tail = BTreeMap::from([("c".to_string(), Some(b"3".to_vec()))]);
    assert!(s.merge(5, &s.header(0, 9), &tail).is_err());
    let files: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(files.len(), 1, "the temporary file is gone");
}

#[test]
fn a_merge_onto_a_snapshot_replaced_meanwhile_is_refused() {
    // Another process sharing the directory wrote a snapshot at another
    // offset: records between the two would be in neither.
    let dir = Dir::new("replaced");
    let s = dir.snapshots(3);
    write(&s, 1, 900, &records(&[("a", "1")]));
    let tail = BTreeMap::from([("b".to_string(), Some(b"2".to_vec()))]);
    let e = s
        .merge(1000, &s.header(1, 1100), &tail)
        .unwrap_err()
        .to_string();
    assert!(e.contains("replaced meanwhile"), "{e}");
    assert_eq!(
        s.read(1).unwrap().unwrap().header.offset,
        900,
        "left as it was"
    );
}
