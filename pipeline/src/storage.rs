//! Where datasets are written: a small trait so that object stores can follow the local
//! file system (an `object_store`-backed implementation needs only these five calls; its
//! `put` is atomic by nature).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};

/// A flat key space of files addressed by `/`-separated relative paths.
pub trait Storage: Send + Sync {
    /// Human-readable location (for messages).
    fn location(&self) -> String;
    /// Write `bytes` to `path` atomically: readers see the old state or the whole new
    /// file, never a partial one. Missing parent folders are created.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Read a whole file.
    fn get(&self, path: &str) -> Result<Vec<u8>>;
    /// Whether a file exists; an error when the storage cannot tell (a store that does
    /// not answer or refuses the request), never a guess.
    fn exists(&self, path: &str) -> Result<bool>;
    /// File names (not paths) directly inside folder `dir`, sorted; empty if it is missing.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Names of the folders directly inside folder `dir` (in a store: the prefixes one level
    /// down that hold objects), sorted; empty if it is missing.
    fn list_dirs(&self, dir: &str) -> Result<Vec<String>>;
    /// Delete a file if it exists.
    fn remove(&self, path: &str) -> Result<()>;
    /// Whether a killed writer can leave temporary files behind ([`write_atomic`]'s);
    /// object stores, whose puts are atomic, leave none.
    fn leaves_temporaries(&self) -> bool {
        true
    }
    /// A new local file in which a large file for `path` is written piece by piece, so that
    /// it never has to be held in memory whole; [`Storage::commit`] then puts it in place.
    /// Default: a file of its own in the system's temporary folder, unlinked as soon as it
    /// is created (on Unix), so that it goes with the process however that ends, SIGKILL
    /// included; elsewhere removed when dropped.
    fn stage(&self, path: &str) -> Result<Staged> {
        Staged::anonymous(&std::env::temp_dir(), "physworld-staged-", path)
    }
    /// Put a [`Storage::stage`]d file at its path, as atomically as [`Storage::put`].
    /// Default: read it back and put it.
    fn commit(&self, mut staged: Staged) -> Result<()> {
        use std::io::Read;
        let mut bytes = Vec::new();
        staged.reader().and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(&staged.target))?;
        self.put(&staged.target, &bytes)
    }
    /// Size and SHA-256 (hex) of the file at `path`, read in pieces where the storage can.
    /// Default: read it whole.
    fn digest(&self, path: &str) -> Result<(u64, String)> {
        let bytes = self.get(path)?;
        Ok((bytes.len() as u64, sha256_hex(&bytes)))
    }
}

/// A temporary local file holding a file for a storage's `target` path while it is written
/// ([`Storage::stage`]); freed when dropped unless committed (at once for one unlinked at
/// creation, as the default [`Storage::stage`] does on Unix; otherwise removed).
#[derive(Debug)]
pub struct Staged {
    file: PathBuf,
    target: String,
    handle: Option<fs::File>,
    /// A second handle to an unlinked file (which has no name left to open it by).
    reader: Option<fs::File>,
    /// Whether `file` no longer names it.
    unlinked: bool,
}

impl Staged {
    /// A new file in `dir`, named after `tmp` (a prefix) and the target's file name, created
    /// exclusively (a name of its own, as [`write_atomic`] gives its temporaries).
    fn create(dir: &Path, tmp: &str, target: &str) -> Result<Staged> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let name = target.rsplit('/').next().unwrap_or(target);
        let (file, handle) = create_exclusive(dir, &format!("{tmp}{name}")).map_err(io_err(target))?;
        Ok(Staged { file, target: target.to_string(), handle: Some(handle), reader: None, unlinked: false })
    }

    /// As [`Staged::create`], then (on Unix) unlinked at once and read back through a second
    /// handle: the operating system frees it when the last handle closes, even if the process
    /// is killed outright, so nothing is left to sweep.
    fn anonymous(dir: &Path, tmp: &str, target: &str) -> Result<Staged> {
        let mut staged = Staged::create(dir, tmp, target)?;
        if cfg!(unix) {
            let handle = staged.handle.as_ref().map(fs::File::try_clone).transpose().map_err(io_err(target))?;
            fs::remove_file(&staged.file).map_err(io_err(target))?;
            (staged.reader, staged.unlinked) = (handle, true);
        }
        Ok(staged)
    }

    /// The storage path the file is for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The local file's path; `None` for one already unlinked (see [`Storage::stage`]).
    pub fn path(&self) -> Option<&Path> {
        (!self.unlinked).then_some(self.file.as_path())
    }

    /// The file, to read back from its start once written (once for an unlinked file).
    pub fn reader(&mut self) -> std::io::Result<fs::File> {
        use std::io::Seek;
        match self.reader.take() {
            Some(mut f) => {
                // The handles share one offset: the writer left it at the end.
                f.seek(std::io::SeekFrom::Start(0))?;
                Ok(f)
            }
            None if self.unlinked => Err(std::io::Error::other("the staged file was already read back")),
            None => fs::File::open(&self.file),
        }
    }

    /// The open file, to write into (once; later calls give `None`).
    pub fn take_file(&mut self) -> Option<fs::File> {
        self.handle.take()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.handle = None;
        if !self.unlinked {
            let _ = fs::remove_file(&self.file);
        }
    }
}

/// A new file `<dir>/<stem>.<pid>-<n>-<nonce>`, created exclusively: a name of its own even
/// when workers in different containers share a process id.
fn create_exclusive(dir: &Path, stem: &str) -> std::io::Result<(PathBuf, fs::File)> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let seq = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!("{stem}.{}-{seq}-{nanos:08x}", std::process::id()));
        match fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Size and SHA-256 (hex) of everything `r` yields, read 1 MiB at a time.
fn digest_reader(mut r: impl std::io::Read) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok((n, hex::encode(hasher.finalize())));
        }
        hasher.update(&buf[..k]);
        n += k as u64;
    }
}

/// A dataset folder on the local file system.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Files under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// Names of the entries of folder `dir` that `keep` accepts, sorted; empty if it is
    /// missing.
    fn entries(&self, dir: &str, keep: fn(&Path) -> bool) -> Result<Vec<String>> {
        let p = self.full(dir);
        if !p.is_dir() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(&p).map_err(io_err(&p))? {
            let entry = entry.map_err(io_err(&p))?;
            if keep(&entry.path()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Prefix of temporary files; `generate --resume` removes its own leftovers.
pub const TMP_PREFIX: &str = ".tmp-";

/// The start of the temporary names [`write_atomic`] gives `name` while writing it (it adds
/// the process and a counter): what a resumed run removes as leftovers of a killed one.
pub fn tmp_name(name: &str) -> String {
    format!("{TMP_PREFIX}{name}")
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    /// Writes through [`write_atomic`].
    fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.full(path), bytes)
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.full(path);
        fs::read(&p).map_err(io_err(p))
    }

    fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.full(path).is_file())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, Path::is_file)
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        self.entries(dir, Path::is_dir)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let p = self.full(path);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(p)(e)),
        }
    }

    /// Beside its target, named as [`write_atomic`] names its temporaries, so that
    /// [`Storage::commit`] is a rename and a killed run's leftover is swept like theirs.
    fn stage(&self, path: &str) -> Result<Staged> {
        Staged::create(&folder_of(&self.full(path)), TMP_PREFIX, path)
    }

    /// Fsyncs the staged file, renames it over its target and fsyncs the folder.
    fn commit(&self, mut staged: Staged) -> Result<()> {
        let target = self.full(&staged.target);
        let file = match staged.handle.take() {
            Some(f) => f,
            None => fs::OpenOptions::new().write(true).open(&staged.file).map_err(io_err(&target))?,
        };
        install(file, &staged.file, &target).map_err(io_err(&target))
    }

    /// Reads the file 1 MiB at a time.
    fn digest(&self, path: &str) -> Result<(u64, String)> {
        let p = self.full(path);
        let f = fs::File::open(&p).map_err(io_err(&p))?;
        digest_reader(std::io::BufReader::new(f)).map_err(io_err(p))
    }
}

/// Write `bytes` to `target` so that it survives a crash whole or not at all: writes a
/// temporary file of its own (`<dir>/.tmp-<name>.<pid>-<n>-<nonce>`, created exclusively),
/// fsyncs it, renames it over `target` and fsyncs the folder. Missing
/// parent folders are created; the file gets ordinary permissions (0644 under the usual
/// umask). Errors name `target`, the file the caller asked for, never the temporary one.
/// The one atomic write of the workspace: datasets, run configs, checkpoints' `latest`,
/// result files and leaderboards go through it.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let dir = folder_of(target);
    if target.is_dir() {
        return Err(io_err(target)(std::io::Error::other("is a folder, expected a file path")));
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A name of its own per write, created exclusively: workers of a sharded run write the
    // same file (meta/suite.json) at once, possibly as the same process id in different
    // containers, and a shared temporary name would let one rename another's half-written
    // file or find its own gone.
    let (tmp, file) = create_exclusive(&dir, &tmp_name(&name)).map_err(io_err(target))?;
    let written = (|| {
        let mut f = file;
        f.write_all(bytes)?;
        install(f, &tmp, target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(target)(e));
    }
    Ok(())
}

/// The folder a file path is in (`.` for a bare name).
fn folder_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Put the written temporary `tmp` (open as `file`) in place as `target`: fsync it, rename
/// it over `target`, and fsync the folder (best effort: not every file system allows it).
fn install(file: fs::File, tmp: &Path, target: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, target)?;
    if let Ok(d) = fs::File::open(folder_of(target)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The URL schemes object storage is reached by.
pub const STORE_SCHEMES: [&str; 3] = ["s3", "gs", "az"];

/// The object-store URL (`s3://`, `gs://`, `az://`) a dataset location holds, if it is one.
/// Dataset locations travel as paths ([`dataset_location`] keeps such URLs verbatim).
pub fn store_url(location: &Path) -> Option<&str> {
    let s = location.to_str()?;
    let (scheme, _) = s.split_once("://")?;
    STORE_SCHEMES.iter().any(|k| scheme.eq_ignore_ascii_case(k)).then_some(s)
}

/// The storage a dataset location names: a local folder, or with the `cloud` feature a
/// prefix in an object store ([`store_url`]); checks that the store answers.
pub fn open_storage(location: &Path) -> Result<std::sync::Arc<dyn Storage>> {
    let Some(url) = store_url(location) else { return Ok(std::sync::Arc::new(LocalStorage::new(location))) };
    #[cfg(feature = "cloud")]
    {
        let store = crate::object::ObjectStorage::open(url)?;
        // One listing up front, so that a wrong endpoint, bucket or credentials is an error
        // naming the URL rather than a dataset that looks empty.
        store.list("")?;
        Ok(std::sync::Arc::new(store))
    }
    #[cfg(not(feature = "cloud"))]
    Err(crate::error::PipelineError::InvalidArgument {
        field: "location".into(),
        value: url.into(),
        allowed: NO_CLOUD.into(),
    })
}

/// The storage holding the file `location` names, and the file's name in it: its folder
/// (a local folder, or an object-store prefix, opened without a request) and its last path
/// component.
fn parent_of(location: &Path) -> Result<(std::sync::Arc<dyn Storage>, String)> {
    let name = location.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = location.parent().map(Path::to_path_buf).unwrap_or_default();
    let Some(url) = store_url(location) else { return Ok((std::sync::Arc::new(LocalStorage::new(parent)), name)) };
    #[cfg(feature = "cloud")]
    {
        // `s3://bucket` names a bucket, not a file in it.
        let Some(parent_url) = parent.to_str().filter(|p| store_url(Path::new(p)).is_some()) else {
            return Err(crate::error::PipelineError::InvalidArgument {
                field: "location".into(),
                value: url.into(),
                allowed: "a file in a bucket, s3://BUCKET/KEY (gs://, az:// alike)".into(),
            });
        };
        // One client per folder for the whole process: a client resolves credentials
        // (possibly from the instance's metadata service) and owns a small runtime, and a
        // command may touch many single files (result files, shards) in a few folders.
        type Clients = std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<dyn Storage>>>;
        static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();
        let clients = CLIENTS.get_or_init(Default::default);
        if let Some(store) = clients.lock().ok().and_then(|m| m.get(parent_url).cloned()) {
            return Ok((store, name));
        }
        let store: std::sync::Arc<dyn Storage> = std::sync::Arc::new(crate::object::ObjectStorage::open(parent_url)?);
        if let Ok(mut m) = clients.lock() {
            m.insert(parent_url.to_string(), store.clone());
        }
        Ok((store, name))
    }
    #[cfg(not(feature = "cloud"))]
    Err(crate::error::PipelineError::InvalidArgument {
        field: "location".into(),
        value: url.into(),
        allowed: NO_CLOUD.into(),
    })
}

/// Read the whole file `location` names: a local path, or an object-store URL
/// (`s3://bucket/results/x.json`) in a build with the `cloud` feature. For many files in
/// one folder, [`open_storage`] the folder once instead.
pub fn read_file(location: &Path) -> Result<Vec<u8>> {
    if store_url(location).is_none() {
        return fs::read(location).map_err(io_err(location));
    }
    let (store, name) = parent_of(location)?;
    store.get(&name)
}

/// Write `bytes` to the file `location` names, atomically ([`write_atomic`] on disk; one put
/// in a store).
pub fn write_file(location: &Path, bytes: &[u8]) -> Result<()> {
    if store_url(location).is_none() {
        return write_atomic(location, bytes);
    }
    let (store, name) = parent_of(location)?;
    store.put(&name, bytes)
}

/// Whether the file `location` names exists (an error when a store cannot tell).
pub fn file_exists(location: &Path) -> Result<bool> {
    if store_url(location).is_none() {
        return Ok(location.is_file());
    }
    let (store, name) = parent_of(location)?;
    store.exists(&name)
}

/// Why a build without the `cloud` feature refuses object-store URLs, and the rebuild.
#[cfg(not(feature = "cloud"))]
const NO_CLOUD: &str = "this build has no object storage (s3://, gs://, az://); rebuild with `cargo build --release --features cloud` (or `cargo install --path . --features cloud`), or pass a local folder";

/// The value parser of dataset locations (`generate --out`, every `--data`) and of the
/// result folders, leaderboards and baselines of `bench`, `results merge` and
/// `leaderboard`: a local path,
/// a `file://` URL ([`local_path`]) or an object-store URL kept verbatim, which a build
/// without the `cloud` feature refuses naming the rebuild. Returns why a value is refused.
pub fn dataset_location(value: &str) -> std::result::Result<PathBuf, String> {
    if store_url(Path::new(value)).is_none() {
        return local_path(value);
    }
    #[cfg(feature = "cloud")]
    {
        crate::object::split_url(value)?;
        Ok(PathBuf::from(value))
    }
    #[cfg(not(feature = "cloud"))]
    Err(format!("`{value}`: {NO_CLOUD}"))
}

/// The local path a command-line location names: a path as given, or the path of a
/// `file://` URL (`file:///abs/path`, percent-escapes decoded). URLs of other schemes
/// (`s3://`, `gs://`, `az://`, `https://`, ...) are refused with what to do instead: without
/// this, `--out s3://bucket/x` silently became a local folder named `s3:`. Returns why a
/// value is refused.
pub fn local_path(value: &str) -> std::result::Result<PathBuf, String> {
    let Some((scheme, rest)) = value.split_once("://") else { return Ok(PathBuf::from(value)) };
    let is_scheme = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !is_scheme {
        return Ok(PathBuf::from(value));
    }
    if scheme.eq_ignore_ascii_case("file") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(format!("`{value}`: a file URL names an absolute path on this machine (file:///abs/path)"));
        }
        return percent_decode(path).map(PathBuf::from).ok_or_else(|| format!("`{value}`: a bad %-escape"));
    }
    Err(format!(
        "`{value}`: {scheme}:// locations are not supported here: this flag takes a local or network-mounted path (datasets, result folders and leaderboards may be s3://, gs:// or az:// URLs in a build with the `cloud` feature); mount the bucket (e.g. mountpoint-s3, gcsfuse, blobfuse2) and pass the mounted path, or copy the files to a local folder"
    ))
}

/// `s` with `%XX` escapes decoded; `None` when an escape is malformed or the result is not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_path_reads_paths_and_file_urls_and_refuses_other_urls() {
        assert_eq!(local_path("data/tiny"), Ok(PathBuf::from("data/tiny")));
        assert_eq!(local_path("/abs/x y"), Ok(PathBuf::from("/abs/x y")));
        assert_eq!(local_path("file:///abs/x%20y"), Ok(PathBuf::from("/abs/x y")));
        assert_eq!(local_path("file://localhost/abs"), Ok(PathBuf::from("/abs")));
        assert!(local_path("file://relative/path").is_err());
        assert!(local_path("file:///bad%zz").is_err());
        for url in ["s3://bucket/key", "gs://b/k", "az://c/k", "https://host/x", "S3://b"] {
            let e = local_path(url).expect_err(url);
            assert!(e.contains(url) && e.contains("not supported"), "{e}");
        }
        // Not a URL: a name with `://` after something that is not a scheme.
        assert_eq!(local_path("a b://c"), Ok(PathBuf::from("a b://c")));
    }

    #[test]
    fn dataset_locations_take_store_urls_only_in_a_cloud_build() {
        assert_eq!(dataset_location("file:///abs/d"), Ok(PathBuf::from("/abs/d")));
        assert!(dataset_location("https://host/d").is_err());
        for url in ["s3://bucket/d", "gs://bucket/d", "az://container/d"] {
            let got = dataset_location(url);
            if cfg!(feature = "cloud") {
                assert_eq!(got, Ok(PathBuf::from(url)));
            } else {
                let e = got.expect_err(url);
                assert!(e.contains(url) && e.contains("--features cloud"), "{e}");
                let e = open_storage(Path::new(url)).map(|s| s.location()).expect_err(url).to_string();
                assert!(e.contains(url) && e.contains("--features cloud"), "{e}");
            }
        }
        #[cfg(feature = "cloud")]
        assert!(dataset_location("s3:///no-bucket").expect_err("no bucket").contains("no bucket"));
    }

    /// A storage that keeps the trait's default `stage`, `commit` and `digest`.
    struct Defaults(LocalStorage);

    impl Storage for Defaults {
        fn location(&self) -> String {
            self.0.location()
        }
        fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
            self.0.put(path, bytes)
        }
        fn get(&self, path: &str) -> Result<Vec<u8>> {
            self.0.get(path)
        }
        fn exists(&self, path: &str) -> Result<bool> {
            self.0.exists(path)
        }
        fn list(&self, dir: &str) -> Result<Vec<String>> {
            self.0.list(dir)
        }
        fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
            self.0.list_dirs(dir)
        }
        fn remove(&self, path: &str) -> Result<()> {
            self.0.remove(path)
        }
    }

    #[test]
    fn staged_files_land_whole_on_commit_and_vanish_when_dropped() {
        let tmp = std::env::temp_dir().join(format!("physworld-staged-{}", std::process::id()));
        let local = LocalStorage::new(&tmp);
        let defaults = Defaults(LocalStorage::new(tmp.join("d")));
        let stores: [(&dyn Storage, &str); 2] = [(&local, ""), (&defaults, "d/")];
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for (store, root) in stores {
            store.put("pixels/a.parquet", b"old").expect("put");
            let mut staged = store.stage("pixels/a.parquet").expect("stage");
            assert_eq!(staged.target(), "pixels/a.parquet");
            let mut f = staged.take_file().expect("the file");
            assert!(staged.take_file().is_none(), "handed out once");
            f.write_all(&body[..1_000_000]).expect("write");
            // Until committed, readers see the old file.
            assert_eq!(store.get("pixels/a.parquet").expect("get"), b"old");
            f.write_all(&body[1_000_000..]).expect("write");
            drop(f);
            store.commit(staged).expect("commit");
            assert_eq!(store.get("pixels/a.parquet").expect("get"), body);
            assert_eq!(store.digest("pixels/a.parquet").expect("digest"), (body.len() as u64, sha256_hex(&body)));
            // A staged file dropped without commit leaves nothing behind, and no target (an
            // unlinked one has no name to check: see the block after the loop).
            let staged = store.stage("pixels/b.parquet").expect("stage");
            if let Some(path) = staged.path().map(Path::to_path_buf) {
                assert!(path.exists());
                drop(staged);
                assert!(!path.exists(), "{} left behind", path.display());
            }
            assert!(!store.exists("pixels/b.parquet").expect("exists"));
            assert_eq!(store.list("pixels").expect("list"), vec!["a.parquet".to_string()], "{root}");
        }
        // Locally, the staged file sits beside its target under the temporaries' prefix
        // (so a resumed run sweeps a killed one's), and commit is a rename.
        let staged = local.stage("pixels/c.parquet").expect("stage");
        let path = staged.path().expect("a local staged file keeps its name");
        assert_eq!(path.parent(), Some(tmp.join("pixels").as_path()));
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        assert!(name.starts_with(&tmp_name("c.parquet")), "{name}");
        drop(staged);
        // Elsewhere, on Unix, the staged file has no name even while it is written, so a
        // process killed outright leaves nothing in the temporary folder.
        #[cfg(unix)]
        {
            let mut staged = defaults.stage("pixels/e.parquet").expect("stage");
            assert!(staged.path().is_none());
            staged.take_file().expect("the file").write_all(b"being written").expect("write");
            let named = format!("physworld-staged-e.parquet.{}-", std::process::id());
            let left: Vec<_> = fs::read_dir(std::env::temp_dir())
                .expect("temp dir")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&named))
                .collect();
            assert!(left.is_empty(), "named in the temporary folder: {left:?}");
            defaults.commit(staged).expect("commit");
            assert_eq!(defaults.get("pixels/e.parquet").expect("get"), b"being written");
        }
        let e = local.digest("pixels/missing.parquet").expect_err("missing").to_string();
        assert!(e.contains("missing.parquet"), "{e}");
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn single_files_go_through_the_storage_of_their_folder() {
        let tmp = std::env::temp_dir().join(format!("physworld-files-{}", std::process::id()));
        let file = tmp.join("a/b/result.json");
        assert!(!file_exists(&file).expect("local"));
        write_file(&file, b"{}").expect("writes, creating folders");
        assert!(file_exists(&file).expect("local"));
        assert_eq!(read_file(&file).expect("reads"), b"{}");
        let store = LocalStorage::new(&tmp);
        assert_eq!(store.list("a").expect("list"), Vec::<String>::new());
        assert_eq!(store.list_dirs("a").expect("dirs"), vec!["b".to_string()]);
        assert_eq!(store.list("a/b").expect("list"), vec!["result.json".to_string()]);
        let e = read_file(&tmp.join("missing.json")).expect_err("missing").to_string();
        assert!(e.contains("missing.json"), "{e}");
        let _ = fs::remove_dir_all(&tmp);
        // A bucket is not a file; without the `cloud` feature no URL is.
        let e = write_file(Path::new("s3://bucket"), b"x").expect_err("a bucket").to_string();
        let why = if cfg!(feature = "cloud") { "s3://BUCKET/KEY" } else { "--features cloud" };
        assert!(e.contains("s3://bucket") && e.contains(why), "{e}");
    }
}
