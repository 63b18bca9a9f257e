//! Snapshots: the graph as N-Quads plus the journal position it covers, so a start loads
//! the snapshot and replays only the journal tail.
//!
//! A snapshot is written to a temporary file, synced, and renamed into place, so a crash
//! leaves either the old snapshot or the new one, never half of one. Its first line names
//! the journal it came from and the position: `# iotcane-snapshot journal=ID seq=N`.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use oxigraph::io::{RdfFormat, RdfSerializer};

use crate::error::StoreError;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".nq";
/// Snapshots kept besides the newest, in case the newest turns out unreadable.
const KEEP: usize = 1;

/// A snapshot found on disk.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub seq: i64,
}

/// Writes `quads` (a consistent view taken under the write lock) as the state at `seq`.
pub fn write(
    dir: &Path,
    journal_id: &str,
    seq: i64,
    quads: impl Iterator<Item = Result<oxigraph::model::Quad, oxigraph::store::StorageError>>,
) -> Result<SnapshotFile, StoreError> {
    fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"));
    let tmp = dir.join(format!(".{PREFIX}{seq:020}{SUFFIX}.tmp"));
    {
        let file = File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        writeln!(out, "# iotcane-snapshot journal={journal_id} seq={seq}").map_err(io)?;
        let mut serializer = RdfSerializer::from_format(RdfFormat::NQuads).for_writer(out);
        for quad in quads {
            serializer.serialize_quad(&quad?).map_err(io)?;
        }
        let out = serializer.finish().map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, &path).map_err(io)?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not every filesystem supports it.
        let _ = d.sync_all();
    }
    prune(dir)?;
    Ok(SnapshotFile { path, seq })
}

/// The newest snapshot of this journal, if any.
pub fn newest(dir: &Path, journal_id: &str) -> Result<Option<SnapshotFile>, StoreError> {
    for file in list(dir)?.into_iter().rev() {
        let mut header = String::new();
        BufReader::new(File::open(&file.path).map_err(io)?)
            .read_line(&mut header)
            .map_err(io)?;
        let expected = format!("# iotcane-snapshot journal={journal_id} seq={}", file.seq);
        if header.trim_end() == expected {
            return Ok(Some(file));
        }
        tracing::warn!(path = %file.path.display(), "ignoring a snapshot of another journal");
    }
    Ok(None)
}

fn list(dir: &Path) -> Result<Vec<SnapshotFile>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(seq) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .and_then(|n| n.parse().ok())
        {
            files.push(SnapshotFile { path, seq });
        }
    }
    files.sort_by_key(|f| f.seq);
    Ok(files)
}

fn prune(dir: &Path) -> Result<(), StoreError> {
    let files = list(dir)?;
    let excess = files.len().saturating_sub(KEEP + 1);
    for file in &files[..excess] {
        fs::remove_file(&file.path).map_err(io)?;
    }
    Ok(())
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Snapshot(e.to_string())
}
