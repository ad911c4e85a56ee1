//! Parameter ranges.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, SimError};

/// A closed interval `[min, max]` of a real parameter; written `[min, max]` or as a single
/// number `x` (meaning `[x, x]`) in configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl Range {
    /// `[min, max]`.
    pub const fn new(min: f32, max: f32) -> Self {
        Range { min, max }
    }

    /// Check finiteness, order and the allowed span `[lo, hi]`.
    pub fn validate(&self, field: &str, lo: f32, hi: f32) -> Result<()> {
        let shown = format!("[{}, {}]", self.min, self.max);
        if !(self.min.is_finite() && self.max.is_finite()) {
            return Err(SimError::invalid(field, shown, "finite numbers"));
        }
        if self.min > self.max {
            return Err(SimError::invalid(field, shown, "a range [min, max] with min <= max"));
        }
        if self.min < lo || self.max > hi {
            return Err(SimError::invalid(field, shown, format!("a range within [{lo}, {hi}]")));
        }
        Ok(())
    }
}

/// An inclusive integer range `[min, max]`; written `[min, max]` or `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    /// Lower bound.
    pub min: u32,
    /// Upper bound.
    pub max: u32,
}

impl IntRange {
    /// `[min, max]`.
    pub const fn new(min: u32, max: u32) -> Self {
        IntRange { min, max }
    }

    /// Check order and the allowed span.
    pub fn validate(&self, field: &str, lo: u32, hi: u32) -> Result<()> {
        let shown = format!("[{}, {}]", self.min, self.max);
        if self.min > self.max {
            return Err(SimError::invalid(field, shown, "a range [min, max] with min <= max"));
        }
        if self.min < lo || self.max > hi {
            return Err(SimError::invalid(field, shown, format!("integers within [{lo}, {hi}]")));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a number or a range [min, max]")]
enum Either<T> {
    One(T),
    Two([T; 2]),
}

impl Serialize for Range {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        [self.min, self.max].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Either::<f32>::deserialize(d)? {
            Either::One(x) => Range::new(x, x),
            Either::Two([a, b]) => Range::new(a, b),
        })
    }
}

impl Serialize for IntRange {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        [self.min, self.max].serialize(s)
    }
}

impl<'de> Deserialize<'de> for IntRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Either::<u32>::deserialize(d)? {
            Either::One(x) => IntRange::new(x, x),
            Either::Two([a, b]) => IntRange::new(a, b),
        })
    }
}
