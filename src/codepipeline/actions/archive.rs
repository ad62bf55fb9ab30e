//! Unpacking zip artifacts without trusting them: every entry is streamed to disk, never sized
//! by what its header declares, and the whole stays within limits on entries, bytes and
//! inflation ratio. A hostile archive (a forged size, a bomb, a path out of the directory)
//! fails its action with a message saying which limit it broke; the server goes on.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::failed;
use crate::codepipeline::execution::ErrorDetails;

/// What an artifact may unpack to (`zip_max_entries`, `zip_max_bytes`, `zip_max_ratio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Files and directories in one archive.
    pub max_entries: usize,
    /// Bytes all its files unpack to.
    pub max_bytes: u64,
    /// How many times its compressed size one entry may inflate to (entries under 1 MiB are
    /// not held to it: small files compress as they like).
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 10_000,
            max_bytes: 1 << 30,
            max_ratio: 200,
        }
    }
}

/// Entries that unpack to less than this are not held to the ratio.
const RATIO_FLOOR: u64 = 1 << 20;

/// A file unpacked from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Its path inside the archive (`/`-separated, relative).
    pub path: String,
    /// Where it was written.
    pub file: PathBuf,
}

/// Unpacks the zip `bytes` (the input artifact `artifact`) into `dir`, within `limits`.
pub fn unpack(
    bytes: &[u8],
    artifact: &str,
    dir: &Path,
    limits: &ZipLimits,
) -> Result<Vec<Unpacked>, ErrorDetails> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        failed(format!(
            "The input artifact {artifact} is not a zip file: {e}"
        ))
    })?;
    if archive.len() > limits.max_entries {
        return Err(failed(format!(
            "The input artifact {artifact} has {} entries; at most {} are unpacked (zip_max_entries)",
            archive.len(),
            limits.max_entries
        )));
    }
    let io = |e: std::io::Error| {
        failed(format!(
            "The input artifact {artifact} could not be unpacked: {e}"
        ))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            failed(format!(
                "The input artifact {artifact} is not readable: {e}"
            ))
        })?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry.name().map(|n| n.to_string()).map_err(|e| {
            failed(format!(
                "An entry of {artifact} has an unreadable name: {e}"
            ))
        })?;
        let safe = entry
            .enclosed_name()
            .filter(|p| !raw.starts_with('/') && !raw.contains("..") && p.components().count() > 0)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .ok_or_else(|| failed(format!("The input artifact {artifact} has an entry {raw} that would be unpacked outside its directory")))?;
        let target = dir.join(&safe);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let compressed = entry.compressed_size().max(1);
        // What this entry may still write: the archive's remaining bytes, and its ratio.
        let by_ratio = compressed.saturating_mul(limits.max_ratio).max(RATIO_FLOOR);
        let allowed = (limits.max_bytes - total).min(by_ratio);
        let mut out = std::fs::File::create(&target).map_err(io)?;
        let written = copy_at_most(&mut entry, &mut out, allowed).map_err(|e| {
            failed(format!(
                "The entry {raw} of {artifact} is not readable: {e}"
            ))
        })?;
        let Some(written) = written else {
            drop(out);
            let _ = std::fs::remove_file(&target);
            return Err(if allowed < by_ratio {
                failed(format!(
                    "The input artifact {artifact} unpacks to more than {} bytes (zip_max_bytes)",
                    limits.max_bytes
                ))
            } else {
                failed(format!(
                    "The entry {raw} of {artifact} inflates more than {} times its compressed size of {compressed} bytes (zip_max_ratio)",
                    limits.max_ratio
                ))
            });
        };
        total += written;
        files.push(Unpacked {
            path: safe,
            file: target,
        });
    }
    Ok(files)
}

/// Copies `from` into `to` unless it holds more than `limit` bytes: the bytes copied, or `None`
/// (having copied `limit` and read one more) when it holds more.
fn copy_at_most(
    from: &mut impl Read,
    to: &mut impl Write,
    limit: u64,
) -> std::io::Result<Option<u64>> {
    let mut buffer = [0u8; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(Some(copied));
        }
        if copied + n as u64 > limit {
            return Ok(None);
        }
        to.write_all(&buffer[..n])?;
        copied += n as u64;
    }
}

/// A scratch directory that is removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory under `parent`.
    pub fn new(parent: &Path) -> std::io::Result<Scratch> {
        let dir = parent.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, content) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn limits(max_entries: usize, max_bytes: u64, max_ratio: u64) -> ZipLimits {
        ZipLimits {
            max_entries,
            max_bytes,
            max_ratio,
        }
    }

    #[test]
    fn files_are_streamed_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_of(
            &[("a.txt", b"one"), ("d/b.txt", b"two")],
            zip::CompressionMethod::Deflated,
        );
        let files = unpack(&zip, "art", dir.path(), &ZipLimits::default()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, "d/b.txt");
        assert_eq!(std::fs::read(&files[1].file).unwrap(), b"two");
    }

    #[test]
    fn a_bomb_stops_at_the_ratio_and_the_total_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 8 << 20];
        let bomb = zip_of(&[("z", &zeros)], zip::CompressionMethod::Deflated);
        let e = unpack(&bomb, "art", dir.path(), &limits(10, 1 << 30, 100)).unwrap_err();
        assert!(e.message.contains("zip_max_ratio"), "{}", e.message);
        assert!(!dir.path().join("z").exists());
        let stored = zip_of(
            &[("a", &[1u8; 3000]), ("b", &[2u8; 3000])],
            zip::CompressionMethod::Stored,
        );
        let e = unpack(&stored, "art", dir.path(), &limits(10, 5000, 100)).unwrap_err();
        assert!(e.message.contains("zip_max_bytes"), "{}", e.message);
        let e = unpack(&stored, "art", dir.path(), &limits(1, 1 << 30, 100)).unwrap_err();
        assert!(e.message.contains("zip_max_entries"), "{}", e.message);
    }
}
