//! Datasets in object storage (the `cloud` feature): `s3://`, `gs://` and `az://` locations
//! through the `object_store` crate, behind the same [`Storage`] seam as local folders.
//!
//! Credentials and endpoints come from the stores' usual environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP` for an S3-compatible server over plain HTTP; `GOOGLE_SERVICE_ACCOUNT`;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...) and instance or pod
//! identities; they are never written anywhere. A put is one request, so atomic: readers see
//! the old object or the whole new one, as [`crate::write_atomic`] gives local folders.

use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{PipelineError, Result};
use crate::storage::{STORE_SCHEMES, Staged, Storage};

/// A dataset under a prefix of a bucket (or container).
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage").field("url", &self.url).finish()
    }
}

/// `(scheme, bucket, prefix)` of an object-store URL such as `s3://bucket/some/prefix/`.
pub(crate) fn split_url(url: &str) -> std::result::Result<(String, String, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("`{url}`: not a URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if !STORE_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!("`{url}`: {scheme}:// is not an object store (allowed: s3://, gs://, az://)"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{url}`: no bucket (expected {scheme}://BUCKET/PREFIX)"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        return Err(format!("`{url}`: the prefix has an empty, `.` or `..` part"));
    }
    Ok((scheme, bucket.to_string(), prefix.to_string()))
}

fn store_err(url: &str, path: &str, e: impl std::fmt::Display) -> PipelineError {
    let at = if path.is_empty() { url.to_string() } else { format!("{}/{path}", url.trim_end_matches('/')) };
    PipelineError::Io { path: at.into(), source: std::io::Error::other(e.to_string()) }
}

/// object_store's retries (with backoff, on timeouts, 5xx and connection errors), cut from
/// its 3-minute default to one: a wrong endpoint should not look like a hang.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig { retry_timeout: std::time::Duration::from_secs(60), ..Default::default() }
}

/// A request may take 5 minutes unless the environment says otherwise (`AWS_TIMEOUT`,
/// `GOOGLE_TIMEOUT`, `AZURE_TIMEOUT`): object_store's default of 30 s covers the body too,
/// short for a shard of tens of MB on a slow link.
const TIMEOUT: &str = "300s";

/// Whether `var` is set (the environment then configures the store's timeout itself).
fn set(var: &str) -> bool {
    std::env::var_os(var).is_some()
}

impl ObjectStorage {
    /// Open the store `url` names (`s3://bucket/prefix`, `gs://...`, `az://container/...`),
    /// configured from the environment. Nothing is contacted until the first request.
    pub fn open(url: &str) -> Result<ObjectStorage> {
        Self::open_with(url, &[])
    }

    /// [`ObjectStorage::open`], with `options` set on top of the environment: `object_store`'s
    /// configuration keys for the URL's scheme and their values (`("aws_endpoint",
    /// "http://127.0.0.1:5000")`, `("aws_allow_http", "true")`, `("google_service_account",
    /// ...)`, `("azure_storage_account_name", ...)`; the names of
    /// `object_store::aws::AmazonS3ConfigKey`, `gcp::GoogleConfigKey` and
    /// `azure::AzureConfigKey`), for a program that configures its store in code rather than
    /// through environment variables. A key the scheme does not know is an error naming it.
    pub fn open_with(url: &str, options: &[(&str, &str)]) -> Result<ObjectStorage> {
        let bad = |why: String| PipelineError::InvalidArgument {
            field: "location".into(),
            value: url.into(),
            allowed: format!(
                "an object-store URL s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX ({why})"
            ),
        };
        let (scheme, bucket, prefix) = split_url(url).map_err(bad)?;
        // reqwest is built without a crypto provider (no aws-lc-sys): use ring's. A second
        // call finds one installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = format!("{scheme}://{bucket}");
        // `options`' keys parsed for the scheme's builder.
        fn keys<K: std::str::FromStr>(url: &str, options: &[(&str, &str)], scheme: &str) -> Result<Vec<(K, String)>> {
            options
                .iter()
                .map(|&(k, v)| {
                    k.parse::<K>().map(|k| (k, v.to_string())).map_err(|_| PipelineError::InvalidArgument {
                        field: "option".into(),
                        value: k.into(),
                        allowed: format!("a configuration key of object_store's {scheme}:// builder (for {url})"),
                    })
                })
                .collect()
        }
        let store: Arc<dyn ObjectStore> = match scheme.as_str() {
            "s3" => Arc::new(
                {
                    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                    let mut b = AmazonS3Builder::from_env().with_url(&base).with_retry(retry());
                    if !set("AWS_TIMEOUT") {
                        b = b.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), TIMEOUT);
                    }
                    for (k, v) in keys::<AmazonS3ConfigKey>(url, options, &scheme)? {
                        b = b.with_config(k, v);
                    }
                    b
                }
                .build()
                .map_err(|e| store_err(url, "", e))?,
            ),
            "gs" => Arc::new(
                {
                    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                    let mut b = GoogleCloudStorageBuilder::from_env().with_url(&base).with_retry(retry());
                    if !set("GOOGLE_TIMEOUT") {
                        b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), TIMEOUT);
                    }
                    for (k, v) in keys::<GoogleConfigKey>(url, options, &scheme)? {
                        b = b.with_config(k, v);
                    }
                    b
                }
                .build()
                .map_err(|e| store_err(url, "", e))?,
            ),
            _ => Arc::new(
                {
                    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                    let mut b = MicrosoftAzureBuilder::from_env().with_url(&base).with_retry(retry());
                    if !set("AZURE_TIMEOUT") {
                        b = b.with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), TIMEOUT);
                    }
                    for (k, v) in keys::<AzureConfigKey>(url, options, &scheme)? {
                        b = b.with_config(k, v);
                    }
                    b
                }
                .build()
                .map_err(|e| store_err(url, "", e))?,
            ),
        };
        // Requests run on a small runtime of their own; callers (rayon workers of
        // `generate`, the training reader's thread) block on them, several at once.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("physworld-store")
            .enable_all()
            .build()
            .map_err(|e| store_err(url, "", e))?;
        let url = if prefix.is_empty() { base } else { format!("{base}/{prefix}") };
        Ok(ObjectStorage { store, prefix, url, runtime })
    }

    fn key(&self, path: &str) -> std::result::Result<StorePath, PipelineError> {
        let path = path.trim_matches('/');
        let full = match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => path.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{path}", self.prefix),
        };
        StorePath::parse(&full).map_err(|e| store_err(&self.url, path, e))
    }
}

impl Storage for ObjectStorage {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let key = self.key(path)?;
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime.block_on(self.store.put(&key, payload)).map_err(|e| store_err(&self.url, path, e))?;
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let key = self.key(path)?;
        let bytes = self
            .runtime
            .block_on(async { self.store.get(&key).await?.bytes().await })
            .map_err(|e| store_err(&self.url, path, e))?;
        Ok(bytes.to_vec())
    }

    fn exists(&self, path: &str) -> Result<bool> {
        let key = self.key(path)?;
        match self.runtime.block_on(self.store.head(&key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(&self.url, path, e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let key = self.key(dir)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed =
            self.runtime.block_on(self.store.list_with_delimiter(prefix)).map_err(|e| store_err(&self.url, dir, e))?;
        // A folder marker (an empty object named like the prefix, which consoles and
        // `rclone mkdir` make) is the folder itself, not a file in it.
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter(|o| o.location != key)
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        let key = self.key(dir)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed =
            self.runtime.block_on(self.store.list_with_delimiter(prefix)).map_err(|e| store_err(&self.url, dir, e))?;
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        names.sort();
        Ok(names)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let key = self.key(path)?;
        match self.runtime.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(&self.url, path, e)),
        }
    }

    fn leaves_temporaries(&self) -> bool {
        false
    }

    /// A multipart upload of 8-MiB parts read from the staged file, at most 4 in flight (an
    /// empty file is one put: S3 refuses to complete an upload of no parts). The object
    /// appears whole when the upload completes, never in part, and memory holds a few parts
    /// rather than the file. A failed upload is aborted.
    fn commit(&self, mut staged: Staged) -> Result<()> {
        use std::io::Read;
        let file = staged.reader();
        let path = staged.target();
        let key = self.key(path)?;
        let err = |e: &dyn std::fmt::Display| store_err(&self.url, path, e);
        let mut file = file.map_err(|e| err(&e))?;
        if file.metadata().map_err(|e| err(&e))?.len() == 0 {
            return self.put(path, &[]);
        }
        self.runtime.block_on(async {
            let upload = self.store.put_multipart(&key).await.map_err(|e| err(&e))?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, STREAM_CHUNK);
            let mut buf = vec![0u8; STREAM_CHUNK];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(err(&e));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = w.wait_for_capacity(4).await {
                    let _ = w.abort().await;
                    return Err(err(&e));
                }
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(|e| err(&e))?;
            Ok(())
        })
    }

    /// Ranged reads of 8 MiB, hashed as they come.
    fn digest(&self, path: &str) -> Result<(u64, String)> {
        use sha2::Digest;
        let key = self.key(path)?;
        let err = |e: object_store::Error| store_err(&self.url, path, e);
        self.runtime.block_on(async {
            let size = self.store.head(&key).await.map_err(err)?.size;
            let mut hasher = sha2::Sha256::new();
            let mut at = 0u64;
            while at < size {
                let end = (at + STREAM_CHUNK as u64).min(size);
                hasher.update(self.store.get_range(&key, at..end).await.map_err(err)?);
                at = end;
            }
            Ok((size, hex::encode(hasher.finalize())))
        })
    }
}

/// Part size of streamed uploads and ranged reads (S3 parts are at least 5 MiB, the last
/// excepted).
const STREAM_CHUNK: usize = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage over object_store's in-memory store (which takes multipart uploads and
    /// ranged reads as S3 does).
    fn in_memory() -> ObjectStorage {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        ObjectStorage {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: "data".into(),
            url: "memory://data".into(),
            runtime,
        }
    }

    /// Bytes that differ from part to part, so a part written twice or out of order shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn staged_files_of_several_parts_and_of_none_land_whole() {
        use std::io::Write;
        let store = in_memory();
        // Three parts (8 + 8 + 3.5 MiB), exactly one part, and an empty file.
        for n in [2 * STREAM_CHUNK + 3 * (1 << 19), STREAM_CHUNK, 0] {
            let bytes = pattern(n);
            let target = format!("pixels/{n}.parquet");
            let mut staged = store.stage(&target).expect("stages");
            staged.take_file().expect("file").write_all(&bytes).expect("writes");
            // Staged unlinked (storage.rs tests that nothing is named while it is written).
            assert_eq!(staged.path().is_none(), cfg!(unix));
            store.commit(staged).expect("commits");
            assert!(store.get(&target).expect("reads") == bytes, "{n} bytes came back different");
            // digest reads in 8-MiB ranges: three of them for the first file.
            assert_eq!(
                store.digest(&target).expect("digests"),
                (n as u64, crate::storage::sha256_hex(&bytes)),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn options_set_in_code_are_the_schemes_keys() {
        // Nothing is contacted until the first request, so these open without a server.
        let s3 = [("aws_endpoint", "http://127.0.0.1:9"), ("aws_allow_http", "true"), ("timeout", "7s")];
        assert!(ObjectStorage::open_with("s3://b/p", &s3).is_ok());
        assert!(ObjectStorage::open_with("gs://b/p", &[("google_bucket", "b")]).is_ok());
        for (url, key) in [("s3://b/p", "aws_endpiont"), ("gs://b/p", "aws_endpoint"), ("az://c/p", "aws_endpoint")] {
            let err = ObjectStorage::open_with(url, &[(key, "x")]).expect_err("refused").to_string();
            assert!(err.contains(key) && err.contains(&url[..2]), "{url} {key}: {err}");
        }
    }

    #[test]
    fn urls_split_into_scheme_bucket_and_prefix() {
        assert_eq!(split_url("s3://b/x/y/"), Ok(("s3".into(), "b".into(), "x/y".into())));
        assert_eq!(split_url("GS://b"), Ok(("gs".into(), "b".into(), String::new())));
        assert!(split_url("s3:///x").is_err());
        assert!(split_url("s3://b/x/../y").is_err());
        assert!(split_url("https://h/x").is_err());
    }
}
