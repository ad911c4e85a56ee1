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
    /// An upload failed: the local folder holds work the store lacks, and is kept.
    keep: std::sync::atomic::AtomicBool,
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
            keep: std::sync::atomic::AtomicBool::new(false),
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

    /// Upload the local files that are new or changed since the last upload: the
    /// checkpoints' files, then a checksum list of the latest checkpoint
    /// (`checkpoints/<step>.sha256`, which readers key their cache on), then the latest
    /// pointer. The first upload of a `force`d run first deletes the old run's pointer, then
    /// its other files that the new run does not have. When an upload fails, the local folder
    /// is kept ([`StagedRun::kept`]).
    pub fn push(&self) -> Result<()> {
        let pushed = self.try_push();
        if pushed.is_err() {
            self.keep.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        pushed
    }

    fn try_push(&self) -> Result<()> {
        let mut files = Vec::new();
        walk_local(&self.local, &self.local, &mut files)?;
        files.retain(|f| f != LATEST);
        files.sort();
        let mut sent = self.sent.lock().map_err(|_| poisoned())?;
        let mut prune = self.prune.lock().map_err(|_| poisoned())?;
        if *prune {
            // What `--force` deletes on disk: the checkpoints, the metrics and the config;
            // other files under the prefix are not the run's. The pointer goes first, so
            // that it never names a checkpoint being deleted or rewritten.
            self.store.remove(LATEST)?;
            let mut old: Vec<String> = RUN_FILES.iter().map(|f| f.to_string()).collect();
            walk_store(&*self.store, "checkpoints", &mut old)?;
            for f in old.iter().filter(|f| !files.contains(f)) {
                self.store.remove(f)?;
            }
            sent.clear();
            *prune = false;
        }
        let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
            let sum = sha256_hex(bytes);
            if sent.get(name) != Some(&sum) {
                self.store.put(name, bytes)?;
                sent.insert(name.to_string(), sum);
            }
            Ok(())
        };
        for f in &files {
            let path = self.local.join(f);
            put(f, &std::fs::read(&path).map_err(io(&path))?)?;
        }
        let latest = self.local.join(LATEST);
        if latest.is_file() {
            let pointer = std::fs::read(&latest).map_err(io(&latest))?;
            let step = String::from_utf8_lossy(&pointer).trim().to_string();
            let mut sums = String::new();
            for f in files.iter().filter(|f| f.starts_with(&format!("checkpoints/{step}/"))) {
                let path = self.local.join(f);
                let name = f.rsplit('/').next().unwrap_or(f);
                sums.push_str(&format!("{}  {name}\n", sha256_hex(&std::fs::read(&path).map_err(io(&path))?)));
            }
            put(&format!("checkpoints/{step}.sha256"), sums.as_bytes())?;
            put(LATEST, &pointer)?;
        }
        Ok(())
    }

    /// The local folder, when an upload failed and it was kept (it holds checkpoints the
    /// store lacks).
    pub fn kept(&self) -> Option<&Path> {
        self.keep.load(std::sync::atomic::Ordering::SeqCst).then_some(self.local.as_path())
    }

    /// `text` with the local folder's path replaced by the store URL (for messages).
    pub fn in_store_terms(&self, text: &str) -> String {
        text.replace(&self.local.display().to_string(), &self.url)
    }
}

impl Drop for StagedRun {
    fn drop(&mut self) {
        if self.kept().is_none() {
            let _ = std::fs::remove_dir_all(&self.local);
        }
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
    // The pointer is read once: a run still training may move it meanwhile, and the copy
    // must be of the one checkpoint it named (whose files were all uploaded before it).
    let pointer = store.get(LATEST)?;
    let step = String::from_utf8_lossy(&pointer).trim().to_string();
    let dir = format!("checkpoints/{step}");
    let mut files = vec!["config.json".to_string()];
    files.extend(store.list(&dir)?.into_iter().map(|f| format!("{dir}/{f}")));
    if files.len() == 1 {
        return Err(ModelError::Checkpoint {
            path: PathBuf::from(format!("{}/{dir}", store.location())),
            reason: format!("`{LATEST}` names {step}, which holds no files"),
        });
    }
    let sums_name = format!("{dir}.sha256");
    let sums = if store.exists(&sums_name)? { Some(store.get(&sums_name)?) } else { None };
    let config = store.get("config.json")?;
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("physworld/runs");
    // The key: the URL, the configuration, the checkpoint's name and its files' checksums
    // (uploaded beside it; computed from the download for a run uploaded without them).
    let key = |sums: &[u8]| {
        let mut k = url.to_string_lossy().into_owned();
        for part in [&config[..], step.as_bytes(), sums] {
            k.push_str(&sha256_hex(part));
        }
        cache.join(&sha256_hex(k.as_bytes())[..24])
    };
    if let Some(s) = &sums
        && key(s).join(LATEST).is_file()
    {
        return Ok(key(s));
    }
    // Downloaded into a folder of this process's own, then renamed into place: workers
    // fetching the same run at once each download it, and the first rename wins.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = cache.join(format!(".tmp-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let fetched = download(&*store, &files, &tmp).and_then(|got| {
        let latest = tmp.join(LATEST);
        std::fs::write(&latest, &pointer).map_err(io(&latest))?;
        Ok(got)
    });
    let got = match fetched {
        Ok(got) => got,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let dir = match &sums {
        Some(s) => key(s),
        None => {
            let listed: String = got
                .iter()
                .filter(|(f, _)| f.starts_with("checkpoints/"))
                .map(|(f, sum)| format!("{sum}  {}\n", f.rsplit('/').next().unwrap_or(f)))
                .collect();
            key(listed.as_bytes())
        }
    };
    if dir.join(LATEST).is_file() || std::fs::rename(&tmp, &dir).is_err() {
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
