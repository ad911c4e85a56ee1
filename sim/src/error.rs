//! Errors and rejections.

use std::fmt;

/// Errors of the simulator: bad input, never a physics outcome.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A parameter or scene field holds a value outside what is allowed.
    #[error("invalid value for `{field}`: {value} (allowed: {allowed})")]
    InvalidParam {
        /// Dotted path of the field, e.g. `objects[2].mass` or `dominoes.count`.
        field: String,
        /// The value that was given, as text.
        value: String,
        /// What the field accepts.
        allowed: String,
    },
    /// A scenario family name that is not registered.
    #[error("unknown scenario family `{name}` (known: {known})")]
    UnknownFamily {
        /// The name that was asked for.
        name: String,
        /// Comma-separated list of known families, then `; did you mean …?` for a near miss.
        known: String,
    },
    /// A parameter name that the family does not have.
    #[error("unknown parameter `{field}` = {value} (known: {known})")]
    UnknownParam {
        /// `<family>.<name>` as given.
        field: String,
        /// The value that was given, as text.
        value: String,
        /// Comma-separated list of the family's parameters, then `; did you mean …?`.
        known: String,
    },
    /// An unknown split name.
    #[error("unknown split `{0}` (allowed: train, val, readout, test)")]
    UnknownSplit(String),
    /// Every attempt to draw a healthy episode was rejected.
    #[error("family `{family}`: all {attempts} attempts were rejected; last reason: {last}")]
    AttemptsExhausted {
        /// Family name.
        family: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last rejection.
        last: Rejection,
    },
    /// A sample could not be written as JSON (for its content digest).
    #[error("writing a sample as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl SimError {
    /// [`SimError::UnknownFamily`] for `name`.
    pub fn unknown_family(name: &str) -> Self {
        SimError::UnknownFamily {
            name: name.to_string(),
            known: format!(
                "{}{}",
                crate::families::NAMES.join(", "),
                crate::suggest::did_you_mean(name, crate::families::NAMES.iter().copied())
            ),
        }
    }

    /// Shorthand for [`SimError::InvalidParam`].
    pub fn invalid(field: impl Into<String>, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        SimError::InvalidParam { field: field.into(), value: value.to_string(), allowed: allowed.into() }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, SimError>;

/// Why an episode was rejected by a health check or a family's own acceptance test.
///
/// A rejected episode is never returned as data: the generator retries with the next attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// Stable machine-readable reason.
    pub reason: RejectReason,
    /// Recorded frame at which it was detected.
    pub frame: u32,
    /// Human-readable detail (object, value, bound).
    pub detail: String,
}

/// The kinds of rejection, counted and reported by the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// A position, rotation or velocity became NaN or infinite.
    NonFinite,
    /// Total mechanical energy grew past the bound (see `HealthConfig`).
    EnergyBlowUp,
    /// An object moved faster than the speed bound.
    SpeedBound,
    /// Two colliders penetrated deeper than the bound.
    Interpenetration,
    /// The family's own acceptance test failed (e.g. a VoE violation could not be hidden
    /// behind the occluder, or no valid launch action was found).
    Family,
    /// Rendered, an occluded VoE violation showed: the violating object had pixels in the
    /// frames around the violation (`generate --modality pixels` only).
    Pixels,
}

impl RejectReason {
    /// All reasons, in report order.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::NonFinite,
        RejectReason::EnergyBlowUp,
        RejectReason::SpeedBound,
        RejectReason::Interpenetration,
        RejectReason::Family,
        RejectReason::Pixels,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NonFinite => "non-finite",
            RejectReason::EnergyBlowUp => "energy-blow-up",
            RejectReason::SpeedBound => "speed-bound",
            RejectReason::Interpenetration => "interpenetration",
            RejectReason::Family => "family",
            RejectReason::Pixels => "pixels",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at frame {}: {}", self.reason.as_str(), self.frame, self.detail)
    }
}

impl Rejection {
    /// A family-level rejection.
    pub fn family(detail: impl Into<String>) -> Self {
        Rejection { reason: RejectReason::Family, frame: 0, detail: detail.into() }
    }
}
