//! Linear (ridge) probes from frozen representations to targets (object positions,
//! hidden properties, binary labels), fitted on the host (candle has no linear solve).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::linalg::{Gram, ridge_solve};

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
        let n = Self::rows(x, y, input, output)?;
        Ok(RidgeProbe::from_gram(&Gram::of(x, y, input, output, 0..n), lambda))
    }

    /// Row count of matching `x` and `y`, at least 2.
    fn rows(x: &[f32], y: &[f32], input: usize, output: usize) -> Result<usize> {
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
        Ok(n)
    }

    /// Fit from the sufficient statistics of the rows (at least 2): inputs standardised with
    /// the rows' mean and std, as [`RidgeProbe::fit`] does.
    fn from_gram(g: &Gram, lambda: f64) -> RidgeProbe {
        let (d, k, dd) = (g.d, g.k, g.d + 1);
        let n = g.rows();
        let mean: Vec<f64> = (0..d).map(|c| g.xx[d * dd + c] / n).collect();
        let var: Vec<f64> = (0..d).map(|c| (g.xx[c * dd + c] / n - mean[c] * mean[c]).max(0.0)).collect();
        let std: Vec<f64> = var.iter().map(|v| v.sqrt().max(1e-6)).collect();
        // A feature constant over the rows up to the rounding of the sums (variance below
        // 1e-12 of its squared mean) carries nothing: its standardised column is set to zero
        // (two passes would leave rounding noise divided by the 1e-6 std floor).
        let live: Vec<bool> = (0..d).map(|c| var[c] > 1e-12 * (1.0 + mean[c] * mean[c])).collect();
        let mut a = vec![0f64; dd * dd];
        for i in (0..d).filter(|i| live[*i]) {
            for j in (0..d).filter(|j| live[*j]) {
                a[i * dd + j] = (g.xx[i * dd + j] - n * mean[i] * mean[j]) / (std[i] * std[j]);
            }
        }
        a[d * dd + d] = n; // standardised columns sum to zero: no bias cross terms
        let mut b = vec![0f64; dd * k];
        for c in 0..k {
            let sy = g.xy[d * k + c];
            for i in (0..d).filter(|i| live[*i]) {
                b[i * k + c] = (g.xy[i * k + c] - mean[i] * sy) / std[i];
            }
            b[d * k + c] = sy;
        }
        let weights = ridge_solve(a, &b, d, k, lambda);
        RidgeProbe { input: d, output: k, lambda, weights, mean, std }
    }

    /// Ridge penalties [`RidgeProbe::fit_cv`] chooses from by default.
    pub const LAMBDAS: [f64; 6] = [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0];

    /// Fit with the penalty from `lambdas` that minimises the mean squared error of
    /// `folds`-fold cross-validation on these rows (contiguous folds, so no randomness), then
    /// refit on every row (scikit-learn's `RidgeCV` idea). Falls back to plain [`fit`] with
    /// the first penalty when there are fewer rows than folds.
    ///
    /// [`fit`]: RidgeProbe::fit
    pub fn fit_cv(
        x: &[f32],
        y: &[f32],
        input: usize,
        output: usize,
        lambdas: &[f64],
        folds: usize,
    ) -> Result<RidgeProbe> {
        let n = x.len().checked_div(input).unwrap_or(0);
        let first = lambdas.first().copied().unwrap_or(1.0);
        if folds < 2 || n < 2 * folds || lambdas.len() < 2 {
            return RidgeProbe::fit(x, y, input, output, first);
        }
        Self::rows(x, y, input, output)?;
        // One pass for the statistics of every fold; each training set is all rows minus
        // its fold, for every penalty.
        let all = Gram::of(x, y, input, output, 0..n);
        let bounds: Vec<(usize, usize)> = (0..folds).map(|k| (k * n / folds, (k + 1) * n / folds)).collect();
        let kept: Vec<Gram> =
            bounds.iter().map(|&(lo, hi)| all.minus(&Gram::of(x, y, input, output, lo..hi))).collect();
        let mut best = (f64::INFINITY, first);
        for &lambda in lambdas {
            let mut sse = 0.0f64;
            for (g, &(lo, hi)) in kept.iter().zip(&bounds) {
                let pred = RidgeProbe::from_gram(g, lambda).predict(&x[lo * input..hi * input]);
                sse +=
                    pred.iter().zip(&y[lo * output..hi * output]).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
            }
            if sse < best.0 {
                best = (sse, lambda);
            }
        }
        Ok(RidgeProbe::from_gram(&all, best.1))
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

/// What an [`AttentiveProbe`] predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeTarget {
    /// Real values (mean squared error).
    Regression,
    /// Binary labels 0/1 (logistic loss); predictions are probabilities.
    Binary,
}

/// Training settings of an [`AttentiveProbe`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentiveConfig {
    /// Width of keys and values. Default 32.
    pub hidden: usize,
    /// Full-batch AdamW steps. Default 300.
    pub steps: usize,
    /// Learning rate. Default 1e-2.
    pub lr: f64,
    /// Decoupled weight decay. Default 1e-3.
    pub weight_decay: f64,
    /// Initialisation seed. Default 0.
    pub seed: u64,
}

impl Default for AttentiveConfig {
    fn default() -> Self {
        AttentiveConfig { hidden: 32, steps: 300, lr: 1e-2, weight_decay: 1e-3, seed: 0 }
    }
}

/// A small attentive probe, as in V-JEPA's frozen evaluation: one learned query
/// cross-attends over a sample's tokens (masked), then a linear head. Inputs are
/// standardised with the fit set's per-feature mean and std. Fit full-batch with the
/// checkpointable [`crate::AdamW`] from a host-seeded initialisation: deterministic.
pub struct AttentiveProbe {
    dim: usize,
    out: usize,
    target: ProbeTarget,
    mean: Vec<f32>,
    std: Vec<f32>,
    query: candle_core::Var,
    key: crate::layers::Linear,
    value: crate::layers::Linear,
    head: crate::layers::Linear,
    hidden: usize,
}

impl AttentiveProbe {
    fn forward(&self, x: &candle_core::Tensor, mask: &candle_core::Tensor) -> Result<candle_core::Tensor> {
        use candle_core::D;
        let k = self.key.forward(x)?; // [N, S, H]
        let v = self.value.forward(x)?;
        let q = self.query.as_tensor().reshape((1, 1, self.hidden))?;
        let scores = (k.broadcast_mul(&q)?.sum(D::Minus1)? / (self.hidden as f64).sqrt())?; // [N, S]
        let scores = (scores + ((mask - 1.0)? * 1e9)?)?;
        let a = crate::layers::softmax_last(&scores)?.unsqueeze(2)?; // [N, S, 1]
        let pooled = v.broadcast_mul(&a)?.sum(1)?; // [N, H]
        self.head.forward(&pooled)
    }

    fn tensors(
        &self,
        tokens: &[f32],
        mask: &[f32],
        n: usize,
        s: usize,
    ) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let d = self.dim;
        let xs: Vec<f32> = tokens.iter().enumerate().map(|(i, v)| (v - self.mean[i % d]) / self.std[i % d]).collect();
        let dev = candle_core::Device::Cpu;
        Ok((
            candle_core::Tensor::from_vec(xs, (n, s, d), &dev)?,
            candle_core::Tensor::from_vec(mask.to_vec(), (n, s), &dev)?,
        ))
    }

    /// Fit on `n` samples of `s` tokens of width `d` (`tokens` `n × s × d`, `mask` `n × s`
    /// with 1 for real tokens, `y` `n × out`).
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        tokens: &[f32],
        mask: &[f32],
        y: &[f32],
        (n, s, d): (usize, usize, usize),
        out: usize,
        target: ProbeTarget,
        cfg: &AttentiveConfig,
    ) -> Result<AttentiveProbe> {
        if n < 2 || tokens.len() != n * s * d || mask.len() != n * s || y.len() != n * out || cfg.hidden == 0 {
            return Err(ModelError::config(
                "attentive probe data",
                format!(
                    "{} tokens, {} mask, {} targets for n={n}, s={s}, d={d}, out={out}",
                    tokens.len(),
                    mask.len(),
                    y.len()
                ),
                "n >= 2 samples with tokens n×s×d, mask n×s and targets n×out",
            ));
        }
        let (mut mean, mut var, mut cnt) = (vec![0f64; d], vec![0f64; d], 0f64);
        for i in 0..n * s {
            if mask[i] > 0.0 {
                cnt += 1.0;
                for c in 0..d {
                    mean[c] += tokens[i * d + c] as f64;
                }
            }
        }
        mean.iter_mut().for_each(|m| *m /= cnt.max(1.0));
        for i in 0..n * s {
            if mask[i] > 0.0 {
                for c in 0..d {
                    var[c] += (tokens[i * d + c] as f64 - mean[c]).powi(2);
                }
            }
        }
        let std: Vec<f32> = var.iter().map(|v| ((v / cnt.max(1.0)).sqrt().max(1e-6)) as f32).collect();
        let dev = candle_core::Device::Cpu;
        let mut p = crate::params::Params::new(cfg.seed, &dev);
        let query = p.trunc_normal("query", &[cfg.hidden], 0.02)?;
        let key = crate::layers::Linear::new(&mut p, "key", d, cfg.hidden, true)?;
        let value = crate::layers::Linear::new(&mut p, "value", d, cfg.hidden, true)?;
        let head = crate::layers::Linear::new(&mut p, "head", cfg.hidden, out, true)?;
        let probe = AttentiveProbe {
            dim: d,
            out,
            target,
            mean: mean.iter().map(|m| *m as f32).collect(),
            std,
            query,
            key,
            value,
            head,
            hidden: cfg.hidden,
        };
        let vars: Vec<(String, candle_core::Var)> = p.into_vars().into_iter().collect();
        let oc = crate::config::OptimConfig { lr: cfg.lr, weight_decay: cfg.weight_decay, ..Default::default() };
        let mut opt = crate::optim::AdamW::new(vars, &oc)?;
        let (x, m) = probe.tensors(tokens, mask, n, s)?;
        let yt = candle_core::Tensor::from_vec(y.to_vec(), (n, out), &dev)?;
        for _ in 0..cfg.steps {
            let z = probe.forward(&x, &m)?;
            let loss = match target {
                ProbeTarget::Regression => (z - &yt)?.sqr()?.mean_all()?,
                // Stable logistic loss: max(z, 0) - z y + log(1 + exp(-|z|)).
                ProbeTarget::Binary => {
                    ((z.relu()? - (&z * &yt)?)? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?.mean_all()?
                }
            };
            let grads = loss.backward()?;
            opt.step(&grads, cfg.lr, 1.0)?;
        }
        Ok(probe)
    }

    /// Predict for `n` samples: `n × out` values (probabilities for binary targets).
    pub fn predict(&self, tokens: &[f32], mask: &[f32], n: usize) -> Result<Vec<f32>> {
        let s = mask.len() / n.max(1);
        let (x, m) = self.tensors(tokens, mask, n, s)?;
        let z = self.forward(&x, &m)?;
        let z = match self.target {
            ProbeTarget::Regression => z,
            ProbeTarget::Binary => (z.neg()?.exp()? + 1.0)?.recip()?,
        };
        Ok(z.flatten_all()?.to_vec1()?)
    }

    /// Output width.
    pub fn output(&self) -> usize {
        self.out
    }
}
