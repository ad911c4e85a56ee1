//! Errors of the benchmark harness.

/// Errors of building tasks, running models and reading or comparing results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] physworld_pipeline::PipelineError),
    /// The simulator failed (oracle).
    #[error(transparent)]
    Sim(#[from] physworld_sim::SimError),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] physworld_model::ModelError),
    /// A Candle operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// An argument holds a bad value.
    #[error("invalid {field} `{value}`: expected {allowed}")]
    Invalid {
        /// What the value is for (a flag, a field).
        field: String,
        /// The value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A checkpoint's training data overlaps the items it is asked to score.
    #[error(
        "model `{model}` was trained on {what}, which overlaps the {split} items of suite `{suite}`: refusing to score it"
    )]
    Overlap {
        /// Model id.
        model: String,
        /// What overlaps.
        what: String,
        /// Split being scored.
        split: String,
        /// Suite name.
        suite: String,
    },
    /// Results that must describe the same items do not.
    #[error("{what}: {reason}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// How they differ.
        reason: String,
    },
    /// A run must stop here (an LLM's request budget is spent, or an answer is missing
    /// offline); what was answered so far is cached, so a rerun resumes.
    #[error("{what}: {reason}")]
    Halt {
        /// What stopped.
        what: String,
        /// Why.
        reason: String,
    },
    /// A file is missing or malformed.
    #[error("{path}: {reason}")]
    File {
        /// Path.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl BenchError {
    /// Shorthand for [`BenchError::Invalid`].
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, allowed: impl Into<String>) -> Self {
        BenchError::Invalid { field: field.into(), value: value.to_string(), allowed: allowed.into() }
    }

    /// Shorthand for [`BenchError::File`].
    pub fn file(path: impl Into<std::path::PathBuf>, reason: impl std::fmt::Display) -> Self {
        BenchError::File { path: path.into(), reason: reason.to_string() }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, BenchError>;
