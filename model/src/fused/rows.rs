//! Per-channel add and multiply of a `[d]` vector over rows, and elementwise products.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::*;

/// Column sums of a `[rows, d]` matrix: fixed chunks of rows summed in parallel, the
/// partial sums added in chunk order (the same bits whatever the thread count).
pub(super) fn column_sums(x: &[f32], d: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = x
        .par_chunks(d * ROWS_PER_TASK)
        .map(|c| {
            simd(
                #[inline(always)]
                || {
                    let mut acc = vec![0f32; d];
                    for row in c.chunks_exact(d) {
                        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                    }
                    acc
                },
            )
        })
        .collect();
    let mut out = vec![0f32; d];
    for p in partials {
        out.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    out
}

/// `x (+|×) v` with a vector `v` `[d]` broadcast over the rows of `x` `[..., d]`.
#[derive(Clone, Copy)]
pub(super) enum RowOp {
    Add,
    Mul,
}

impl CustomOp2 for RowOp {
    fn name(&self) -> &'static str {
        match self {
            RowOp::Add => "physworld-add-row",
            RowOp::Mul => "physworld-mul-row",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, v) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = last_dim(l1);
        if v.len() != d {
            return Err(candle_core::Error::Msg(format!("{}: vector of {} for rows of {d}", self.name(), v.len())));
        }
        let op = *self;
        let y = map_rows(
            x,
            None,
            d,
            #[inline(always)]
            |xr, _, yr| match op {
                RowOp::Add => yr.iter_mut().zip(xr).zip(v).for_each(|((o, a), b)| *o = a + b),
                RowOp::Mul => yr.iter_mut().zip(xr).zip(v).for_each(|((o, a), b)| *o = a * b),
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, v: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        match self {
            // d/dx = g; d/dv = column sums of g.
            RowOp::Add => Ok((Some(g.clone()), Some(g.apply_op1_no_bwd(&ColumnSums)?.reshape(v.shape())?))),
            // d/dx = g v; d/dv = column sums of g x.
            RowOp::Mul => {
                let dx = g.apply_op2_no_bwd(v, &RowOp::Mul)?;
                let gx = g.apply_op2_no_bwd(&x.contiguous()?, &ElemMul)?;
                Ok((Some(dx), Some(gx.apply_op1_no_bwd(&ColumnSums)?.reshape(v.shape())?)))
            }
        }
    }
}

/// Column sums over every leading dimension: `[..., d]` to `[d]`.
pub(super) struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "physworld-column-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(l);
        Ok((CpuStorage::F32(column_sums(slice(s, l, self.name())?, d)), Shape::from(d)))
    }
}

/// Elementwise product of two tensors of one shape (for backward passes).
pub(super) struct ElemMul;

impl CustomOp2 for ElemMul {
    fn name(&self) -> &'static str {
        "physworld-elem-mul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let out = zip_map(
            a,
            b,
            #[inline(always)]
            |x, y| x * y,
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
