//! Errors of the dataset pipeline.

use std::path::PathBuf;

/// Errors of the pipeline. Every variant names the file (and where it can, the key and
/// line) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A suite file is malformed or holds a bad value.
    #[error("{file}: {message}")]
    Suite {
        /// The suite file.
        file: PathBuf,
        /// What is wrong, with the key and line where known.
        message: String,
    },
    /// The simulator refused (bad family parameters) or gave up on an episode.
    #[error(transparent)]
    Sim(#[from] physworld_sim::SimError),
    /// A Parquet file could not be written or read.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The parquet/arrow message.
        message: String,
    },
    /// A file is truncated, corrupt, or does not match its manifest.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// Shards are missing (finalize before every worker finished).
    #[error(
        "{dir}: {missing} of {total} shards are missing, e.g. {example}; an interrupted run continues with `physworld generate --suite FILE --out {dir} --resume` (adding its `--shard I/N` when it was one worker of several), then `physworld finalize --data {dir}` once every shard is there"
    )]
    Incomplete {
        /// Dataset directory.
        dir: PathBuf,
        /// Missing count.
        missing: usize,
        /// Total shards.
        total: usize,
        /// One missing shard's name.
        example: String,
    },
    /// Invalid argument (shard spec, episode count, ...).
    #[error("invalid `{field}`: {value} (allowed: {allowed})")]
    InvalidArgument {
        /// The argument.
        field: String,
        /// Its value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The run was stopped from outside ([`crate::GenerateOptions::stop`]).
    #[error("{dir}: stopped before every shard was written; finished shards are kept")]
    Interrupted {
        /// Dataset folder.
        dir: String,
    },
    /// An episode does not fit the dataset's layout (e.g. more objects than slots).
    #[error("{0}")]
    Layout(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, PipelineError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PipelineError {
    let path = path.into();
    move |source| PipelineError::Io { path, source }
}

pub(crate) fn pq_err(path: impl Into<PathBuf>) -> impl FnOnce(parquet::errors::ParquetError) -> PipelineError {
    let path = path.into();
    move |e| PipelineError::Parquet { path, message: e.to_string() }
}
