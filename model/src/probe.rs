//! Linear (ridge) probes from frozen representations to targets (object positions,
//! hidden properties, binary labels), fitted on the host (candle has no linear solve).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::linalg::ridge;

/// A fitted ridge probe `y = W x + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeProbe {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// Regularisation used.
    pub lambda: f64,
    /// `(input + 1) × output` weights, bias row last.
    pub weights: Vec<f64>,
    /// Per-feature mean used to standardise inputs.
    pub mean: Vec<f64>,
    /// Per-feature std used to standardise inputs.
    pub std: Vec<f64>,
}

impl RidgeProbe {
    /// Fit on `n` rows of `x` (`n × input`) and `y` (`n × output`), row-major; inputs are
    /// standardised with their own mean and std first.
    pub fn fit(x: &[f32], y: &[f32], input: usize, output: usize, lambda: f64) -> Result<RidgeProbe> {
        if input == 0
            || output == 0
            || !x.len().is_multiple_of(input)
            || !y.len().is_multiple_of(output)
            || x.len() / input != y.len() / output
        {
            return Err(ModelError::config(
                "probe data",
                format!("{} × {input} and {} × {output}", x.len(), y.len()),
                "matching row counts",
            ));
        }
        let n = x.len() / input;
        if n < 2 {
            return Err(ModelError::config("probe rows", n, "at least 2"));
        }
        let mut mean = vec![0f64; input];
        let mut std = vec![0f64; input];
        for r in 0..n {
            for c in 0..input {
                mean[c] += x[r * input + c] as f64 / n as f64;
            }
        }
        for r in 0..n {
            for c in 0..input {
                std[c] += (x[r * input + c] as f64 - mean[c]).powi(2) / n as f64;
            }
        }
        let std: Vec<f64> = std.into_iter().map(|v| v.sqrt().max(1e-6)).collect();
        let xs: Vec<f32> = (0..n * input).map(|i| ((x[i] as f64 - mean[i % input]) / std[i % input]) as f32).collect();
        let weights = ridge(&xs, y, n, input, output, lambda);
        Ok(RidgeProbe { input, output, lambda, weights, mean, std })
    }

    /// Predict for rows of `x` (`m × input`): `m × output`.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let m = x.len() / self.input.max(1);
        let mut out = vec![0f32; m * self.output];
        for r in 0..m {
            for k in 0..self.output {
                let mut acc = self.weights[self.input * self.output + k];
                for c in 0..self.input {
                    let xs = (x[r * self.input + c] as f64 - self.mean[c]) / self.std[c];
                    acc += xs * self.weights[c * self.output + k];
                }
                out[r * self.output + k] = acc as f32;
            }
        }
        out
    }
}
