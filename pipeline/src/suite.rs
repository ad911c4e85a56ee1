//! Suite files: the one place that defines a dataset (families, parameters, splits, seed).
//!
//! ```toml
//! [suite]
//! name = "tiny"
//! seed = 0
//! samples_per_file = 16   # fixes which file every sample lands in
//! max_objects = 12        # object slots per frame (padded, with a presence mask)
//!
//! [splits]                # samples per split (a VoE sample is a quadruplet: 4 episodes)
//! train = 32
//! val = 8
//! readout = 8
//! test = 8
//!
//! [observation]           # optional: what every model observes
//! hidden_properties = false   # mass, friction, restitution (default: observed by none)
//!
//! [hidden_test]           # optional: a private test set drawn with its own seed
//! seed = 987654321
//! samples = 8
//!
//! [[family]]
//! name = "drop"
//! params = { count = [2, 3] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use physworld_sim::{Family, Split};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result, io_err};

/// Default samples per file when a suite does not say. See [`SuiteMeta::samples_per_file`].
pub const DEFAULT_SAMPLES_PER_FILE: u64 = 256;
/// Default object slots. See [`SuiteMeta::max_objects`].
pub const DEFAULT_MAX_OBJECTS: u32 = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    suite: RawMeta,
    splits: RawSplits,
    hidden_test: Option<RawHidden>,
    #[serde(default)]
    observation: Observability,
    camera: Option<RawCamera>,
    family: Vec<RawFamily>,
}

/// The `[camera]` table: camera parameters for every family (a family's own `params` win).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    /// The vertical field of view's range, degrees: each family's `fov_y_deg`.
    fov_y_deg: Option<toml::Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: toml::Spanned<String>,
    #[serde(default)]
    description: String,
    seed: u64,
    samples_per_file: Option<toml::Spanned<u64>>,
    max_objects: Option<toml::Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplits {
    train: toml::Spanned<u64>,
    val: toml::Spanned<u64>,
    readout: toml::Spanned<u64>,
    test: toml::Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHidden {
    seed: u64,
    samples: toml::Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    name: toml::Spanned<String>,
    #[serde(default)]
    params: BTreeMap<toml::Spanned<String>, toml::Value>,
    #[serde(default)]
    visible_in_single_frames: bool,
}

/// The suite's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMeta {
    /// Suite name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Suite seed (episode seeds hash it with family, split, index and attempt).
    pub seed: u64,
    /// Samples per Parquet file; fixes the file of every sample. Default
    /// [`DEFAULT_SAMPLES_PER_FILE`].
    pub samples_per_file: u64,
    /// Object slots per frame. Default [`DEFAULT_MAX_OBJECTS`].
    pub max_objects: u32,
}

/// One split of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Name used in file names (`train`, `val`, `readout`, `test`, `hidden_test`).
    pub name: String,
    /// The simulator split it draws from (`hidden_test` draws from `test`'s held-out region).
    pub sim_split: Split,
    /// Suite seed used for its episodes.
    pub seed: u64,
    /// Samples in it.
    pub samples: u64,
}

/// A family of the suite with its resolved parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteFamily {
    /// Family name.
    pub name: String,
    /// Every parameter, defaults filled in.
    pub params: Value,
    /// Whether the family's violation or outcome is meant to be visible in single frames, so
    /// that `physworld validate-suite` does not fail it when a heuristic beats chance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub visible_in_single_frames: bool,
}

/// What every model scored on the suite observes, beyond the visible objects' states and the
/// static scene (the `[observation]` table). Recorded in the dataset's suite, so in its hash,
/// every item hash and every task's content hash: results under different settings never
/// share a leaderboard column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Whether the objects' hidden properties (mass, friction, restitution) are observed, by
    /// every adapter alike. Default `false`: models must infer them from motion.
    #[serde(default)]
    pub hidden_properties: bool,
}

impl Observability {
    /// Whether this is the default setting (not written into the suite's canonical JSON, so
    /// suites without an `[observation]` table keep their hashes).
    pub fn is_default(&self) -> bool {
        *self == Observability::default()
    }

    /// A short name for reports: `visible-state` or `visible-state+hidden-properties`.
    pub fn name(&self) -> &'static str {
        if self.hidden_properties { "visible-state+hidden-properties" } else { "visible-state" }
    }
}

/// A resolved, validated suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// Header.
    pub suite: SuiteMeta,
    /// Splits in file order.
    pub splits: Vec<SplitSpec>,
    /// Families, in the round-robin order samples are assigned to them.
    pub families: Vec<SuiteFamily>,
    /// What models observe.
    #[serde(default, skip_serializing_if = "Observability::is_default")]
    pub observation: Observability,
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Suite {
    /// Read and validate a suite file. Errors name the file, the key and the line.
    pub fn load(path: &Path) -> Result<Suite> {
        if path.is_dir() {
            let hint = if path.join(crate::generate::SUITE_PATH).is_file() {
                " (it is a generated dataset; its suite file is the .toml it was generated from)"
            } else {
                ""
            };
            return Err(PipelineError::InvalidArgument {
                field: "--suite".into(),
                value: path.display().to_string(),
                allowed: format!("a suite file (.toml, e.g. datasets/tiny.toml), not a folder{hint}"),
            });
        }
        let src = std::fs::read_to_string(path).map_err(io_err(path))?;
        Suite::parse(&src, path)
    }

    /// Parse suite text (`file` is used in error messages).
    pub fn parse(src: &str, file: &Path) -> Result<Suite> {
        let err = |message: String| PipelineError::Suite { file: PathBuf::from(file), message };
        let raw: RawSuite = toml::from_str(src).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let at = |span: std::ops::Range<usize>| format!("line {}", line_of(src, span.start));
        let positive = |key: &str, v: &toml::Spanned<u64>| {
            if *v.get_ref() == 0 {
                Err(err(format!("`{key}` = 0 at {}: expected a positive integer", at(v.span()))))
            } else {
                Ok(*v.get_ref())
            }
        };
        let samples_per_file = match &raw.suite.samples_per_file {
            Some(v) => positive("suite.samples_per_file", v)?,
            None => DEFAULT_SAMPLES_PER_FILE,
        };
        let max_objects = match &raw.suite.max_objects {
            Some(v) if !(1..=256).contains(v.get_ref()) => {
                return Err(err(format!(
                    "`suite.max_objects` = {} at {}: expected an integer in 1..=256",
                    v.get_ref(),
                    at(v.span())
                )));
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_MAX_OBJECTS,
        };
        let name = raw.suite.name.get_ref().clone();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(err(format!(
                "`suite.name` = {name:?} at {}: expected letters, digits, '-' or '_'",
                at(raw.suite.name.span())
            )));
        }
        let mut splits = Vec::new();
        for (key, split, v) in [
            ("train", Split::Train, &raw.splits.train),
            ("val", Split::Val, &raw.splits.val),
            ("readout", Split::Readout, &raw.splits.readout),
            ("test", Split::Test, &raw.splits.test),
        ] {
            if *v.get_ref() > 1_000_000_000 {
                return Err(err(format!("`splits.{key}` = {} at {}: expected at most 1e9", v.get_ref(), at(v.span()))));
            }
            splits.push(SplitSpec { name: key.into(), sim_split: split, seed: raw.suite.seed, samples: *v.get_ref() });
        }
        if let Some(h) = &raw.hidden_test {
            let samples = positive("hidden_test.samples", &h.samples)?;
            if h.seed == raw.suite.seed {
                return Err(err(format!(
                    "`hidden_test.seed` at {}: must differ from `suite.seed` (it is the private seed)",
                    at(h.samples.span())
                )));
            }
            splits.push(SplitSpec { name: "hidden_test".into(), sim_split: Split::Test, seed: h.seed, samples });
        }
        if raw.family.is_empty() {
            return Err(err("no `[[family]]` table: a suite needs at least one family".into()));
        }
        let mut families = Vec::new();
        for f in &raw.family {
            let fname = f.name.get_ref();
            let mut overrides = serde_json::Map::new();
            for (k, v) in &f.params {
                let value = serde_json::to_value(v).map_err(|e| err(format!("`{}`: {e}", k.get_ref())))?;
                overrides.insert(k.get_ref().clone(), value);
            }
            // The suite's `[camera]` table, unless the family sets its own.
            let camera_fov =
                raw.camera.as_ref().and_then(|c| c.fov_y_deg.as_ref()).filter(|_| !overrides.contains_key("fov_y_deg"));
            if let Some(v) = camera_fov {
                let value = serde_json::to_value(v.get_ref()).map_err(|e| err(format!("`camera.fov_y_deg`: {e}")))?;
                overrides.insert("fov_y_deg".into(), value);
            }
            let family = Family::with_overrides(fname, &overrides).map_err(|e| {
                if let (Some(v), physworld_sim::SimError::InvalidParam { field, .. }) = (camera_fov, &e)
                    && field.ends_with(".fov_y_deg")
                {
                    return err(format!("`camera.fov_y_deg` ({}): {e}", at(v.span())));
                }
                // Point at the parameter's line when the error names one.
                let line = match &e {
                    physworld_sim::SimError::InvalidParam { field, .. }
                    | physworld_sim::SimError::UnknownParam { field, .. } => f
                        .params
                        .keys()
                        .find(|k| {
                            field.ends_with(&format!(".{}", k.get_ref()))
                                || field.contains(&format!(".{}[", k.get_ref()))
                        })
                        .map(|k| at(k.span())),
                    _ => None,
                }
                .unwrap_or_else(|| at(f.name.span()));
                err(format!("family `{fname}` ({line}): {e}"))
            })?;
            families.push(SuiteFamily {
                name: fname.clone(),
                params: family.params_json(),
                visible_in_single_frames: f.visible_in_single_frames,
            });
        }
        let suite = Suite {
            suite: SuiteMeta {
                name,
                description: raw.suite.description,
                seed: raw.suite.seed,
                samples_per_file,
                max_objects,
            },
            splits,
            families,
            observation: raw.observation,
        };
        Ok(suite)
    }

    /// The families as simulator objects (already validated at load).
    pub fn sim_families(&self) -> Result<Vec<Family>> {
        self.families
            .iter()
            .map(|f| {
                let map = f.params.as_object().cloned().unwrap_or_default();
                Ok(Family::with_overrides(&f.name, &map)?)
            })
            .collect()
    }

    /// Apply `FAMILY.KEY=VALUE` (the `generate --set` override) to every family of that
    /// name: `VALUE` is read as a TOML value (`2`, `[4, 5]`, `"within"`; a bare word is a
    /// string), merged over the family's parameters and validated as the suite file's are.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let bad = |allowed: String| PipelineError::InvalidArgument {
            field: "--set".into(),
            value: assignment.to_string(),
            allowed,
        };
        let Some((path, raw)) = assignment.split_once('=') else {
            return Err(bad("FAMILY.PARAM=VALUE, e.g. launch.fold=2".into()));
        };
        let Some((family, key)) = path.trim().split_once('.') else {
            return Err(bad("FAMILY.PARAM=VALUE, e.g. launch.fold=2".into()));
        };
        let raw = raw.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(t) => t.get("v").and_then(|v| serde_json::to_value(v).ok()).unwrap_or(Value::Null),
            Err(_) => Value::String(raw.to_string()),
        };
        let names: Vec<String> = self.families.iter().map(|f| f.name.clone()).collect();
        let mut found = false;
        for f in self.families.iter_mut().filter(|f| f.name == family) {
            let mut params = f.params.as_object().cloned().unwrap_or_default();
            params.insert(key.to_string(), value.clone());
            let fam = Family::with_overrides(family, &params).map_err(|e| bad(e.to_string()))?;
            f.params = fam.params_json();
            found = true;
        }
        if !found {
            return Err(bad(format!("a family of the suite: {}", names.join(", "))));
        }
        Ok(())
    }

    /// Set the train split's sample count (the `--episodes` override).
    pub fn with_train_samples(mut self, n: u64) -> Suite {
        if let Some(s) = self.splits.iter_mut().find(|s| s.name == "train") {
            s.samples = n;
        }
        self
    }

    /// The suite's cross-validation fold, where a family sets one (`launch.fold`, e.g.
    /// with `generate --set launch.fold=2`): the fold's name (`launch.fold=2`, several
    /// joined by `,`) and the [`Suite::content_hash`] of the same suite with every family's
    /// `fold` removed, which the datasets of all folds of one suite share.
    pub fn fold(&self) -> Option<(String, String)> {
        let mut names = Vec::new();
        let mut rest = self.clone();
        for f in &mut rest.families {
            if let Some(k) = f.params.as_object_mut().and_then(|p| p.remove("fold")) {
                names.push(format!("{}.fold={k}", f.name));
            }
        }
        (!names.is_empty()).then(|| (names.join(","), rest.content_hash()))
    }

    /// SHA-256 over the canonical JSON of the resolved suite and the generator version:
    /// equal hashes promise identical datasets.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(physworld_sim::GENERATOR_VERSION.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }
}
