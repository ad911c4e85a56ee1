//! Small dense linear algebra on the host (candle has no eigen-decomposition or solve):
//! symmetric eigenvalues by cyclic Jacobi rotations, ridge regression by Cholesky.

/// Eigenvalues of the symmetric `n × n` row-major matrix `a` (cyclic Jacobi).
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

/// Effective rank (Roy & Vetterli): `exp(H(p))` with `p` the normalised eigenvalues of the
/// covariance of the rows of `x` (`n × d`, row-major). 1 for collapsed representations,
/// `d` for isotropic ones.
pub fn effective_rank(x: &[f32], n: usize, d: usize) -> f64 {
    if n < 2 || d == 0 {
        return 0.0;
    }
    let mut mean = vec![0f64; d];
    for r in 0..n {
        for c in 0..d {
            mean[c] += x[r * d + c] as f64 / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for r in 0..n {
        for i in 0..d {
            let xi = x[r * d + i] as f64 - mean[i];
            for j in i..d {
                cov[i * d + j] += xi * (x[r * d + j] as f64 - mean[j]) / (n - 1) as f64;
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    let ev: Vec<f64> = symmetric_eigenvalues(cov, d).into_iter().map(|e| e.max(0.0)).collect();
    let total: f64 = ev.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = ev.iter().filter(|e| **e > 0.0).map(|e| -(e / total) * (e / total).ln()).sum();
    h.exp()
}

/// Ridge regression `W = (XᵀX + λI)⁻¹ XᵀY` for `x` `n × d`, `y` `n × k` (row-major, with a
/// bias column appended internally); returns `(d + 1) × k` weights, bias last.
pub fn ridge(x: &[f32], y: &[f32], n: usize, d: usize, k: usize, lambda: f64) -> Vec<f64> {
    let g = Gram::of(x, y, d, k, 0..n);
    ridge_solve(g.xx, &g.xy, d, k, lambda)
}

/// Sufficient statistics of rows `[x, 1]` and targets `y`: the `(d + 1)²` Gram matrix
/// `Σ [x, 1][x, 1]ᵀ` and the `(d + 1) × k` cross products `Σ [x, 1] yᵀ` (row-major, in
/// f64). Row sums, counts and squares are their last row and diagonal, so statistics of
/// row subsets subtract: cross-validation folds cost one pass over the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    /// Input width `d` (without the bias column).
    pub d: usize,
    /// Output width `k`.
    pub k: usize,
    /// `Σ [x, 1][x, 1]ᵀ`.
    pub xx: Vec<f64>,
    /// `Σ [x, 1] yᵀ`.
    pub xy: Vec<f64>,
}

impl Gram {
    /// Over `rows` of `x` (`· × d`) and `y` (`· × k`).
    pub fn of(x: &[f32], y: &[f32], d: usize, k: usize, rows: std::ops::Range<usize>) -> Gram {
        let dd = d + 1;
        let mut xx = vec![0f64; dd * dd];
        let mut xy = vec![0f64; dd * k];
        let mut row = vec![1f64; dd];
        for r in rows {
            for (c, v) in row[..d].iter_mut().zip(&x[r * d..(r + 1) * d]) {
                *c = *v as f64;
            }
            let yr = &y[r * k..(r + 1) * k];
            // Upper triangle only; mirrored below.
            for i in 0..dd {
                let xi = row[i];
                for (a, xj) in xx[i * dd + i..(i + 1) * dd].iter_mut().zip(&row[i..]) {
                    *a += xi * xj;
                }
                for (b, yc) in xy[i * k..(i + 1) * k].iter_mut().zip(yr) {
                    *b += xi * *yc as f64;
                }
            }
        }
        for i in 0..dd {
            for j in 0..i {
                xx[i * dd + j] = xx[j * dd + i];
            }
        }
        Gram { d, k, xx, xy }
    }

    /// Rows counted.
    pub fn rows(&self) -> f64 {
        let dd = self.d + 1;
        self.xx[dd * dd - 1]
    }

    /// The statistics of the rows of `self` that are not in `part`.
    pub fn minus(&self, part: &Gram) -> Gram {
        let sub = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect();
        Gram { d: self.d, k: self.k, xx: sub(&self.xx, &part.xx), xy: sub(&self.xy, &part.xy) }
    }
}

/// Solve `(A + λI) W = B` for the `(d + 1)²` Gram `a` of rows with a bias column last (the
/// bias is not penalised) by Cholesky; returns `(d + 1) × k` weights, bias last.
pub fn ridge_solve(mut a: Vec<f64>, b: &[f64], d: usize, k: usize, lambda: f64) -> Vec<f64> {
    let dd = d + 1;
    for i in 0..d {
        a[i * dd + i] += lambda;
    }
    a[d * dd + d] += 1e-9;
    // Cholesky a = L Lᵀ.
    let mut l = vec![0f64; dd * dd];
    for i in 0..dd {
        for j in 0..=i {
            let s: f64 = (0..j).map(|p| l[i * dd + p] * l[j * dd + p]).sum();
            if i == j {
                l[i * dd + i] = (a[i * dd + i] - s).max(1e-12).sqrt();
            } else {
                l[i * dd + j] = (a[i * dd + j] - s) / l[j * dd + j];
            }
        }
    }
    let mut w = vec![0f64; dd * k];
    for c in 0..k {
        let mut z = vec![0f64; dd];
        for i in 0..dd {
            let s: f64 = (0..i).map(|p| l[i * dd + p] * z[p]).sum();
            z[i] = (b[i * k + c] - s) / l[i * dd + i];
        }
        for i in (0..dd).rev() {
            let s: f64 = (i + 1..dd).map(|p| l[p * dd + i] * w[p * k + c]).sum();
            w[i * k + c] = (z[i] - s) / l[i * dd + i];
        }
    }
    w
}
