//! The library's files behind `object_store`: a local directory by default, or an
//! S3-compatible bucket (AWS, MinIO) by configuration.
//!
//! Layout: `{recording id}/lesson.webm` for the lesson, `{recording id}/tracks/{source}.webm`
//! for per-track files. Keys are built only from validated ids and from sources the recorder
//! named (`t3-video`), never from request paths, and `object_store` refuses `..` segments
//! besides. Uploads stream the file in parts (bounded memory, a 1 GB lesson included) and hash
//! it on the way, so what is stored is what the catalog's SHA-256 says.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::ids::RecordingId;
use crate::config::recording::RecordingConfig;

/// Bytes read from the local file per part; also the multipart chunk size. S3 refuses parts
/// under 5 MiB (but the last), so 8 MiB: every part but the last is exactly this size.
const CHUNK: usize = 8 << 20;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("library file not found")]
    NotFound,
    #[error("library store: {0}")]
    Store(#[from] object_store::Error),
    #[error("reading {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
}

impl StoreError {
    fn from_store(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            e => StoreError::Store(e),
        }
    }
}

/// The object store and what kind it is.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// `local:/path` or `s3://bucket@endpoint`, for the status endpoint and logs (no secrets).
    pub describe: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// What an upload stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The key of an entry's lesson file; `ext` is its container (`webm`, `mp4`).
pub fn lesson_key(id: &RecordingId, ext: &str) -> String {
    format!("{id}/lesson.{}", container_ext(ext))
}

/// The key of a per-track file (or a codec segment, `seg2`, …); `None` for a source name the
/// recorder would not make.
pub fn track_key(id: &RecordingId, source: &str, ext: &str) -> Option<String> {
    let ok = !source.is_empty()
        && source.len() <= 64
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| format!("{id}/tracks/{source}.{}", container_ext(ext)))
}

/// `mp4` or `webm` (anything else is taken for WebM, the recorder's first format).
fn container_ext(ext: &str) -> &'static str {
    if ext == "mp4" { "mp4" } else { "webm" }
}

/// The container of a stored file, from its key: `mp4` or `webm`.
pub fn container_of(key: &str) -> &'static str {
    if key.ends_with(".mp4") { "mp4" } else { "webm" }
}

/// The media type of a stored file, from its key.
pub fn content_type_of(key: &str) -> &'static str {
    if key.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/webm"
    }
}

impl Store {
    /// A library in the local directory `dir` (created if missing).
    pub fn local(dir: &FsPath) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Local {
            path: dir.display().to_string(),
            source,
        })?;
        // fsync: the import deletes the recorder's copy once the upload returns, so the
        // library's copy must be on the disk by then, not only in the page cache. Cleanup:
        // a deleted recording leaves no empty `{id}/` directory behind.
        let fs = LocalFileSystem::new_with_prefix(dir)?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Store {
            inner: Arc::new(fs),
            describe: format!("local:{}", dir.display()),
        })
    }

    /// A library in the S3 bucket of `rc` (`recording.s3_*`, validated at start). Keys from
    /// the configuration, else from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, else
    /// object_store's instance credentials (an EC2 or ECS role).
    pub fn s3(rc: &RecordingConfig) -> Result<Store, StoreError> {
        // Only these two variables: `AmazonS3Builder::from_env` would also take AWS_ENDPOINT,
        // AWS_BUCKET and the like, and the configuration is what names the store.
        let from_env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
        let key_id = Some(rc.s3_access_key_id.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| from_env("AWS_ACCESS_KEY_ID"));
        let secret = Some(rc.s3_secret_access_key.expose().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| from_env("AWS_SECRET_ACCESS_KEY"));
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&rc.s3_bucket)
            .with_region(&rc.s3_region)
            .with_allow_http(rc.s3_allow_http)
            .with_virtual_hosted_style_request(rc.s3_virtual_hosted_style);
        if !rc.s3_endpoint.is_empty() {
            b = b.with_endpoint(&rc.s3_endpoint);
        }
        if let Some(k) = key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = secret {
            b = b.with_secret_access_key(s);
        }
        let endpoint = if rc.s3_endpoint.is_empty() {
            format!("aws:{}", rc.s3_region)
        } else {
            rc.s3_endpoint.trim_end_matches('/').to_owned()
        };
        Ok(Store {
            inner: Arc::new(b.build()?),
            describe: format!("s3://{}@{endpoint}", rc.s3_bucket),
        })
    }

    /// A library in memory (nothing kept).
    pub fn memory() -> Store {
        Store {
            inner: Arc::new(object_store::memory::InMemory::new()),
            describe: "memory".into(),
        }
    }

    fn path(key: &str) -> Result<Path, StoreError> {
        Path::parse(key).map_err(|e| StoreError::Store(e.into()))
    }

    /// Streams the local file `from` into `key`, hashing it.
    pub async fn put_file(&self, from: &FsPath, key: &str) -> Result<Stored, StoreError> {
        let local = |source| StoreError::Local {
            path: from.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(from).await.map_err(local)?;
        let upload = self.inner.put_multipart(&Self::path(key)?).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(local(e));
                }
            };
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n as u64;
            // Two parts in flight at most: memory stays bounded whatever the file's size.
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(Stored {
            key: key.to_owned(),
            bytes: total,
            sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The size of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, StoreError> {
        self.inner
            .head(&Self::path(key)?)
            .await
            .map(|m| m.size)
            .map_err(StoreError::from_store)
    }

    /// Bytes `start..=end` of `key` as a stream.
    pub async fn read(
        &self,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, StoreError> {
        let opts = GetOptions::new().with_range(Some(GetRange::Bounded(start..end + 1)));
        let got = self
            .inner
            .get_opts(&Self::path(key)?, opts)
            .await
            .map_err(StoreError::from_store)?;
        Ok(got.into_stream())
    }

    /// Deletes `key`; a missing object is not an error (a repeated delete).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn track_keys_only_take_recorder_sources() {
        let id = RecordingId::generate(1);
        assert_eq!(
            track_key(&id, "t3-video", "webm"),
            Some(format!("{id}/tracks/t3-video.webm"))
        );
        assert_eq!(
            track_key(&id, "seg2", "mp4"),
            Some(format!("{id}/tracks/seg2.mp4"))
        );
        assert_eq!(lesson_key(&id, "../x"), format!("{id}/lesson.webm"));
        assert_eq!(content_type_of(&lesson_key(&id, "mp4")), "video/mp4");
        for bad in ["", "../x", "a/b", "t3 video", "x.webm"] {
            assert_eq!(track_key(&id, bad, "webm"), None, "{bad}");
        }
    }

    #[test]
    fn an_s3_store_describes_itself_without_secrets() {
        use crate::config::recording::{LibraryStore, Secret};
        // Building the client (TLS included) needs no network: this is what start does.
        let rc = RecordingConfig {
            library_store: LibraryStore::S3,
            s3_bucket: "lessons".into(),
            s3_region: "eu-west-1".into(),
            s3_access_key_id: "AKIDEXAMPLE".into(),
            s3_secret_access_key: Secret("wJalrXUtnFEMI".into()),
            ..Default::default()
        };
        let aws = Store::s3(&rc).expect("AWS store");
        assert_eq!(aws.describe, "s3://lessons@aws:eu-west-1");
        let minio = RecordingConfig {
            s3_endpoint: "http://127.0.0.1:9000/".into(),
            s3_allow_http: true,
            ..rc
        };
        let s = Store::s3(&minio).expect("MinIO store");
        assert_eq!(s.describe, "s3://lessons@http://127.0.0.1:9000");
        assert!(!format!("{s:?}").contains("wJalrXUtnFEMI"));
    }

    #[tokio::test]
    async fn a_file_goes_in_hashed_and_comes_out_by_range() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::local(&tmp.path().join("lib")).unwrap();
        let src = tmp.path().join("in.webm");
        let data: Vec<u8> = (0..(CHUNK * 2 + 1234)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let id = RecordingId::generate(7);
        let s = store
            .put_file(&src, &lesson_key(&id, "webm"))
            .await
            .unwrap();
        assert_eq!(s.bytes, data.len() as u64);
        let want: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s.sha256, want);
        assert_eq!(store.size(&s.key).await.unwrap(), data.len() as u64);
        let mut got = Vec::new();
        let mut st = store.read(&s.key, 1000, 1999).await.unwrap();
        while let Some(b) = st.next().await {
            got.extend_from_slice(&b.unwrap());
        }
        assert_eq!(got, &data[1000..2000]);
        store.delete(&s.key).await.unwrap();
        store.delete(&s.key).await.unwrap();
        assert!(
            !tmp.path().join("lib").join(id.as_str()).exists(),
            "no empty dir left"
        );
        assert!(
            tmp.path().join("lib").exists(),
            "the library's own dir stays"
        );
        assert!(matches!(
            store.size(&s.key).await,
            Err(StoreError::NotFound)
        ));
    }
}
