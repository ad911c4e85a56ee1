//! Errors of the model crate.

/// Errors of model building, training and checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A Candle operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] physworld_pipeline::PipelineError),
    /// A configuration field holds a bad value.
    #[error("invalid `{field}`: {value} (allowed: {allowed})")]
    Config {
        /// Dotted field path.
        field: String,
        /// The value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// Training diverged: the loss or the gradients stopped being finite.
    #[error("training diverged at step {step}: {what} is {value}; the last good checkpoint is kept")]
    Diverged {
        /// Step.
        step: u64,
        /// What (loss or grad norm).
        what: String,
        /// Its value.
        value: f32,
    },
    /// File input/output.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A checkpoint is missing or does not fit.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// Path.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output folder already holds earlier work that the command would replace.
    #[error("{path} already holds a run ({what}): {hint}")]
    Exists {
        /// Folder.
        path: std::path::PathBuf,
        /// What is there.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// The metrics plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// The requested device is not available in this build.
    #[error("device `{0}` is not available: {1}")]
    Device(String, String),
}

impl ModelError {
    /// Shorthand for [`ModelError::Config`].
    pub fn config(field: impl Into<String>, value: impl std::fmt::Display, allowed: impl Into<String>) -> Self {
        ModelError::Config { field: field.into(), value: value.to_string(), allowed: allowed.into() }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
