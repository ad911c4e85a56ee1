//! # physworld-pipeline
//!
//! Datasets of physworld episodes in the Hugging Face layout, written fast,
//! deterministically and atomically:
//!
//! - [`Suite`]: the suite file (families, parameters, splits, seed), validated with errors
//!   that name file, key and line.
//! - [`Layout`]: which file every sample, episode and frame lands in, known up front.
//! - [`generate`]: simulate and write shards (resumable, `--shard I/N` for clusters);
//!   [`finalize`] merges per-shard metadata into `meta/info.json`, `meta/stats.json`
//!   and the dataset card; [`inspect`] checks a dataset.
//! - [`Dataset`]: episodes by index and a seeded stream of training windows.
//!
//! The format is documented in `datasets/README.md`.

mod error;
mod finalize;
mod generate;
mod inspect;
mod layout;
#[cfg(feature = "cloud")]
mod object;
mod parquet_io;
pub mod pixels;
mod reader;
mod record;
mod schema;
pub mod stats;
mod storage;
mod suite;

pub use error::{PipelineError, Result};
pub use finalize::{CARD_PATH, INFO_PATH, Info, STATS_PATH, SplitInfo, finalize};
pub use generate::{
    Balance, FileEntry, GenerateOptions, GenerateReport, Progress, SUITE_PATH, ShardManifest, StageSeconds,
    count_labels, generate, merge_balances, verify_shard,
};
pub use inspect::{InspectReport, SplitReport, inspect};
pub use layout::{Layout, ShardId, SplitLayout, WorkerShard};
#[cfg(feature = "cloud")]
pub use object::ObjectStorage;
pub use parquet_io::{ROW_GROUP_ROWS, ZSTD_LEVEL, decode, encode, encode_batches, writer_properties};
pub use reader::{Dataset, EpisodeFrames, EpisodeMeta, SCENE_KINDS, SceneBox, WindowSpec, WindowStream, load_file};
pub use record::{
    RECORD_EPISODES, RECORD_FRAMES, RECORD_META, RECORD_SPLIT, RecordedEpisode, RecordingReport, check_recording_dir,
    inspect_recording, is_recording, write_recording,
};
pub use schema::{
    FORMAT_VERSION, FRAMES_BATCH_ROWS, OBJECT_FLOAT_FEATURES, Placed, columns, episodes_batch, episodes_schema,
    frames_batch, frames_batches, frames_schema,
};
pub use storage::{
    LocalStorage, STORE_SCHEMES, Staged, Storage, dataset_location, file_exists, local_path, open_storage, read_file,
    sha256_hex, store_url, write_atomic, write_file,
};
pub use suite::{
    DEFAULT_MAX_OBJECTS, DEFAULT_SAMPLES_PER_FILE, Observability, SplitSpec, Suite, SuiteFamily, SuiteMeta,
};
