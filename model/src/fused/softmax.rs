//! Softmax over the last dimension, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::kernel::*;

/// Softmax over the last dimension (max-shifted).
pub(super) struct SoftmaxFwd;

impl CustomOp1 for SoftmaxFwd {
    fn name(&self) -> &'static str {
        "physworld-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let d = last_dim(l);
        let y = map_rows(
            x,
            None,
            d,
            #[inline(always)]
            |xr, _, yr| {
                let m = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for (o, v) in yr.iter_mut().zip(xr) {
                    *o = exp(v - m);
                }
                let inv = 1.0 / sum_map(yr, yr, |v, _| v);
                yr.iter_mut().for_each(|o| *o *= inv);
            },
        );
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd)?))
    }
}

/// `dx = y (g - sum(g y))`.
pub(super) struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "physworld-softmax-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = last_dim(l1);
        let dx = map_rows(
            y,
            Some(g),
            d,
            #[inline(always)]
            |yr, gr, dr| {
                let dot = dot(yr, gr);
                for ((o, yv), gv) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = yv * (gv - dot);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
