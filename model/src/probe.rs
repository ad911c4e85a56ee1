//! Linear (ridge) probes from frozen representations to targets (object positions,
//! hidden properties, binary labels), fitted on the host (candle has no linear solve).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::linalg::{Gram, ridge_solve};

/// The factor that standardises a feature of this mean and variance on the fit set:
/// `1 / std`, or 0 for a feature constant there up to rounding (variance at most 1e-12 of
/// `1 + mean²`). A constant feature carries nothing a fit could use, so probes drop it.
/// Dividing by a small floor instead would turn a value never seen in fitting (a held-out
/// shape's one-hot column, say) into about 10⁶ at prediction time, and a probe with random
/// initial weights answers that with a saturated output.
pub fn inverse_std(mean: f64, var: f64) -> f64 {
    match var > 1e-12 * (1.0 + mean * mean) {
        true => 1.0 / var.sqrt(),
        false => 0.0,
    }
}

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
        // A feature constant over the rows up to the rounding of the sums carries nothing
        // ([`inverse_std`]): its standardised column is set to zero (two passes would leave
        // rounding noise divided by the 1e-6 std floor).
        let live: Vec<bool> = (0..d).map(|c| inverse_std(mean[c], var[c]) > 0.0).collect();
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
    /// Width of keys and values (all heads together). Default 32.
    pub hidden: usize,
    /// Attention heads: the query is split into `heads` parts of `hidden / heads`, each
    /// pooling the tokens with its own weights (V-JEPA's pooler has 16). Default 1.
    #[serde(default = "one")]
    pub heads: usize,
    /// A residual MLP block (layer norm, `hidden -> 4 hidden -> hidden`, GELU) on the
    /// pooled vector before the linear head, as in V-JEPA's pooler; without it the probe is
    /// linear in the attention-weighted tokens. Default false.
    #[serde(default)]
    pub mlp: bool,
    /// Full-batch AdamW steps. Default 300.
    pub steps: usize,
    /// Learning rate. Default 1e-2.
    pub lr: f64,
    /// Decoupled weight decay. Default 1e-3.
    pub weight_decay: f64,
    /// Initialisation seed. Default 0.
    pub seed: u64,
}

fn one() -> usize {
    1
}

impl Default for AttentiveConfig {
    fn default() -> Self {
        AttentiveConfig { hidden: 32, heads: 1, mlp: false, steps: 300, lr: 1e-2, weight_decay: 1e-3, seed: 0 }
    }
}

/// A small attentive probe, as in V-JEPA's frozen evaluation: one learned query
/// cross-attends over a sample's tokens (masked; one or more heads), optionally through a
/// residual MLP block, then a linear head. Inputs are standardised with the fit set's
/// per-feature mean and std; features constant in the fit set are dropped ([`inverse_std`]).
/// Fit full-batch with the checkpointable [`crate::AdamW`] from a host-seeded
/// initialisation: deterministic.
pub struct AttentiveProbe {
    dim: usize,
    out: usize,
    target: ProbeTarget,
    mean: Vec<f32>,
    /// [`inverse_std`] of each feature: 0 drops it.
    scale: Vec<f32>,
    query: candle_core::Var,
    key: crate::layers::Linear,
    value: crate::layers::Linear,
    head: crate::layers::Linear,
    block: Option<(crate::layers::LayerNorm, crate::layers::Mlp)>,
    hidden: usize,
    heads: usize,
}

impl AttentiveProbe {
    fn forward(&self, x: &candle_core::Tensor, mask: &candle_core::Tensor) -> Result<candle_core::Tensor> {
        use candle_core::D;
        let (n, s, _) = x.dims3()?;
        let (h, w) = (self.heads, self.hidden / self.heads);
        let k = self.key.forward(x)?.reshape((n, s, h, w))?;
        let v = self.value.forward(x)?.reshape((n, s, h, w))?;
        let q = self.query.as_tensor().reshape((1, 1, h, w))?;
        let scores = (k.broadcast_mul(&q)?.sum(D::Minus1)? / (w as f64).sqrt())?; // [N, S, heads]
        let scores = scores.transpose(1, 2)?.contiguous()?; // [N, heads, S]
        let scores = scores.broadcast_add(&((mask - 1.0)? * 1e9)?.unsqueeze(1)?)?;
        let a = crate::layers::softmax_last(&scores)?; // [N, heads, S]
        let a = a.transpose(1, 2)?.unsqueeze(3)?; // [N, S, heads, 1]
        let mut pooled = v.broadcast_mul(&a)?.sum(1)?.reshape((n, self.hidden))?; // [N, hidden]
        if let Some((norm, mlp)) = &self.block {
            pooled = (&pooled + mlp.forward(&norm.forward(&pooled)?)?)?;
        }
        self.head.forward(&pooled)
    }

    /// Standardised tensors of `n` samples: each sample's real tokens first (attention
    /// does not see their order), cut to the most any sample has, so masked slots cost
    /// nothing.
    fn tensors(&self, tokens: &[f32], mask: &[f32], n: usize) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let d = self.dim;
        let s = mask.len() / n.max(1);
        if mask.len() != n * s || tokens.len() != n * s * d {
            return Err(ModelError::config(
                "attentive probe input",
                format!("{} tokens, {} mask for n={n}, d={d}", tokens.len(), mask.len()),
                "tokens n×s×d and mask n×s",
            ));
        }
        let keep = (0..n).map(|i| mask[i * s..(i + 1) * s].iter().filter(|m| **m > 0.0).count()).max().unwrap_or(0);
        let keep = keep.max(1);
        let (mut xs, mut ms) = (Vec::with_capacity(n * keep * d), Vec::with_capacity(n * keep));
        for i in 0..n {
            let real = (0..s).filter(|&t| mask[i * s + t] > 0.0);
            let mut used = 0;
            for t in real {
                let row = &tokens[(i * s + t) * d..(i * s + t + 1) * d];
                xs.extend(row.iter().enumerate().map(|(c, v)| (v - self.mean[c]) * self.scale[c]));
                ms.push(1.0f32);
                used += 1;
            }
            xs.resize(xs.len() + (keep - used) * d, 0.0);
            ms.resize(ms.len() + keep - used, 0.0);
        }
        let dev = candle_core::Device::Cpu;
        Ok((
            candle_core::Tensor::from_vec(xs, (n, keep, d), &dev)?,
            candle_core::Tensor::from_vec(ms, (n, keep), &dev)?,
        ))
    }

    /// Fit on `n` samples of `s` tokens of width `d` (`tokens` `n × s × d`, `mask` `n × s`
    /// with 1 for real tokens, `y` `n × out`), `cfg.steps` steps.
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
        if cfg.hidden == 0 || cfg.heads == 0 || !cfg.hidden.is_multiple_of(cfg.heads) {
            return Err(ModelError::config(
                "attentive probe hidden/heads",
                format!("{}/{}", cfg.hidden, cfg.heads),
                "heads >= 1 dividing hidden >= 1",
            ));
        }
        if n < 2 || tokens.len() != n * s * d || mask.len() != n * s || y.len() != n * out {
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
        let scale: Vec<f32> = mean.iter().zip(&var).map(|(m, v)| inverse_std(*m, v / cnt.max(1.0)) as f32).collect();
        let dev = candle_core::Device::Cpu;
        let mut p = crate::params::Params::new(cfg.seed, &dev);
        let query = p.trunc_normal("query", &[cfg.hidden], 0.02)?;
        let key = crate::layers::Linear::new(&mut p, "key", d, cfg.hidden, true)?;
        let value = crate::layers::Linear::new(&mut p, "value", d, cfg.hidden, true)?;
        let head = crate::layers::Linear::new(&mut p, "head", cfg.hidden, out, true)?;
        let block = match cfg.mlp {
            true => Some((
                crate::layers::LayerNorm::new(&mut p, "norm", cfg.hidden)?,
                crate::layers::Mlp::new(&mut p, "mlp", cfg.hidden, 4 * cfg.hidden)?,
            )),
            false => None,
        };
        let probe = AttentiveProbe {
            dim: d,
            out,
            target,
            mean: mean.iter().map(|m| *m as f32).collect(),
            scale,
            query,
            key,
            value,
            head,
            block,
            hidden: cfg.hidden,
            heads: cfg.heads,
        };
        let vars: Vec<(String, candle_core::Var)> = p.into_vars().into_iter().collect();
        let oc = crate::config::OptimConfig { lr: cfg.lr, weight_decay: cfg.weight_decay, ..Default::default() };
        let mut opt = crate::optim::AdamW::new(vars, &oc)?;
        let (x, m) = probe.tensors(tokens, mask, n)?;
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
        let (x, m) = self.tensors(tokens, mask, n)?;
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
