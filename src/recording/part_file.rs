//! `PartFile`: the `.part` file a live recording grows, shared by the WebM and MP4 writers.
//!
//! Crash safety is the same for both containers: the file only ever grows by whole elements
//! (clusters, fragments) appended at its end, a write that fails is cut off again so the file
//! stays a sequence of whole elements, data is synced at most once per flush, and finishing
//! truncates to what was written, syncs, renames to the final name and syncs the directory so
//! the rename survives a crash too. A file left by a crash is reopened with its good length.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    /// Bytes of whole elements written; the file is cut to this on a failed write.
    written: u64,
    /// Written since the last sync.
    dirty: bool,
}

impl PartFile {
    /// Creates `path`, which must not exist.
    pub fn create(path: &Path) -> io::Result<PartFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(PartFile {
            file,
            path: path.to_owned(),
            written: 0,
            dirty: false,
        })
    }

    /// Opens a file left by a crash and its whole contents, for the writer to scan.
    pub fn open_left(path: &Path) -> io::Result<(File, Vec<u8>)> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok((file, data))
    }

    /// A file left by a crash, cut to its first `good_end` bytes (the whole elements).
    pub fn resume(file: File, path: &Path, good_end: u64) -> io::Result<PartFile> {
        file.set_len(good_end)?;
        Ok(PartFile {
            file,
            path: path.to_owned(),
            written: good_end,
            dirty: true,
        })
    }

    /// Where the file is now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole elements in the file.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Starts over at the beginning (a header written again before any element).
    pub fn rewind(&mut self) {
        self.written = 0;
    }

    /// Appends one whole element; on failure the file is cut back to what it held.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.written))?;
        if let Err(e) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.written);
            return Err(e);
        }
        self.written += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Overwrites bytes already written (sizes and durations known only at the end).
    pub fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)
    }

    /// Syncs what was appended since the last sync.
    pub fn sync_if_dirty(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Cuts the file to what was written, syncs it and renames it to `final_path` (the rename
    /// synced too); returns its length.
    pub fn finish(&mut self, final_path: &Path) -> io::Result<u64> {
        self.file.set_len(self.written)?;
        self.file.sync_all()?;
        std::fs::rename(&self.path, final_path)?;
        if let Some(dir) = final_path.parent() {
            // The rename itself must survive a crash.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.written)
    }
}
