//! Crash-safe persistence of the store to a directory.
//!
//! Owns: the on-disk format — `snapshot.json` (written to a temp file, fsync'd, renamed)
//! plus `log.jsonl`, an append-only log of puts and deletes, one JSON line each, written
//! before the store answers. A torn last line (kill -9 mid-write) is dropped on load and
//! the file truncated to its last complete line. Log records at or below the snapshot's
//! resourceVersion are skipped, so a crash between snapshot rename and log truncation is
//! harmless.
//! Must not: know about resources, HTTP or watches.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::store::ObjKey;

/// Log records after which the next write compacts into a snapshot.
const COMPACT_AFTER: usize = 20_000;

/// The state found on disk.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub rv: u64,
    pub objects: Vec<(ObjKey, Value)>,
}

pub(crate) struct Log {
    dir: PathBuf,
    file: File,
    records: usize,
}

fn key_json(key: &ObjKey) -> Value {
    json!([key.0, key.1, key.2, key.3])
}

fn key_from(v: &Value) -> Option<ObjKey> {
    let a = v.as_array()?;
    let s = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_owned);
    Some((s(0)?, s(1)?, s(2)?, s(3)?))
}

impl Log {
    /// Opens (creating) the directory and reads its state.
    pub fn open(dir: &Path) -> std::io::Result<(Log, Loaded)> {
        std::fs::create_dir_all(dir)?;
        let mut objects = std::collections::BTreeMap::new();
        let mut rv = 0;
        let snapshot = dir.join("snapshot.json");
        if snapshot.exists() {
            let text = std::fs::read(&snapshot)?;
            let doc: Value = serde_json::from_slice(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            rv = doc.get("rv").and_then(Value::as_u64).unwrap_or(0);
            for entry in doc
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(k), Some(o)) = (entry.get("key").and_then(key_from), entry.get("obj"))
                {
                    objects.insert(k, o.clone());
                }
            }
        }
        let snapshot_rv = rv;
        let log_path = dir.join("log.jsonl");
        let mut good_len: u64 = 0;
        let mut records = 0;
        if log_path.exists() {
            let reader = BufReader::new(File::open(&log_path)?);
            for line in reader.split(b'\n') {
                let line = line?;
                let Ok(rec) = serde_json::from_slice::<Value>(&line) else {
                    break;
                };
                let (Some(rec_rv), Some(key)) = (
                    rec.get("rv").and_then(Value::as_u64),
                    rec.get("key").and_then(key_from),
                ) else {
                    break;
                };
                good_len += line.len() as u64 + 1;
                records += 1;
                if rec_rv <= snapshot_rv {
                    continue;
                }
                rv = rv.max(rec_rv);
                match rec.get("obj") {
                    Some(obj) if !obj.is_null() => {
                        objects.insert(key, obj.clone());
                    }
                    _ => {
                        objects.remove(&key);
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        // Drop a torn tail so the next record starts on a fresh line.
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)?;
        }
        let log = Log {
            dir: dir.to_owned(),
            file,
            records,
        };
        Ok((
            log,
            Loaded {
                rv,
                objects: objects.into_iter().collect(),
            },
        ))
    }

    /// Appends one record; `obj = None` is a delete.
    pub fn append(&mut self, rv: u64, key: &ObjKey, obj: Option<&Value>) -> std::io::Result<()> {
        let rec = json!({"rv": rv, "key": key_json(key), "obj": obj});
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.records += 1;
        Ok(())
    }

    pub fn wants_compaction(&self) -> bool {
        self.records >= COMPACT_AFTER
    }

    /// Writes a snapshot of `objects` at `rv` and empties the log.
    pub fn compact<'a>(
        &mut self,
        rv: u64,
        objects: impl Iterator<Item = (&'a ObjKey, &'a Value)>,
    ) -> std::io::Result<()> {
        let items: Vec<Value> = objects
            .map(|(k, o)| json!({"key": key_json(k), "obj": o}))
            .collect();
        let doc = json!({"rv": rv, "objects": items});
        let tmp = self.dir.join("snapshot.json.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&doc).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join("snapshot.json"))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> ObjKey {
        ("".into(), "configmaps".into(), "default".into(), n.into())
    }

    #[test]
    fn replays_log_and_ignores_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, loaded) = Log::open(dir.path()).unwrap();
            assert_eq!(loaded.rv, 0);
            log.append(1, &key("a"), Some(&json!({"a": 1}))).unwrap();
            log.append(2, &key("b"), Some(&json!({"b": 1}))).unwrap();
            log.append(3, &key("a"), None).unwrap();
        }
        let path = dir.path().join("log.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"rv\":4,\"key\":[\"\",\"configmaps\",\"default\",\"c\"],\"obj\":{\"c")
            .unwrap();
        drop(f);
        let (mut log, loaded) = Log::open(dir.path()).unwrap();
        assert_eq!(loaded.rv, 3);
        assert_eq!(loaded.objects, vec![(key("b"), json!({"b": 1}))]);
        log.append(4, &key("d"), Some(&json!({"d": 1}))).unwrap();
        drop(log);
        let (_, loaded) = Log::open(dir.path()).unwrap();
        assert_eq!(loaded.rv, 4);
        assert_eq!(loaded.objects.len(), 2);
    }

    #[test]
    fn compaction_keeps_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path()).unwrap();
        log.append(1, &key("a"), Some(&json!({"a": 1}))).unwrap();
        let objs = [(key("a"), json!({"a": 1}))];
        log.compact(1, objs.iter().map(|(k, v)| (k, v))).unwrap();
        log.append(2, &key("b"), Some(&json!({"b": 2}))).unwrap();
        drop(log);
        let (_, loaded) = Log::open(dir.path()).unwrap();
        assert_eq!(loaded.rv, 2);
        assert_eq!(loaded.objects.len(), 2);
    }
}
