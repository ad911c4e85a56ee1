//! Dataset splits.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// A split. `train`, `val` and `readout` draw from the training region of every family;
/// `test` draws from the held-out region (a parameter band or template set the family
/// names in its parameter docs), so a test episode is never a near copy of a training one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Model training.
    Train,
    /// Validation during training.
    Val,
    /// Fitting probes / readouts (Physion's readout set).
    Readout,
    /// Held-out test.
    Test,
}

impl Split {
    /// All splits.
    pub const ALL: [Split; 4] = [Split::Train, Split::Val, Split::Readout, Split::Test];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Readout => "readout",
            Split::Test => "test",
        }
    }

    /// Whether this split samples the held-out region.
    pub fn is_heldout(self) -> bool {
        self == Split::Test
    }
}

impl std::str::FromStr for Split {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        Split::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| SimError::UnknownSplit(s.to_string()))
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
