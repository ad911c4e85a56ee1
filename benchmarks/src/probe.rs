//! Readout probes fit on frozen features: L2-regularised logistic regression (Physion's
//! readout protocol) beside the model crate's ridge probe.

/// Standardised L2-regularised logistic regression, fit by full-batch gradient descent with
/// a step of `1 / L` (`L` bounds the loss's curvature, from a power iteration), so that the
/// fit is deterministic and needs no tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    dim: usize,
    mean: Vec<f64>,
    std: Vec<f64>,
    w: Vec<f64>,
    b: f64,
}

impl Logistic {
    /// Fit on rows `x` (`n × dim`) with labels `y`; `l2` weights `½‖w‖²`.
    pub fn fit(x: &[f32], y: &[bool], dim: usize, l2: f64) -> Logistic {
        let n = y.len();
        let mut mean = vec![0f64; dim];
        let mut std = vec![0f64; dim];
        for r in 0..n {
            for c in 0..dim {
                mean[c] += x[r * dim + c] as f64 / n.max(1) as f64;
            }
        }
        for r in 0..n {
            for c in 0..dim {
                std[c] += (x[r * dim + c] as f64 - mean[c]).powi(2) / n.max(1) as f64;
            }
        }
        let std: Vec<f64> = std.into_iter().map(|v| v.sqrt().max(1e-6)).collect();
        let xs: Vec<f64> = (0..n * dim).map(|i| (x[i] as f64 - mean[i % dim]) / std[i % dim]).collect();
        // Largest eigenvalue of XᵀX / n (with the bias column) by power iteration.
        let mut v = vec![1.0f64; dim + 1];
        let mut lam = 1.0;
        for _ in 0..30 {
            let mut xv = vec![0f64; n];
            for r in 0..n {
                xv[r] = (0..dim).map(|c| xs[r * dim + c] * v[c]).sum::<f64>() + v[dim];
            }
            let mut u = vec![0f64; dim + 1];
            for r in 0..n {
                for c in 0..dim {
                    u[c] += xs[r * dim + c] * xv[r] / n.max(1) as f64;
                }
                u[dim] += xv[r] / n.max(1) as f64;
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
            for r in 0..n {
                let z = b + (0..dim).map(|c| xs[r * dim + c] * w[c]).sum::<f64>();
                let p = 1.0 / (1.0 + (-z).exp());
                let g = (p - if y[r] { 1.0 } else { 0.0 }) / n as f64;
                for c in 0..dim {
                    gw[c] += g * xs[r * dim + c];
                }
                gb += g;
            }
            for c in 0..dim {
                w[c] -= step * gw[c];
            }
            b -= step * gb;
        }
        Logistic { dim, mean, std, w, b }
    }

    /// Logit of each row of `x`.
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        x.chunks(self.dim.max(1))
            .map(|row| {
                self.b
                    + row
                        .iter()
                        .enumerate()
                        .map(|(c, v)| (*v as f64 - self.mean[c]) / self.std[c] * self.w[c])
                        .sum::<f64>()
            })
            .collect()
    }
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
        // Constant features: the bias learns the base rate (40 of 60 true).
        let x = vec![1.0f32; 60];
        let y: Vec<bool> = (0..60).map(|i| i % 3 != 0).collect();
        let p = Logistic::fit(&x, &y, 1, 1e-3);
        let prob = 1.0 / (1.0 + (-p.logits(&[1.0])[0]).exp());
        assert!((prob - 2.0 / 3.0).abs() < 0.02, "{prob}");
    }
}
