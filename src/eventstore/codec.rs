//! How an append is stored, whatever the engine: its JSON, compressed by zstd with a dictionary
//! trained on the product's events (format 3), or as it is (formats 1 and 2). See `migrations/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RecordedEvent, StoreError};

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// An append as written.
#[derive(Serialize)]
pub(super) struct AppendOut<'a> {
    position: u64,
    stream: &'a str,
    sequence: u64,
    recorded_at: f64,
    events: Vec<EventOut<'a>>,
}

#[derive(Serialize)]
pub(super) struct EventOut<'a> {
    event_type: &'a str,
    schema_version: u32,
    data: &'a Value,
}

/// An append as read: formats 2 and 3 (`events`), or a format-1 record (one event, its fields at
/// the top level).
#[derive(Deserialize)]
pub(super) struct AppendIn {
    position: u64,
    stream: String,
    sequence: u64,
    recorded_at: f64,
    #[serde(default)]
    events: Option<Vec<EventIn>>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
pub(super) struct EventIn {
    event_type: String,
    schema_version: u32,
    data: Value,
}

impl AppendIn {
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let json = decompress(bytes)?;
        serde_json::from_slice(&json).map_err(|e| storage(format!("unreadable event: {e}")))
    }

    pub(super) fn into_records(self) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match (self.events, self.event_type) {
            (Some(events), _) => events,
            (None, Some(event_type)) => vec![EventIn {
                event_type,
                schema_version: self.schema_version,
                data: self.data,
            }],
            (None, None) => {
                return Err(storage(format!(
                    "unreadable event at position {}: no events",
                    self.position
                )))
            }
        };
        Ok(events
            .into_iter()
            .enumerate()
            .map(|(i, e)| RecordedEvent {
                position: self.position + i as u64,
                stream: self.stream.clone(),
                sequence: self.sequence + i as u64,
                event_type: e.event_type,
                schema_version: e.schema_version,
                recorded_at: self.recorded_at,
                data: e.data,
            })
            .collect())
    }
}

/// The first byte of an append compressed with [`DICTIONARY`] (format 3). A JSON append (formats
/// 1 and 2) starts with `{`.
pub(super) const COMPRESSED_V1: u8 = 1;

/// A zstd dictionary trained on the events the product records (pipelines, executions, S3,
/// IAM, CodeBuild), made by `examples/event_dictionary.rs`. Appends written with it must be read
/// with it: a new dictionary takes a new first byte, and this one stays.
pub(super) const DICTIONARY: &[u8] = include_bytes!("events.dict");

/// zstd's level for appends: its fastest, which the dictionary makes nearly as small as its best.
const LEVEL: i32 = 1;

/// The most bytes an append may decompress to (a corrupt one is refused, not allocated).
const MAX_APPEND_BYTES: u64 = 256 << 20;

static ENCODER: std::sync::LazyLock<zstd::dict::EncoderDictionary<'static>> =
    std::sync::LazyLock::new(|| zstd::dict::EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: std::sync::LazyLock<zstd::dict::DecoderDictionary<'static>> =
    std::sync::LazyLock::new(|| zstd::dict::DecoderDictionary::copy(DICTIONARY));

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// An append as stored: its JSON compressed with the dictionary, after [`COMPRESSED_V1`].
pub(super) fn compress(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::with_prepared_dictionary(&ENCODER).map_err(storage)?);
        }
        let frame = c
            .as_mut()
            .expect("the compressor was just made")
            .compress(json)
            .map_err(storage)?;
        let mut out = Vec::with_capacity(frame.len() + 1);
        out.push(COMPRESSED_V1);
        out.extend_from_slice(&frame);
        Ok(out)
    })
}

/// The JSON of an append as stored: compressed (format 3) or as it is (formats 1 and 2).
pub(super) fn decompress(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
    decompress_within(bytes, MAX_APPEND_BYTES)
}

/// [`decompress`], refusing an append whose frame says it holds more than `max` bytes.
pub(super) fn decompress_within(
    bytes: &[u8],
    max: u64,
) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
    let Some((&COMPRESSED_V1, frame)) = bytes.split_first() else {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    };
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .filter(|n| *n <= max)
        .ok_or_else(|| storage("unreadable event: a compressed append of no or too large size"))?;
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::with_prepared_dictionary(&DECODER).map_err(storage)?,
            );
        }
        d.as_mut()
            .expect("the decompressor was just made")
            .decompress(frame, size as usize)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| storage(format!("unreadable event: {e}")))
    })
}

/// The stored bytes of `records`, one append to one stream (at least one record).
pub(super) fn encode(records: &[RecordedEvent]) -> Result<Vec<u8>, StoreError> {
    let first = records
        .first()
        .ok_or_else(|| storage("an append of no events"))?;
    compress(
        &serde_json::to_vec(&AppendOut {
            position: first.position,
            stream: &first.stream,
            sequence: first.sequence,
            recorded_at: first.recorded_at,
            events: records
                .iter()
                .map(|r| EventOut {
                    event_type: &r.event_type,
                    schema_version: r.schema_version,
                    data: &r.data,
                })
                .collect(),
        })
        .map_err(storage)?,
    )
}
