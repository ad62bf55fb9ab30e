//! The storage engines side by side: the appends of a sled log of format 2 or 3 (the product's records
//! and per-stream index, compressed as format 3 stores them) written to sled, redb, fjall and
//! SQLite in batches of BATCH appends with a durable commit each (the server's group commit), then
//! each database's size on disk, its reopening and a scan of every append.
use std::path::Path;
use std::time::Instant;

const DICT: &[u8] = include_bytes!("../../../src/eventstore/events.dict");

fn du(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

fn main() {
    let src = std::env::args().nth(1).expect("source sled dir");
    let limit: usize = std::env::var("APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    let batch: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let engines = std::env::var("ENGINES").unwrap_or("sled,redb,fjall,sqlite".into());
    let out = std::path::PathBuf::from(std::env::var("OUT").unwrap_or("/tmp/enginecmp/out".into()));
    let db = sled::Config::new().path(&src).cache_capacity(4 << 20).open().unwrap();
    let log = db.open_tree("log").unwrap();
    let mut enc = zstd::bulk::Compressor::with_dictionary(1, DICT).unwrap();
    let mut dec = zstd::bulk::Decompressor::with_dictionary(DICT).unwrap();
    let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut events = 0u64;
    let mut appends = 0usize;
    for e in log.range(&b"a"[..]..&b"b"[..]) {
        if appends >= limit { break; }
        let (k, stored) = e.unwrap();
        // Format 3 stores the JSON compressed after a byte 1; format 2 as it is.
        let v = match stored.split_first() {
            Some((1, frame)) => dec.decompress(frame, 64 << 20).unwrap(),
            _ => stored.to_vec(),
        };
        let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
        let stream = j["stream"].as_str().unwrap();
        let seq = j["sequence"].as_u64().unwrap();
        let pos = j["position"].as_u64().unwrap();
        let n = j["events"].as_array().map_or(1, |a| a.len());
        events += n as u64;
        let mut val = vec![1u8];
        val.extend(enc.compress(&v).unwrap());
        writes.push((k.to_vec(), val));
        let mut ik = vec![b's'];
        ik.extend_from_slice(stream.as_bytes());
        ik.push(0);
        ik.extend_from_slice(&seq.to_be_bytes());
        let mut iv = pos.to_be_bytes().to_vec();
        iv.extend_from_slice(&(n as u32).to_be_bytes());
        writes.push((ik, iv));
        appends += 1;
    }
    drop(log);
    drop(db);
    let logical: usize = writes.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!("{appends} appends, {events} events, batches of {batch} appends; logical {:.1} B/event", logical as f64 / events as f64);
    let chunks: Vec<&[(Vec<u8>, Vec<u8>)]> = writes.chunks(batch * 2).collect();
    for engine in engines.split(',') {
        let dir = out.join(engine);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = Instant::now();
        match engine {
            "sled" => {
                let segment: usize = std::env::var("SLED_SEGMENT").ok().and_then(|v| v.parse().ok()).unwrap_or(512 << 10);
                let db = sled::Config::new().path(&dir).cache_capacity(4 << 20).segment_size(segment).open().unwrap();
                let tree = db.open_tree("log").unwrap();
                for c in &chunks {
                    let mut b = sled::Batch::default();
                    for (k, v) in c.iter() { b.insert(k.as_slice(), v.as_slice()); }
                    tree.apply_batch(b).unwrap();
                    db.flush().unwrap();
                }
            }
            "redb" => {
                let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("log");
                let db = redb::Database::create(dir.join("db.redb")).unwrap();
                for c in &chunks {
                    let tx = db.begin_write().unwrap();
                    {
                        let mut t = tx.open_table(def).unwrap();
                        for (k, v) in c.iter() { t.insert(k.as_slice(), v.as_slice()).unwrap(); }
                    }
                    tx.commit().unwrap();
                }
            }
            "fjall" => {
                let ks = fjall::Config::new(&dir).open().unwrap();
                let p = ks.open_partition("log", fjall::PartitionCreateOptions::default()).unwrap();
                for c in &chunks {
                    let mut b = ks.batch();
                    for (k, v) in c.iter() { b.insert(&p, k.as_slice(), v.as_slice()); }
                    b.commit().unwrap();
                    ks.persist(fjall::PersistMode::SyncAll).unwrap();
                }
            }
            "sqlite" => {
                let c0 = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
                c0.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE log(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;").unwrap();
                let mut c0 = c0;
                for c in &chunks {
                    let tx = c0.transaction().unwrap();
                    {
                        let mut st = tx.prepare_cached("INSERT INTO log(k, v) VALUES (?1, ?2)").unwrap();
                        for (k, v) in c.iter() { st.execute(rusqlite::params![k, v]).unwrap(); }
                    }
                    tx.commit().unwrap();
                }
                c0.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            }
            _ => panic!("engine {engine}"),
        }
        let write = t.elapsed().as_secs_f64();
        // Closed (dropped above); measure, then time a reopen and a scan of the whole log.
        let size = du(&dir);
        let t = Instant::now();
        let n = match engine {
            "sled" => { let segment: usize = std::env::var("SLED_SEGMENT").ok().and_then(|v| v.parse().ok()).unwrap_or(512 << 10); let db = sled::Config::new().path(&dir).cache_capacity(4 << 20).segment_size(segment).open().unwrap(); let tr = db.open_tree("log").unwrap(); let o = t.elapsed(); let n = tr.range(&b"a"[..]..&b"b"[..]).count(); (o, n) }
            "redb" => { let db = redb::Database::create(dir.join("db.redb")).unwrap(); let o = t.elapsed(); let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("log"); let tx = db.begin_read().unwrap(); let tb = tx.open_table(def).unwrap(); let n = tb.range(&b"a"[..]..&b"b"[..]).unwrap().count(); (o, n) }
            "fjall" => { let ks = fjall::Config::new(&dir).open().unwrap(); let p = ks.open_partition("log", fjall::PartitionCreateOptions::default()).unwrap(); let o = t.elapsed(); let n = p.range(&b"a"[..]..&b"b"[..]).count(); (o, n) }
            "sqlite" => { let c = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap(); let o = t.elapsed(); let n: i64 = c.query_row("SELECT count(*) FROM log WHERE k >= x'61' AND k < x'62'", [], |r| r.get(0)).unwrap(); (o, n as usize) }
            _ => unreachable!(),
        };
        let all = t.elapsed().as_secs_f64();
        println!("{engine:7} write {write:7.1} s ({:6.0} appends/s)  size {:8.1} MB = {:5.0} B/event  reopen {:6.1} ms  reopen+scan {:6.0} ms ({} appends)",
            appends as f64 / write, size as f64 / 1e6, size as f64 / events as f64, n.0.as_secs_f64() * 1e3, all * 1e3, n.1);
    }
}
