//! GELU (erf form), alone and fused with a bias add, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::*;

/// `gelu(x + b)` with a vector `b` `[d]` broadcast over the rows of `x`: the same bits as
/// [`RowOp::Add`] then [`GeluFwd`] (and their backward passes), in one pass.
pub(super) struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "physworld-bias-gelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let d = last_dim(l1);
        if b.len() != d {
            return Err(candle_core::Error::Msg(format!("{}: bias of {} for rows of {d}", self.name(), b.len())));
        }
        let y = map_rows(
            x,
            None,
            d,
            #[inline(always)]
            |xr, _, yr| {
                yr.iter_mut().zip(xr).zip(b).for_each(|((o, x), b)| *o = gelu_value(x + b));
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, b: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(b, &g.contiguous()?, &BiasGeluBwd)?;
        let n = x.elem_count();
        Ok((Some(packed.narrow(0, 0, n)?.reshape(x.shape())?), Some(packed.narrow(0, n, b.elem_count())?)))
    }
}

/// The gradients of [`BiasGelu`] from `x`, `b` and the output's gradient, packed as
/// `[dx (all of x), db (d)]`.
pub(super) struct BiasGeluBwd;

impl CustomOp3 for BiasGeluBwd {
    fn name(&self) -> &'static str {
        "physworld-bias-gelu-bwd"
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
        let (x, b, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?, slice(s3, l3, self.name())?);
        let d = last_dim(l1);
        let packed = rows_with_sums(
            x.len() / d,
            d,
            1,
            #[inline(always)]
            |r, dr, acc| {
                let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                for c in 0..d {
                    let dh = gelu_grad(xr[c] + b[c], gr[c]);
                    dr[c] = dh;
                    acc[c] += dh;
                }
            },
        );
        let n = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(n)))
    }
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7 in exact arithmetic,
/// under 1e-6 in f32), branch-free on top of [`exp`] so that loops calling it vectorise
/// (libm's `erff` is a call per element).
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    erf_and_gauss(x).0
}

/// `(erf(x), e^(-x^2))`: the Gaussian factor [`erf`] computes on the way, which the GELU
/// gradient needs too (one `exp` instead of two).
#[inline(always)]
pub(super) fn erf_and_gauss(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let mut poly = 1.061_405_4f32;
    poly = poly.mul_add(t, -1.453_152_1);
    poly = poly.mul_add(t, 1.421_413_7);
    poly = poly.mul_add(t, -0.284_496_74);
    poly = poly.mul_add(t, 0.254_829_6);
    let gauss = exp(-a * a);
    let y = (-poly * t).mul_add(gauss, 1.0);
    (if x < 0.0 { -y } else { y }, gauss)
}

/// The standard normal CDF, `0.5 (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub(super) fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x Phi(x)`.
#[inline(always)]
pub(super) fn gelu_value(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// `g (Phi(x) + x phi(x))`, `phi` the standard normal density.
#[inline(always)]
pub(super) fn gelu_grad(x: f32, g: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    // phi(x) = e^(-(x / sqrt 2)^2) / sqrt(2 pi): the factor erf(x / sqrt 2) computed.
    let (e, gauss) = erf_and_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
    g * (0.5 * (1.0 + e) + x * INV_SQRT_2PI * gauss)
}

/// GELU, exact (erf) form: `0.5 x (1 + erf(x / sqrt 2))`, as candle's `gelu_erf`.
pub(super) struct GeluFwd;

impl CustomOp1 for GeluFwd {
    fn name(&self) -> &'static str {
        "physworld-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        // Explicit loops calling the inlined math (through a closure the compiler kept a
        // call per element and did not vectorise).
        y.par_chunks_mut(ELEMS_PER_TASK).zip(x.par_chunks(ELEMS_PER_TASK)).for_each(|(o, x)| {
            simd(
                #[inline(always)]
                || o.iter_mut().zip(x).for_each(|(o, x)| *o = gelu_value(*x)),
            )
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&g.contiguous()?, &GeluBwd)?))
    }
}

/// `dx = g (0.5 (1 + erf(x / sqrt 2)) + x phi(x))`, `phi` the standard normal density.
pub(super) struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "physworld-gelu-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let dx = zip_map(x, g, gelu_grad);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
