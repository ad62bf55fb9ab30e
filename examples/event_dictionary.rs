//! Trains the zstd dictionary the event log compresses its appends with
//! (`src/eventstore/events.dict`, format 3) on the appends of data dirs.
//!
//! Run: `cargo run --release --example event_dictionary -- OUT DATA_DIR...` on copies of data
//! dirs (opening one stamps it with this build's format). The dictionary in the repository was
//! trained on a `benches/longlived.rs` data dir of 3,000 executions (pipelines, executions, S3,
//! CodeBuild) and on a copy of `tests/fixtures/format-2` (approvals, failures, stops,
//! transitions, tags). A dictionary that is in use is never changed: a new one takes a new
//! version byte in `sled_store.rs`.

use codepipeline_local::eventstore::sled_store::SledStore;

/// Appends taken from each data dir at most.
const PER_DIR: usize = 4000;
/// The dictionary's size.
const SIZE: usize = 16 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: event_dictionary OUT DATA_DIR...");
    let mut samples = Vec::new();
    for dir in args {
        let store = SledStore::open(&std::path::Path::new(&dir).join("events"), 8 << 20)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        let taken = store.append_samples(PER_DIR).expect("appends");
        println!("{dir}: {} appends", taken.len());
        samples.extend(taken);
    }
    let dictionary = zstd::dict::from_samples(&samples, SIZE).expect("a dictionary");
    std::fs::write(&out, &dictionary).expect("write the dictionary");
    println!(
        "{out}: {} bytes from {} appends",
        dictionary.len(),
        samples.len()
    );
}
