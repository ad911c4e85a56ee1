//! Layer norm, with and without its affine part, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::kernel::*;

/// Row mean and `1 / sqrt(var + eps)`.
#[inline(always)]
pub(super) fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_map(row, row, |v, _| v) / n;
    let var = sum_map(row, row, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension.
pub(super) struct LayerNormFwd {
    pub(super) eps: f32,
}

impl CustomOp1 for LayerNormFwd {
    fn name(&self) -> &'static str {
        "physworld-layer-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let d = last_dim(l);
        let eps = self.eps;
        let y = map_rows(
            x,
            None,
            d,
            #[inline(always)]
            |xr, _, yr| {
                let (mean, rstd) = row_stats(xr, eps);
                for (o, v) in yr.iter_mut().zip(xr) {
                    *o = (v - mean) * rstd;
                }
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&g.contiguous()?, &LayerNormBwd { eps: self.eps })?))
    }
}

/// `dx = rstd (g - mean(g) - y mean(g y))`, recomputing `y` from `x`.
pub(super) struct LayerNormBwd {
    pub(super) eps: f32,
}

impl CustomOp2 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "physworld-layer-norm-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = last_dim(l1);
        let eps = self.eps;
        let dx = map_rows(
            x,
            Some(g),
            d,
            #[inline(always)]
            |xr, gr, dr| {
                let (mean, rstd) = row_stats(xr, eps);
                let gm = sum_map(gr, gr, |gv, _| gv) / d as f32;
                let gy = sum_map(gr, xr, |gv, xv| gv * (xv - mean) * rstd) / d as f32;
                for ((o, xv), gv) in dr.iter_mut().zip(xr).zip(gr) {
                    *o = rstd * (gv - gm - (xv - mean) * rstd * gy);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `layer_norm(x) × gamma + beta` over the last dimension, one pass. The same arithmetic,
/// in the same order, as [`LayerNormFwd`] then [`RowOp::Mul`] then [`RowOp::Add`] (and
/// their backward passes): the same bits, in one pass instead of three.
pub(super) struct LayerNormAffine {
    pub(super) eps: f32,
}

impl CustomOp3 for LayerNormAffine {
    fn name(&self) -> &'static str {
        "physworld-layer-norm-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let (gamma, beta) = (slice(s2, l2, self.name())?, slice(s3, l3, self.name())?);
        let d = last_dim(l1);
        if gamma.len() != d || beta.len() != d {
            return Err(candle_core::Error::Msg(format!("{}: gain and bias must have {d} values", self.name())));
        }
        let eps = self.eps;
        let y = map_rows(
            x,
            None,
            d,
            #[inline(always)]
            |xr, _, yr| {
                let (mean, rstd) = row_stats(xr, eps);
                for (((o, v), g), b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                    *o = (v - mean) * rstd * g + b;
                }
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = gamma.elem_count();
        let packed = x.apply_op3_no_bwd(gamma, &g.contiguous()?, &LayerNormAffineBwd { eps: self.eps })?;
        let n = x.elem_count();
        Ok((
            Some(packed.narrow(0, 0, n)?.reshape(x.shape())?),
            Some(packed.narrow(0, n, d)?.reshape(gamma.shape())?),
            Some(packed.narrow(0, n + d, d)?.reshape(gamma.shape())?),
        ))
    }
}

/// The gradients of [`LayerNormAffine`] from `x`, `gamma` and the output's gradient `g`,
/// packed as `[dx (all of x), dgamma (d), dbeta (d)]`.
pub(super) struct LayerNormAffineBwd {
    pub(super) eps: f32,
}

impl CustomOp3 for LayerNormAffineBwd {
    fn name(&self) -> &'static str {
        "physworld-layer-norm-affine-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?, slice(s3, l3, self.name())?);
        let d = last_dim(l1);
        let eps = self.eps;
        let packed = rows_with_sums(
            x.len() / d,
            d,
            2,
            #[inline(always)]
            |r, dr, acc| {
                let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                let (mean, rstd) = row_stats(xr, eps);
                for (c, (xv, gv)) in xr.iter().zip(gr).enumerate() {
                    let y0 = (xv - mean) * rstd;
                    acc[c] += gv * y0; // dgamma
                    acc[d + c] += gv; // dbeta
                    dr[c] = gv * gamma[c]; // the normalised output's gradient, for now
                }
                let gm = sum_map(dr, dr, |gn, _| gn) / d as f32;
                let gy = sum_map(dr, xr, |gn, xv| gn * (xv - mean) * rstd) / d as f32;
                for (o, xv) in dr.iter_mut().zip(xr) {
                    *o = rstd * (*o - gm - (xv - mean) * rstd * gy);
                }
            },
        );
        let n = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(n)))
    }
}
