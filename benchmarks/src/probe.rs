//! Readout probes fit on frozen features: L2-regularised logistic regression (Physion's
//! readout protocol) beside the model crate's ridge probe.

use rayon::prelude::*;

/// Standardised L2-regularised logistic regression, fit by full-batch gradient descent with
/// a step of `1 / L` (`L` bounds the loss's curvature, from a power iteration), so that the
/// fit is deterministic and needs no tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    dim: usize,
    mean: Vec<f64>,
    /// [`physworld_model::inverse_std`] of each feature: 0 drops a feature constant in the
    /// fit set.
    scale: Vec<f64>,
    w: Vec<f64>,
    b: f64,
}

impl Logistic {
    /// Fit on rows `x` (`n × dim`) with labels `y`; `l2` weights `½‖w‖²`.
    pub fn fit(x: &[f32], y: &[bool], dim: usize, l2: f64) -> Logistic {
        let n = y.len();
        let mut mean = vec![0f64; dim];
        let mut var = vec![0f64; dim];
        for r in 0..n {
            for c in 0..dim {
                mean[c] += x[r * dim + c] as f64 / n.max(1) as f64;
            }
        }
        for r in 0..n {
            for c in 0..dim {
                var[c] += (x[r * dim + c] as f64 - mean[c]).powi(2) / n.max(1) as f64;
            }
        }
        let scale: Vec<f64> = mean.iter().zip(&var).map(|(m, v)| physworld_model::inverse_std(*m, *v)).collect();
        let xs: Vec<f64> = (0..n * dim).map(|i| (x[i] as f64 - mean[i % dim]) * scale[i % dim]).collect();
        // Largest eigenvalue of XᵀX / n (with the bias column) by power iteration.
        let mut v = vec![1.0f64; dim + 1];
        let mut lam = 1.0;
        // Rows as slices and zipped loops: no bounds checks, the same sums in the same order.
        let rows = || (0..n).map(|r| &xs[r * dim..(r + 1) * dim]);
        let nf = n.max(1) as f64;
        for _ in 0..30 {
            let xv: Vec<f64> =
                rows().map(|row| row.iter().zip(&v[..dim]).map(|(a, b)| a * b).sum::<f64>() + v[dim]).collect();
            let mut u = vec![0f64; dim + 1];
            for (row, &xr) in rows().zip(&xv) {
                for (uc, a) in u[..dim].iter_mut().zip(row) {
                    *uc += a * xr / nf;
                }
                u[dim] += xr / nf;
            }
            lam = u.iter().map(|a| a * a).sum::<f64>().sqrt();
            if lam <= 0.0 {
                break;
            }
            v = u.into_iter().map(|a| a / lam).collect();
        }
        let step = 1.0 / (0.25 * lam.max(1e-9) + l2);
        let (mut w, mut b) = (vec![0f64; dim], 0f64);
        for _ in 0..400 {
            let mut gw: Vec<f64> = w.iter().map(|wi| l2 * wi).collect();
            let mut gb = 0.0;
            for (row, &t) in rows().zip(y) {
                let z = b + row.iter().zip(&w).map(|(a, wc)| a * wc).sum::<f64>();
                let p = 1.0 / (1.0 + (-z).exp());
                let g = (p - if t { 1.0 } else { 0.0 }) / n as f64;
                for (gc, a) in gw.iter_mut().zip(row) {
                    *gc += g * a;
                }
                gb += g;
            }
            for (wc, gc) in w.iter_mut().zip(&gw) {
                *wc -= step * gc;
            }
            b -= step * gb;
        }
        Logistic { dim, mean, scale, w, b }
    }

    /// Penalties [`Logistic::fit_cv`] chooses from.
    pub const L2S: [f64; 5] = [1e-3, 1e-2, 0.1, 1.0, 10.0];

    /// Fit with the penalty of `l2s` whose `folds`-fold cross-validated log-loss is lowest
    /// (the first on ties), then refit on every row. Row `r` belongs to group `groups[r]`
    /// (rows of one item share a group) and its group to fold `group % folds`, so that an
    /// item's rows are never split between fitting and scoring. With fewer than two groups
    /// per fold on average, or one class only, the penalty is the middle of `l2s`.
    pub fn fit_cv(x: &[f32], y: &[bool], groups: &[usize], dim: usize, l2s: &[f64], folds: usize) -> (Logistic, f64) {
        let n = y.len();
        let distinct = groups.iter().collect::<std::collections::BTreeSet<_>>().len();
        let both = y.iter().any(|v| *v) && y.iter().any(|v| !*v);
        let fallback = l2s.get(l2s.len() / 2).copied().unwrap_or(0.1);
        if folds < 2 || l2s.is_empty() || distinct < 2 * folds || !both {
            return (Logistic::fit(x, y, dim, fallback), fallback);
        }
        let pick = |k: usize, held: bool| -> (Vec<f32>, Vec<bool>) {
            let rows = (0..n).filter(|&r| (groups[r] % folds == k) == held);
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for r in rows {
                xs.extend_from_slice(&x[r * dim..(r + 1) * dim]);
                ys.push(y[r]);
            }
            (xs, ys)
        };
        // Each fold's (fitting, held-out) rows, split once for every penalty.
        let splits: Vec<_> = (0..folds)
            .map(|k| (pick(k, false), pick(k, true)))
            .filter(|((_, yf), (_, yh))| !yf.is_empty() && !yh.is_empty())
            .collect();
        // Every (penalty, fold) fit in parallel; each fit is sequential and the losses are
        // summed in the same order whatever the thread count.
        let fold_losses: Vec<f64> = (0..l2s.len() * splits.len())
            .into_par_iter()
            .map(|i| {
                let ((xf, yf), (xh, yh)) = &splits[i % splits.len()];
                let m = Logistic::fit(xf, yf, dim, l2s[i / splits.len()]);
                m.logits(xh).into_iter().zip(yh).map(|(z, t)| log_loss(z, *t)).sum::<f64>()
            })
            .collect();
        let mut best = (f64::INFINITY, fallback);
        for (k, &l2) in l2s.iter().enumerate() {
            let mut loss = 0.0;
            for l in &fold_losses[k * splits.len()..(k + 1) * splits.len()] {
                loss += l;
            }
            if loss < best.0 {
                best = (loss, l2);
            }
        }
        (Logistic::fit(x, y, dim, best.1), best.1)
    }

    /// Logit of each row of `x`.
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        x.chunks(self.dim.max(1))
            .map(|row| {
                self.b
                    + row
                        .iter()
                        .enumerate()
                        .map(|(c, v)| (*v as f64 - self.mean[c]) * self.scale[c] * self.w[c])
                        .sum::<f64>()
            })
            .collect()
    }
}

/// The log-loss `−log σ(±z)` of logit `z` for label `t`, computed stably.
fn log_loss(z: f64, t: bool) -> f64 {
    let z = if t { z } else { -z };
    (-z).max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_linearly_separable_set_and_predicts_the_majority_without_signal() {
        // Label = x0 > x1.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..60 {
            let (a, b) = ((i * 7 % 13) as f32, (i * 5 % 11) as f32);
            x.extend([a, b, 1.0]);
            y.push(a > b);
        }
        let p = Logistic::fit(&x, &y, 3, 1e-3);
        let acc = p.logits(&x).iter().zip(&y).filter(|(z, t)| (**z > 0.0) == **t).count();
        assert!(acc >= 57, "{acc}/60");
        // The third feature is constant in the fit set, so it is dropped: a value never seen
        // there changes no logit (a 1e-6 std floor would scale it to 1e6).
        let shifted: Vec<f32> = x.iter().enumerate().map(|(i, v)| if i % 3 == 2 { 7.0 } else { *v }).collect();
        assert_eq!(p.scale[2], 0.0);
        assert_eq!(p.logits(&shifted), p.logits(&x));
        // Constant features: the bias learns the base rate (40 of 60 true).
        let x = vec![1.0f32; 60];
        let y: Vec<bool> = (0..60).map(|i| i % 3 != 0).collect();
        let p = Logistic::fit(&x, &y, 1, 1e-3);
        let prob = 1.0 / (1.0 + (-p.logits(&[1.0])[0]).exp());
        assert!((prob - 2.0 / 3.0).abs() < 0.02, "{prob}");
    }

    /// Many noise features beside one informative one: cross-validation picks a stronger
    /// penalty than the weakest, and the chosen fit has the lower held-out log-loss.
    #[test]
    fn cross_validation_chooses_the_penalty_on_held_out_groups() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        };
        let (dim, n) = (60, 120);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..2 * n {
            let signal = noise();
            x.push(signal);
            x.extend((1..dim).map(|_| noise()));
            y.push(signal + 0.3 * noise() > 0.0);
        }
        let groups: Vec<usize> = (0..n).collect();
        let (fit, l2) = Logistic::fit_cv(&x[..n * dim], &y[..n], &groups, dim, &Logistic::L2S, 5);
        assert!(l2 > Logistic::L2S[0], "{l2}");
        let weak = Logistic::fit(&x[..n * dim], &y[..n], dim, Logistic::L2S[0]);
        // Held-out log-loss: the weakest penalty overfits the noise features.
        let loss = |m: &Logistic| -> f64 {
            m.logits(&x[n * dim..]).into_iter().zip(&y[n..]).map(|(z, t)| log_loss(z, *t)).sum()
        };
        assert!(loss(&fit) < loss(&weak), "{} >= {}", loss(&fit), loss(&weak));
        // The (penalty, fold) fits run in parallel: the same fit and penalty on one thread
        // as on several.
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| Logistic::fit_cv(&x[..n * dim], &y[..n], &groups, dim, &Logistic::L2S, 5))
        };
        assert_eq!(on(1), (fit.clone(), l2));
        assert_eq!(on(3), (fit, l2));
        // One class only: no folds to compare, the middle penalty.
        let (_, l2) = Logistic::fit_cv(&x[..n * dim], &vec![true; n], &groups, dim, &Logistic::L2S, 5);
        assert_eq!(l2, Logistic::L2S[2]);
    }
}
