//! Training runs in object storage (`cloud` builds): `train --out s3://BUCKET/PREFIX` and
//! `jepa:s3://BUCKET/PREFIX`.
//!
//! Candle reads and writes checkpoints as local files, so a run in a store is worked on
//! through a local copy:
//! - **Training** ([`StagedRun`]) copies the run's `config.json`, `metrics.jsonl` and latest
//!   checkpoint from the store into a folder of its own, trains there, and uploads what
//!   changed after every checkpoint: the checkpoint's files first, then `metrics.jsonl`,
//!   `config.json` and the plot, and `checkpoints/latest` last, so a reader of the store
//!   never finds `latest` naming a checkpoint that is not all there. Each put is atomic. A
//!   run killed between checkpoints resumes from the last one in the store, as on disk.
//!   `--force` replaces the run in the store: the new run's first upload deletes the old
//!   run's files (its checkpoints, metrics and config, as on disk), so a refused start
//!   deletes nothing.
//! - **Reading** ([`fetch`]) copies `config.json` and the latest checkpoint into the
//!   user's cache (`$XDG_CACHE_HOME` or `~/.cache`, under `physworld/runs/`), in a folder
//!   named by a hash of the URL, the configuration and the checkpoint's state, so that a
//!   rerun, or another worker on the same machine, downloads nothing twice, and a run
//!   retrained in place is fetched again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use physworld_pipeline::{Storage, sha256_hex};

use crate::checkpoint::io;
use crate::error::{ModelError, Result};

/// The run-level files a run is read by (besides its latest checkpoint).
const RUN_FILES: [&str; 2] = ["config.json", "metrics.jsonl"];
/// The pointer to the latest checkpoint, relative to the run.
const LATEST: &str = "checkpoints/latest";

/// Every file under `dir` of a local folder, as `/`-separated paths relative to `root`,
/// sorted; unfinished writes (`.tmp-*`) are skipped.
fn walk_local(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk_local(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Every file under `dir` of a store, as paths relative to the store's root.
fn walk_store(store: &dyn Storage, dir: &str, out: &mut Vec<String>) -> Result<()> {
    let join = |name: &str| if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
    for name in store.list(dir)? {
        out.push(join(&name));
    }
    for sub in store.list_dirs(dir)? {
        walk_store(store, &join(&sub), out)?;
    }
    Ok(())
}

/// The files of the run in `store` that a reader or a resumed run needs: the run-level
/// files that exist, the latest pointer and the checkpoint it names (its files).
fn needed(store: &dyn Storage) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for f in RUN_FILES {
        if store.exists(f)? {
            files.push(f.to_string());
        }
    }
    if store.exists(LATEST)? {
        let name = String::from_utf8_lossy(&store.get(LATEST)?).trim().to_string();
        let dir = format!("checkpoints/{name}");
        let inside = store.list(&dir)?;
        if inside.is_empty() {
            return Err(ModelError::Checkpoint {
                path: PathBuf::from(format!("{}/{dir}", store.location())),
                reason: format!("`{LATEST}` names {name}, which holds no files"),
            });
        }
        files.extend(inside.into_iter().map(|f| format!("{dir}/{f}")));
        files.push(LATEST.to_string());
    }
    Ok(files)
}

/// Download `files` of `store` into `local`; returns each file's SHA-256.
fn download(store: &dyn Storage, files: &[String], local: &Path) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for f in files {
        let bytes = store.get(f)?;
        let path = local.join(f);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &bytes).map_err(io(&path))?;
        sums.insert(f.clone(), sha256_hex(&bytes));
    }
    Ok(sums)
}

/// A run in an object store, trained in a local folder of its own and uploaded after every
/// checkpoint ([module docs](self)). The local folder is removed on drop.
pub struct StagedRun {
    url: String,
    store: Arc<dyn Storage>,
    local: PathBuf,
    /// SHA-256 of each file as the store holds it (downloaded or uploaded by this run).
    sent: Mutex<BTreeMap<String, String>>,
    /// Delete the store's other files at the first upload (`--force`).
    prune: Mutex<bool>,
}

impl std::fmt::Debug for StagedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedRun").field("url", &self.url).field("local", &self.local).finish_non_exhaustive()
    }
}

impl StagedRun {
    /// Stage the run at `url` for training: a fresh local folder holding the store's
    /// run-level files and latest checkpoint (nothing with `force`, whose first upload then
    /// replaces the store's run).
    pub fn open(url: &Path, force: bool) -> Result<StagedRun> {
        let store = physworld_pipeline::open_storage(url)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let key = &sha256_hex(url.to_string_lossy().as_bytes())[..16];
        let local = std::env::temp_dir().join(format!("physworld-run-{key}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&local).map_err(io(&local))?;
        let run = StagedRun {
            url: url.to_string_lossy().into_owned(),
            store,
            local,
            sent: Mutex::new(BTreeMap::new()),
            prune: Mutex::new(force),
        };
        if !force {
            let files = needed(&*run.store)?;
            let sums = download(&*run.store, &files, &run.local)?;
            *run.sent.lock().map_err(|_| poisoned())? = sums;
        }
        Ok(run)
    }

    /// The local folder to train in.
    pub fn local(&self) -> &Path {
        &self.local
    }

    /// The store URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Upload the local files that are new or changed since the last upload (the latest
    /// pointer last); the first upload of a `force`d run first deletes the store's files
    /// that the new run does not have.
    pub fn push(&self) -> Result<()> {
        let mut files = Vec::new();
        walk_local(&self.local, &self.local, &mut files)?;
        files.sort();
        // The pointer goes last, so that it never names a checkpoint not yet uploaded.
        files.sort_by_key(|f| f == LATEST);
        let mut sent = self.sent.lock().map_err(|_| poisoned())?;
        let mut prune = self.prune.lock().map_err(|_| poisoned())?;
        if *prune {
            // What `--force` deletes on disk: the checkpoints, the metrics and the config;
            // other files under the prefix are not the run's.
            let mut old: Vec<String> = RUN_FILES.iter().map(|f| f.to_string()).collect();
            walk_store(&*self.store, "checkpoints", &mut old)?;
            for f in old.iter().filter(|f| !files.contains(f)) {
                self.store.remove(f)?;
            }
            *prune = false;
        }
        for f in &files {
            let path = self.local.join(f);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let sum = sha256_hex(&bytes);
            if sent.get(f) != Some(&sum) {
                self.store.put(f, &bytes)?;
                sent.insert(f.clone(), sum);
            }
        }
        Ok(())
    }

    /// `text` with the local folder's path replaced by the store URL (for messages).
    pub fn in_store_terms(&self, text: &str) -> String {
        text.replace(&self.local.display().to_string(), &self.url)
    }
}

impl Drop for StagedRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.local);
    }
}

fn poisoned() -> ModelError {
    ModelError::config("run upload", "a poisoned lock", "an upload that did not panic")
}

/// The local copy of the run at `url` for reading (`jepa:URL`): its `config.json` and latest
/// checkpoint, fetched once into the user's cache ([module docs](self)). Returns the
/// folder, laid out as a run.
pub fn fetch(url: &Path) -> Result<PathBuf> {
    let store = physworld_pipeline::open_storage(url)?;
    if !store.exists("config.json")? || !store.exists(LATEST)? {
        return Err(ModelError::Checkpoint {
            path: url.to_path_buf(),
            reason: "no training run here (config.json and checkpoints/latest are written by `physworld train --out`)"
                .into(),
        });
    }
    let files: Vec<String> = needed(&*store)?.into_iter().filter(|f| f != "metrics.jsonl").collect();
    let config = store.get("config.json")?;
    let latest = String::from_utf8_lossy(&store.get(LATEST)?).trim().to_string();
    let state = store.get(&format!("checkpoints/{latest}/state.json"))?;
    let mut key = url.to_string_lossy().into_owned().into_bytes();
    for part in [&config, latest.as_bytes().to_vec().as_ref(), &state] {
        key.extend_from_slice(&sha256_hex(part).into_bytes());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("physworld/runs");
    let dir = cache.join(&sha256_hex(&key)[..24]);
    if dir.join(LATEST).is_file() {
        return Ok(dir);
    }
    // Downloaded into a folder of this process's own, then renamed into place: workers
    // fetching the same run at once each download it, and the first rename wins.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = cache.join(format!(".tmp-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let fetched = download(&*store, &files, &tmp);
    if let Err(e) = fetched {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(LATEST).is_file() {
            return Err(ModelError::Checkpoint {
                path: dir,
                reason: format!("could not place the copy of {}", url.display()),
            });
        }
    }
    Ok(dir)
}
