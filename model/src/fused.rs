//! Fused CPU f32 kernels with their own backward passes: multi-head attention, layer
//! norm, softmax, GELU and per-channel add/multiply.
//!
//! Candle's own fused kernels (`candle_nn::ops::layer_norm`, `softmax_last_dim`) have no
//! backward (candle issues #3011, #2168), so the layers would otherwise build these from
//! many elementwise ops, each allocating its output, and walk twice as many backward. Each
//! op here is one pass forward and one backward, written as a candle custom op whose `bwd`
//! is itself a custom op. Work is split by rows or batch elements in fixed chunks and
//! partial sums are added in chunk order, so results do not depend on the thread count.
//! Other devices and dtypes take the composed path ([`crate::layers::attention_composed`],
//! [`crate::layers::layer_norm_composed`], [`crate::layers::softmax_composed`], candle's
//! `gelu_erf` and broadcasting ops); the tests check that both agree, values and gradients.
//! The backward ops have no backward of their own: second-order gradients are not
//! available through these kernels.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows per parallel task: each row is computed independently, so results do not depend
/// on the thread count.
const ROWS_PER_TASK: usize = 64;

/// Set by a test to run every kernel compiled for the baseline instruction set.
static BASELINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run `f` compiled for the best instruction set of this CPU (AVX2 + FMA where present,
/// chosen at run time by pulp, as gemm does; the baseline build only assumes SSE2). The
/// kernels' arithmetic is written out in a fixed order, Rust never fuses a multiply and
/// an add on its own, and the fused multiply-adds they ask for (`mul_add`) are exactly
/// rounded everywhere (one instruction with FMA, libm's `fmaf` without), so every
/// instruction set gives the same bits (a test checks it).
#[inline(always)]
fn simd<R>(f: impl FnOnce() -> R) -> R {
    if BASELINE.load(std::sync::atomic::Ordering::Relaxed) {
        return pulp::Arch::Scalar.dispatch(f);
    }
    pulp::Arch::new().dispatch(f)
}

/// `out[r] = f(a[r], b[r])` for every row of width `d`, rows in parallel.
fn map_rows(a: &[f32], b: Option<&[f32]>, d: usize, f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    let step = d * ROWS_PER_TASK;
    out.par_chunks_mut(step).enumerate().for_each(|(i, o)| {
        simd(
            #[inline(always)]
            || {
                let lo = i * step;
                let ar = &a[lo..lo + o.len()];
                let br = b.map_or(&[][..], |b| &b[lo..lo + o.len()]);
                for (k, orow) in o.chunks_exact_mut(d).enumerate() {
                    let brow = if br.is_empty() { br } else { &br[k * d..(k + 1) * d] };
                    f(&ar[k * d..(k + 1) * d], brow, orow);
                }
            },
        )
    });
    out
}

/// Whether `x` can take the fused path: an f32 tensor on the CPU with a last dimension.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() >= 1 && x.dim(x.rank() - 1).is_ok_and(|d| d > 0)
}

/// `x` as a contiguous f32 slice of its layout.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &'static str) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// Row mean and `1 / sqrt(var + eps)`.
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_map(row, row, |v, _| v) / n;
    let var = sum_map(row, row, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `sum_j f(a[j], b[j])` in 8 fixed lanes, finished as [`dot`] is: vectorisable (a serial
/// sum is one dependent addition per element), the same order every time.
#[inline(always)]
fn sum_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let mut s = lane_sum(&acc);
    for (x, y) in ar.iter().zip(br) {
        s += f(*x, *y);
    }
    s
}

/// The 8 lane sums of [`dot`] and [`sum_map`] combined pairwise.
#[inline(always)]
fn lane_sum(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension.
struct LayerNormFwd {
    eps: f32,
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
struct LayerNormBwd {
    eps: f32,
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

/// `f(row)` for every row of width `d`, `f` writing that row's output and adding into `k`
/// column sums of width `d`: rows in parallel chunks of [`ROWS_PER_TASK`], each chunk's
/// sums added in row order and the chunks' sums in chunk order (as [`column_sums`]: the
/// same bits whatever the thread count). Returns the outputs followed by the `k` sums,
/// packed in one buffer (a backward op's one output).
fn rows_with_sums(rows: usize, d: usize, k: usize, f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut packed = vec![0f32; (rows + k) * d];
    let (out, sums) = packed.split_at_mut(rows * d);
    let partials: Vec<Vec<f32>> = out
        .par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .map(|(ci, chunk)| {
            simd(
                #[inline(always)]
                || {
                    let mut acc = vec![0f32; k * d];
                    for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                        f(ci * ROWS_PER_TASK + r, o, &mut acc);
                    }
                    acc
                },
            )
        })
        .collect();
    for p in partials {
        sums.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    packed
}

/// `layer_norm(x) × gamma + beta` over the last dimension, one pass. The same arithmetic,
/// in the same order, as [`LayerNormFwd`] then [`RowOp::Mul`] then [`RowOp::Add`] (and
/// their backward passes): the same bits, in one pass instead of three.
struct LayerNormAffine {
    eps: f32,
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
struct LayerNormAffineBwd {
    eps: f32,
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

/// `gelu(x + b)` with a vector `b` `[d]` broadcast over the rows of `x`: the same bits as
/// [`RowOp::Add`] then [`GeluFwd`] (and their backward passes), in one pass.
struct BiasGelu;

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
struct BiasGeluBwd;

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

/// `e^x` for `x <= 0` (softmax after the max shift), within 4 f32 epsilons (relative) of
/// `f32::exp` (the unit test's bound), and
/// exactly 0 below -87 (masked entries): Cephes' `expf` range reduction and polynomial,
/// branch-free so that the compiler vectorises the loop that calls it (libm's `expf` is a
/// call per element, the largest cost of the forward pass). Pure arithmetic: the same
/// bits whatever the vector width.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the 1.5 * 2^23 trick (valid for |x log2 e| < 2^22).
    const ROUND: f32 = 12_582_912.0;
    let xc = if x < -87.0 { -87.0 } else { x };
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    // The integer k sits in t's low mantissa bits: integer ops, no float-to-int cast
    // (Rust's saturating `as` kept the loop from vectorising).
    let ki = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    let scale = f32::from_bits(((ki + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { y * scale }
}

/// Softmax over the last dimension (max-shifted).
struct SoftmaxFwd;

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
struct SoftmaxBwd;

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

/// Elements per parallel task of the elementwise kernels.
const ELEMS_PER_TASK: usize = 16_384;

/// `out[i] = f(a[i], b[i])` over two slices of one length, in parallel chunks, each inside
/// [`simd`] (pass an `#[inline(always)]` closure so that the loop vectorises).
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(ELEMS_PER_TASK).zip(a.par_chunks(ELEMS_PER_TASK).zip(b.par_chunks(ELEMS_PER_TASK))).for_each(
        |(o, (a, b))| {
            simd(
                #[inline(always)]
                || o.iter_mut().zip(a).zip(b).for_each(|((o, x), y)| *o = f(*x, *y)),
            )
        },
    );
    out
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7 in exact arithmetic,
/// under 1e-6 in f32), branch-free on top of [`exp`] so that loops calling it vectorise
/// (libm's `erff` is a call per element).
#[inline(always)]
fn erf(x: f32) -> f32 {
    erf_and_gauss(x).0
}

/// `(erf(x), e^(-x^2))`: the Gaussian factor [`erf`] computes on the way, which the GELU
/// gradient needs too (one `exp` instead of two).
#[inline(always)]
fn erf_and_gauss(x: f32) -> (f32, f32) {
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
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x Phi(x)`.
#[inline(always)]
fn gelu_value(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// `g (Phi(x) + x phi(x))`, `phi` the standard normal density.
#[inline(always)]
fn gelu_grad(x: f32, g: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    // phi(x) = e^(-(x / sqrt 2)^2) / sqrt(2 pi): the factor erf(x / sqrt 2) computed.
    let (e, gauss) = erf_and_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
    g * (0.5 * (1.0 + e) + x * INV_SQRT_2PI * gauss)
}

/// GELU, exact (erf) form: `0.5 x (1 + erf(x / sqrt 2))`, as candle's `gelu_erf`.
struct GeluFwd;

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
struct GeluBwd;

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

/// Multi-head attention over a fused `qkv` projection `[B, N, 3 D]` (laid out
/// `[B, N, 3, H, hd]`) with an optional additive mask, to `[B, N, D]`:
/// `softmax(q kᵀ / sqrt(hd) + mask) v` per head. When the output needs a gradient, the
/// forward keeps the attention weights (`[B, H, N, N]`, as PyTorch's attention does) for
/// the backward, which otherwise recomputes them (as flash attention does); both give the
/// same bits. Work is split by batch element, each computed in a fixed order: the same
/// bits whatever the thread count.
#[derive(Clone)]
struct AttentionFwd {
    heads: usize,
    /// Where the forward leaves its weights for the backward (`None`: not kept).
    weights: Option<std::sync::Arc<std::sync::OnceLock<Vec<f32>>>>,
    /// Additive mask on the host, read as `mask[b * b_stride + i * q_stride + j]`.
    mask: Option<std::sync::Arc<Vec<f32>>>,
    b_stride: usize,
    q_stride: usize,
    /// [`live_keys`] of every mask row, in the mask's row order (computed once, for the
    /// forward and the backward).
    lives: std::sync::Arc<Vec<usize>>,
}

/// One batch element's view of `qkv`, with `k` and `v` transposed per head (`hd × N`) so
/// that the loops over keys run over contiguous memory.
struct Heads {
    n: usize,
    hd: usize,
    /// `[H][N][hd]`.
    q: Vec<f32>,
    /// `[H][hd][N]`.
    kt: Vec<f32>,
    vt: Vec<f32>,
}

impl Heads {
    fn new(qkv: &[f32], n: usize, heads: usize, hd: usize) -> Heads {
        let d = heads * hd;
        let mut q = vec![0f32; n * d];
        let (mut kt, mut vt) = (vec![0f32; n * d], vec![0f32; n * d]);
        for i in 0..n {
            for h in 0..heads {
                for c in 0..hd {
                    let base = i * 3 * d + h * hd + c;
                    q[(h * n + i) * hd + c] = qkv[base];
                    kt[(h * hd + c) * n + i] = qkv[base + d];
                    vt[(h * hd + c) * n + i] = qkv[base + 2 * d];
                }
            }
        }
        Heads { n, hd, q, kt, vt }
    }

    /// Attention weights of query `i` of head `h` over the first `p.len()` keys (see
    /// [`live_keys`]; the weights of the others are exactly 0) into `p`.
    #[inline(always)]
    fn weights(&self, h: usize, i: usize, scale: f32, mask: Option<&[f32]>, p: &mut [f32]) {
        let (n, hd) = (self.n, self.hd);
        combine(&self.q[(h * n + i) * hd..(h * n + i + 1) * hd], &self.kt[h * hd * n..(h + 1) * hd * n], n, p);
        match mask {
            Some(m) => p.iter_mut().zip(m).for_each(|(x, m)| *x = x.mul_add(scale, *m)),
            None => p.iter_mut().for_each(|x| *x *= scale),
        }
        let mx = max(p);
        p.iter_mut().for_each(|x| *x = exp(*x - mx));
        let inv = 1.0 / sum_map(p, p, |v, _| v);
        p.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Masks at or below this drop a key: its weight underflows to exactly 0 as long as the
/// scores and the kept keys' masks are far above it (the model's masks are 0 or -1e9; a
/// kept key's mask must stay above about -1e7).
const DROPPED: f32 = -1e8;

/// How many leading keys of a query's mask row (`n` keys) can have a non-zero weight: up
/// to the last kept key, rounded up to a multiple of 8 (or `n`). The keys past it are dropped, so
/// their weights are exactly 0 and every sum over keys gets exact zeros from them;
/// leaving them out changes no bit as long as [`dot`]'s lanes see the same elements,
/// hence the rounding. A row that drops every key keeps them all (uniform weights, as
/// the composed ops give).
#[inline(always)]
fn live_keys(m: &[f32]) -> usize {
    let n = m.len();
    // A NaN mask is not a dropped key: it reaches the weights, as it did before skipping.
    // Whole chunks of 8 from the start, so the end of the last one holding a kept key is
    // the rounded count.
    let kept = |c: &[f32]| c.iter().fold(false, |k, v| k | v.is_nan() | (*v > DROPPED));
    match m.chunks(8).rposition(kept) {
        Some(last) => ((last + 1) * 8).min(n),
        None => n,
    }
}

/// The largest element (`-inf` for none), in 8 lanes: the maximum does not depend on the
/// order, and a serial fold is one dependent compare per element.
#[inline(always)]
fn max(p: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = p.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    rest.iter().chain(&acc).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `out[j] = sum_c coef[c] rows[c n + j]` for `j < out.len()` (`rows` is `coef.len() × n`),
/// summed over `c` in order, eight outputs at a time held in registers (one store per
/// output instead of one per term), 32 at a time where there are as many: four
/// independent chains of multiply-adds (one chain waits on each addition's latency).
#[inline(always)]
fn combine(coef: &[f32], rows: &[f32], n: usize, out: &mut [f32]) {
    let mut j = 0;
    while j + 64 <= out.len() {
        combine_block::<8>(coef, rows, n, j, out);
        j += 64;
    }
    while j + 32 <= out.len() {
        combine_block::<4>(coef, rows, n, j, out);
        j += 32;
    }
    while j + 8 <= out.len() {
        combine_block::<1>(coef, rows, n, j, out);
        j += 8;
    }
    for (jj, o) in out.iter_mut().enumerate().skip(j) {
        let mut acc = 0f32;
        for (c, &w) in coef.iter().enumerate() {
            acc = w.mul_add(rows[c * n + jj], acc);
        }
        *o = acc;
    }
}

/// [`combine`] for the `8 B` outputs from `j`: each output's terms in the same order
/// whatever `B`, so the same bits.
#[inline(always)]
fn combine_block<const B: usize>(coef: &[f32], rows: &[f32], n: usize, j: usize, out: &mut [f32]) {
    let mut acc = [[0f32; 8]; B];
    for (c, &w) in coef.iter().enumerate() {
        let r = &rows[c * n + j..c * n + j + 8 * B];
        for (b, acc) in acc.iter_mut().enumerate() {
            for l in 0..8 {
                acc[l] = w.mul_add(r[8 * b + l], acc[l]);
            }
        }
    }
    for (b, acc) in acc.iter().enumerate() {
        out[j + 8 * b..j + 8 * b + 8].copy_from_slice(acc);
    }
}

/// `sum_j a[j] b[j]` in 8 fixed lanes (vectorisable, same order every time).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32];
    dots_block::<1>(a, b, 0, &mut out);
    out[0]
}

/// The end of [`dot`] (and of each row of [`dots`]): the 8 lane sums combined pairwise,
/// then the elements past the last whole chunk of 8 added in order. One function, so that
/// both give the same bits.
#[inline(always)]
fn finish_dot(acc: &[f32; 8], a_rest: &[f32], b_rest: &[f32]) -> f32 {
    let mut s = lane_sum(acc);
    for (x, y) in a_rest.iter().zip(b_rest) {
        s = x.mul_add(*y, s);
    }
    s
}

/// `out[r] = dot(a, rows[r * stride..r * stride + a.len()])` for every `r < out.len()`:
/// the same bits as [`dot`] row by row, computed 8 rows at once so that their sums run as
/// independent chains (one dot is a chain of dependent additions). A remainder of fewer
/// than 8 rows is done as the last 8 rows again (the overlap is written twice with the
/// same bits): LLVM vectorised a 4-row block across rows, with shuffles and spills.
#[inline(always)]
fn dots(a: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let len = out.len();
    if len < 8 {
        for (r, o) in out.iter_mut().enumerate() {
            *o = dot(a, &rows[r * stride..r * stride + a.len()]);
        }
        return;
    }
    let mut r = 0;
    while r < len {
        let at = r.min(len - 8);
        dots_block::<8>(a, &rows[at * stride..], stride, &mut out[at..at + 8]);
        r = at + 8;
    }
}

/// [`dots`] for `R` rows.
#[inline(always)]
fn dots_block<const R: usize>(a: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let n = a.len();
    let whole = n - n % 8;
    let mut acc = [[0f32; 8]; R];
    let mut j = 0;
    while j < whole {
        let x = &a[j..j + 8];
        for (k, acc) in acc.iter_mut().enumerate() {
            let y = &rows[k * stride + j..k * stride + j + 8];
            for l in 0..8 {
                acc[l] = x[l].mul_add(y[l], acc[l]);
            }
        }
        j += 8;
    }
    for (k, (acc, o)) in acc.iter().zip(out.iter_mut()).enumerate() {
        *o = finish_dot(acc, &a[whole..], &rows[k * stride + whole..k * stride + n]);
    }
}

impl AttentionFwd {
    /// The op over rows of `n` keys, with the live key counts of `mask`'s rows.
    fn new(
        heads: usize,
        keep_weights: bool,
        mask: Option<Vec<f32>>,
        b_stride: usize,
        q_stride: usize,
        n: usize,
    ) -> Self {
        let lives = match &mask {
            Some(m) => m.par_chunks(n).map(live_keys).collect(),
            None => Vec::new(),
        };
        AttentionFwd {
            heads,
            // Where the forward leaves its weights, when the backward will read them.
            weights: keep_weights.then(|| std::sync::Arc::new(std::sync::OnceLock::new())),
            mask: mask.map(std::sync::Arc::new),
            b_stride,
            q_stride,
            lives: std::sync::Arc::new(lives),
        }
    }

    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, n, d3) = l.shape().dims3()?;
        let d = d3 / 3;
        Ok((b, n, d, d / self.heads.max(1)))
    }

    /// The forward of batch element `bi`; its weights go to `kept` (`[H][N][N]`) when they
    /// are kept. Inlined into [`simd`]'s region, as are the helpers it calls.
    #[inline(always)]
    fn element(
        &self,
        qkv: &[f32],
        bi: usize,
        (n, d, hd): (usize, usize, usize),
        yb: &mut [f32],
        mut kept: Option<&mut [f32]>,
    ) {
        let scale = 1.0 / (hd as f32).sqrt();
        let hs = Heads::new(&qkv[bi * n * 3 * d..(bi + 1) * n * 3 * d], n, self.heads, hd);
        let mut scratch = vec![0f32; if kept.is_some() { 0 } else { n }];
        for h in 0..self.heads {
            for i in 0..n {
                let live = self.live(bi, i, n);
                let mask = self.mask_row(bi, i, n);
                let p = match kept.as_deref_mut() {
                    Some(w) => &mut w[(h * n + i) * n..(h * n + i) * n + live],
                    None => &mut scratch[..live],
                };
                hs.weights(h, i, scale, mask.map(|m| &m[..live]), p);
                dots(p, &hs.vt[h * hd * n..], n, &mut yb[i * d + h * hd..i * d + (h + 1) * hd]);
            }
        }
    }

    /// [`live_keys`] of query `i` of batch element `b`.
    #[inline(always)]
    fn live(&self, b: usize, i: usize, n: usize) -> usize {
        match self.mask {
            None => n,
            Some(_) => self.lives[(b * self.b_stride + i * self.q_stride) / n],
        }
    }

    fn mask_row(&self, b: usize, i: usize, n: usize) -> Option<&[f32]> {
        let m = self.mask.as_deref()?;
        let at = b * self.b_stride + i * self.q_stride;
        Some(&m[at..at + n])
    }
}

impl CustomOp1 for AttentionFwd {
    fn name(&self) -> &'static str {
        "physworld-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = slice(s, l, self.name())?;
        let (b, n, d, hd) = self.dims(l)?;
        let mut y = vec![0f32; b * n * d];
        match &self.weights {
            Some(cell) => {
                let mut w = vec![0f32; b * self.heads * n * n];
                y.par_chunks_mut(n * d).zip(w.par_chunks_mut(self.heads * n * n)).enumerate().for_each(
                    |(bi, (yb, wb))| {
                        simd(
                            #[inline(always)]
                            || self.element(qkv, bi, (n, d, hd), yb, Some(wb)),
                        )
                    },
                );
                // Set once: candle runs a forward once per op value.
                let _ = cell.set(w);
            }
            None => y.par_chunks_mut(n * d).enumerate().for_each(|(bi, yb)| {
                simd(
                    #[inline(always)]
                    || self.element(qkv, bi, (n, d, hd), yb, None),
                )
            }),
        }
        Ok((CpuStorage::F32(y), Shape::from((b, n, d))))
    }

    fn bwd(&self, qkv: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(qkv.apply_op2_no_bwd(&g.contiguous()?, &AttentionBwd(self.clone()))?))
    }
}

/// `out(j, c) = sum_i rows[i n + j] coef[i stride + c]` for every key `j < n` and
/// `c < width`, over the queries `i` with `j < lives[i]` (`rows` is `[N][N]`, row `i`
/// read up to `lives[i]`, which is a multiple of 8 or `n`), added in query order with
/// one multiply-add per term: the keys' gradients of attention. Blocks of 8 keys × 8
/// columns are held in registers over all queries (the per-query alternative loads and
/// stores a row of the result for every multiply-add).
#[inline(always)]
fn accumulate_keys(
    rows: &[f32],
    lives: &[usize],
    (coef, stride): (&[f32], usize),
    width: usize,
    mut out: impl FnMut(usize, usize, f32),
) {
    let n = lives.len();
    let mut jb = 0;
    while jb < n {
        let keys = (n - jb).min(8);
        if width >= 8 {
            // Column blocks of 8; a remainder overlaps the last 8 (same bits, written twice).
            let mut cb = 0;
            while cb < width {
                let at = cb.min(width - 8);
                let acc = accumulate_block::<8>(rows, lives, coef, stride, jb, keys, at);
                for (c, acc) in acc.iter().enumerate() {
                    for (l, v) in acc.iter().take(keys).enumerate() {
                        out(jb + l, at + c, *v);
                    }
                }
                cb = at + 8;
            }
        } else {
            for c in 0..width {
                let acc = accumulate_block::<1>(rows, lives, coef, stride, jb, keys, c);
                for (l, v) in acc[0].iter().take(keys).enumerate() {
                    out(jb + l, c, *v);
                }
            }
        }
        jb += 8;
    }
}

/// [`accumulate_keys`] for keys `jb..jb + keys` (`keys <= 8`) and columns `at..at + G`.
#[inline(always)]
fn accumulate_block<const G: usize>(
    rows: &[f32],
    lives: &[usize],
    coef: &[f32],
    stride: usize,
    jb: usize,
    keys: usize,
    at: usize,
) -> [[f32; 8]; G] {
    let n = lives.len();
    let mut acc = [[0f32; 8]; G];
    let mut tail = [0f32; 8];
    for (i, &live) in lives.iter().enumerate() {
        if live <= jb {
            continue;
        }
        let r: &[f32] = if keys == 8 {
            &rows[i * n + jb..i * n + jb + 8]
        } else {
            tail[..keys].copy_from_slice(&rows[i * n + jb..i * n + jb + keys]);
            &tail
        };
        let w = &coef[i * stride + at..i * stride + at + G];
        for (acc, &wc) in acc.iter_mut().zip(w) {
            for l in 0..8 {
                acc[l] = r[l].mul_add(wc, acc[l]);
            }
        }
    }
    acc
}

/// The gradient of [`AttentionFwd`] with respect to `qkv`, from `qkv` and the output's
/// gradient `g` `[B, N, D]`.
struct AttentionBwd(AttentionFwd);

impl CustomOp2 for AttentionBwd {
    fn name(&self) -> &'static str {
        "physworld-attention-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (qkv, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let f = &self.0;
        let (b, n, d, hd) = f.dims(l1)?;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut dqkv = vec![0f32; b * n * 3 * d];
        dqkv.par_chunks_mut(n * 3 * d).enumerate().for_each(|(bi, out)| {
            simd(
                #[inline(always)]
                || {
                    let hs = Heads::new(&qkv[bi * n * 3 * d..(bi + 1) * n * 3 * d], n, f.heads, hd);
                    let gb = &g[bi * n * d..(bi + 1) * n * d];
                    let kept =
                        f.weights.as_ref().and_then(|c| c.get()).map(|w| &w[bi * f.heads * n * n..][..f.heads * n * n]);
                    // Per head: the weights (kept, or recomputed here) and the scores'
                    // gradients of every query, `[N][N]`, row `i` up to its live keys.
                    let mut ps = vec![0f32; if kept.is_some() { 0 } else { n * n }];
                    let mut dss = vec![0f32; n * n];
                    let lives: Vec<usize> = (0..n).map(|i| f.live(bi, i, n)).collect();
                    for h in 0..f.heads {
                        for (i, &live) in lives.iter().enumerate() {
                            // Only the live keys: the others have weight 0 and add exact
                            // zeros to every sum below.
                            let p: &[f32] = match kept {
                                Some(w) => &w[(h * n + i) * n..(h * n + i) * n + live],
                                None => {
                                    let mask = f.mask_row(bi, i, n);
                                    let p = &mut ps[i * n..i * n + live];
                                    hs.weights(h, i, scale, mask.map(|m| &m[..live]), p);
                                    p
                                }
                            };
                            let ds = &mut dss[i * n..i * n + live];
                            let gi = &gb[i * d + h * hd..i * d + (h + 1) * hd];
                            // dp_j = g_i · v_j
                            combine(gi, &hs.vt[h * hd * n..(h + 1) * hd * n], n, ds);
                            let c0 = dot(p, ds);
                            ds.iter_mut().zip(p).for_each(|(x, pj)| *x = pj * (*x - c0) * scale);
                            // dq_i = sum_j ds_j k_j
                            dots(ds, &hs.kt[h * hd * n..], n, &mut out[i * 3 * d + h * hd..i * 3 * d + (h + 1) * hd]);
                        }
                        // dk_j = sum_i ds_ij q_i and dv_j = sum_i p_ij g_i, over the queries
                        // that see key j, in query order.
                        let q = &hs.q[h * n * hd..(h + 1) * n * hd];
                        accumulate_keys(&dss, &lives, (q, hd), hd, |j, c, v| out[j * 3 * d + d + h * hd + c] = v);
                        let p = kept.map_or(&ps[..], |w| &w[h * n * n..(h + 1) * n * n]);
                        let g = &gb[h * hd..];
                        accumulate_keys(p, &lives, (g, d), hd, |j, c, v| out[j * 3 * d + 2 * d + h * hd + c] = v);
                    }
                },
            )
        });
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

/// Fused multi-head attention of a [`supported`] `qkv` `[B, N, 3 D]` (`[B, N, 3, H, hd]`)
/// with an optional additive mask `[B, 1, N, N]` or `[B, 1, 1, N]` (key padding):
/// `[B, N, D]`. `None` for other mask shapes (the caller composes the ops instead).
pub fn attention(qkv: &Tensor, mask: Option<&Tensor>, heads: usize) -> Result<Option<Tensor>> {
    let (b, n, d3) = qkv.dims3()?;
    if heads == 0 || d3 % (3 * heads) != 0 || b * n * d3 == 0 {
        return Ok(None);
    }
    let (mask, b_stride, q_stride) = match mask {
        None => (None, 0, 0),
        // A mask that needs a gradient (a learned bias) takes the composed path: here the
        // mask is a host constant.
        Some(m) if m.track_op() => return Ok(None),
        Some(m) => {
            let q_stride = match m.dims4() {
                Ok((mb, 1, mq, mk)) if mb == b && mk == n && mq == n => n,
                Ok((mb, 1, 1, mk)) if mb == b && mk == n => 0,
                _ => return Ok(None),
            };
            let host: Vec<f32> = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            (Some(host), if q_stride == 0 { n } else { n * n }, q_stride)
        }
    };
    // Keep the weights for the backward only when there will be one.
    let op = AttentionFwd::new(heads, qkv.track_op(), mask, b_stride, q_stride, n);
    Ok(Some(qkv.contiguous()?.apply_op1(op)?))
}

/// Column sums of a `[rows, d]` matrix: fixed chunks of rows summed in parallel, the
/// partial sums added in chunk order (the same bits whatever the thread count).
fn column_sums(x: &[f32], d: usize) -> Vec<f32> {
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
enum RowOp {
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
struct ColumnSums;

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
struct ElemMul;

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

/// `x + v` for a [`supported`] `x` `[..., d]` and `v` `[d]`, with a backward whose vector
/// gradient is a deterministic parallel column sum.
pub fn add_row(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&v.contiguous()?, RowOp::Add)
}

/// `x × v` for a [`supported`] `x` `[..., d]` and `v` `[d]` (see [`add_row`]).
pub fn mul_row(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&v.contiguous()?, RowOp::Mul)
}

/// Fused GELU (erf form) of a [`supported`] tensor.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluFwd)
}

/// Fused `layer_norm(x) × gamma + beta` of a [`supported`] `x` `[..., d]` with `gamma`
/// and `beta` `[d]`: the same bits as [`layer_norm`], [`mul_row`] and [`add_row`] in turn.
pub fn layer_norm_affine(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, LayerNormAffine { eps: eps as f32 })
}

/// Fused `gelu(x + b)` of a [`supported`] `x` `[..., d]` and `b` `[d]`: the same bits as
/// [`add_row`] then [`gelu`].
pub fn bias_gelu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasGelu)
}

/// Fused layer norm (no affine) of a [`supported`] tensor.
pub fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(LayerNormFwd { eps: eps as f32 })
}

/// Fused softmax over the last dimension of a [`supported`] tensor.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxFwd)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    /// A `[rows, d]` variable, a `[d]` variable and a fixed upstream gradient.
    fn inputs(rows: usize, d: usize) -> (Var, Var, Var, Tensor) {
        let t = |n: usize, f: fn(usize) -> f32, shape: &[usize]| {
            Var::from_tensor(&Tensor::from_vec((0..n).map(f).collect(), shape, &Device::Cpu).expect("t")).expect("var")
        };
        let x = t(rows * d, |i| ((i as f32) * 0.377).sin() * 3.0, &[rows, d]);
        let g = t(d, |i| 1.0 + ((i as f32) * 1.3).cos() * 0.5, &[d]);
        let b = t(d, |i| ((i as f32) * 0.7).sin(), &[d]);
        let up = Tensor::from_vec((0..rows * d).map(|i| ((i as f32) * 0.61).cos()).collect(), (rows, d), &Device::Cpu)
            .expect("up");
        (x, g, b, up)
    }

    /// Output and gradients (for `vars`) of `f`, with the upstream gradient `up`.
    fn run(f: impl Fn() -> candle_core::Result<Tensor>, vars: &[&Var], up: &Tensor) -> Vec<Vec<f32>> {
        let y = f().expect("op");
        let grads = (&y * up).and_then(|l| l.sum_all()).and_then(|l| l.backward()).expect("backward");
        let mut out = vec![y.flatten_all().and_then(|t| t.to_vec1()).expect("y")];
        for v in vars {
            out.push(grads.get(v).expect("grad").flatten_all().and_then(|t| t.to_vec1()).expect("grad"));
        }
        out
    }

    /// The fused affine layer norm and bias + GELU give the same bits, values and
    /// gradients, as the ops they replace (over several parallel row chunks).
    #[test]
    fn fused_affine_norm_and_bias_gelu_equal_the_ops_they_replace() {
        use super::{add_row, bias_gelu, gelu, layer_norm, layer_norm_affine, mul_row};
        let (x, g, b, up) = inputs(150, 20);
        let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
        let fused = run(|| layer_norm_affine(xt, gt, bt, 1e-6), &[&x, &g, &b], &up);
        let parts = run(|| add_row(&mul_row(&layer_norm(xt, 1e-6)?, gt)?, bt), &[&x, &g, &b], &up);
        assert_eq!(fused, parts);
        let fused = run(|| bias_gelu(xt, bt), &[&x, &b], &up);
        let parts = run(|| gelu(&add_row(xt, bt)?), &[&x, &b], &up);
        assert_eq!(fused, parts);
        assert!(fused.iter().all(|v| v.iter().any(|x| *x != 0.0)));
    }

    /// Every kernel gives the same bits compiled for the baseline instruction set as for
    /// the best one this CPU has (pulp's dispatch): outputs and gradients of attention,
    /// layer norm (plain and affine), softmax, GELU, bias + GELU and the row ops.
    #[test]
    fn kernels_give_the_same_bits_on_every_instruction_set() {
        use super::{add_row, attention, bias_gelu, gelu, layer_norm, layer_norm_affine, mul_row, softmax};
        let (x, g, b, up) = inputs(150, 24);
        let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
        let qkv = Var::from_tensor(&xt.reshape((2, 25, 72)).expect("qkv")).expect("var");
        let up3 = up.reshape((2, 25, 72)).and_then(|u| u.narrow(2, 0, 24)).expect("up");
        let all = || {
            vec![
                run(|| layer_norm_affine(xt, gt, bt, 1e-6), &[&x, &g, &b], &up),
                run(|| mul_row(&layer_norm(xt, 1e-6)?, gt), &[&x, &g], &up),
                run(|| softmax(xt), &[&x], &up),
                run(|| gelu(xt), &[&x], &up),
                run(|| bias_gelu(xt, bt), &[&x, &b], &up),
                run(|| add_row(xt, bt), &[&x, &b], &up),
                run(|| Ok(attention(qkv.as_tensor(), None, 4)?.expect("fused")), &[&qkv], &up3),
            ]
        };
        let best = all();
        super::BASELINE.store(true, std::sync::atomic::Ordering::Relaxed);
        let baseline = all();
        super::BASELINE.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(best, baseline);
    }

    /// The backward from the weights the forward kept and from recomputed weights: the
    /// same bits (the recomputing path serves a forward that did not keep them).
    #[test]
    fn attention_backward_from_kept_weights_equals_recomputing_them() {
        let (b, n, d, heads) = (3usize, 13usize, 24usize, 4usize);
        let v: Vec<f32> = (0..b * n * 3 * d).map(|i| ((i as f32) * 0.377).sin()).collect();
        let qkv = Var::from_tensor(&Tensor::from_vec(v, (b, n, 3 * d), &Device::Cpu).expect("qkv")).expect("var");
        let m: Vec<f32> = (0..b * n * n).map(|i| if (i * 7) % 5 == 0 { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(m, (b, 1, n, n), &Device::Cpu).expect("mask");
        let y = super::attention(qkv.as_tensor(), Some(&mask), heads).expect("attention").expect("fused");
        let g = Tensor::from_vec((0..b * n * d).map(|i| ((i as f32) * 0.61).cos()).collect(), (b, n, d), &Device::Cpu)
            .expect("g");
        let kept = (y * &g).and_then(|l| l.sum_all()).and_then(|l| l.backward()).expect("backward");
        let kept: Vec<f32> = kept.get(&qkv).expect("grad").flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        // The same op without kept weights, its backward applied by hand.
        let host: Vec<f32> = mask.flatten_all().and_then(|t| t.to_vec1()).expect("host");
        let op = super::AttentionFwd::new(heads, false, Some(host), n * n, n, n);
        let recomputed = qkv.as_tensor().apply_op2_no_bwd(&g, &super::AttentionBwd(op)).expect("bwd");
        let recomputed: Vec<f32> = recomputed.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert_eq!(kept, recomputed);
        assert!(kept.iter().any(|x| *x != 0.0));
    }

    /// Keys dropped at the end of a mask row are skipped (their weights are exactly 0):
    /// the same bits, values and gradients, as computing them with a mask that drops
    /// them without being skipped (-1e7 also underflows the weight to 0). Rows of 37
    /// keys (not a multiple of the 8 lanes); a block-causal `[B, 1, N, N]` mask with keys
    /// dropped in the middle and one row that drops every key, and a key-padding
    /// `[B, 1, 1, N]` mask; the backward from kept weights and from recomputed ones, and
    /// the forward without a gradient (which keeps nothing).
    #[test]
    fn skipping_dropped_trailing_keys_changes_no_bit() {
        let (b, n, d, heads) = (2usize, 37usize, 24usize, 4usize);
        let v: Vec<f32> = (0..b * n * 3 * d).map(|i| ((i as f32) * 0.377).sin() * 2.0).collect();
        let qkv = Var::from_tensor(&Tensor::from_vec(v, (b, n, 3 * d), &Device::Cpu).expect("qkv")).expect("var");
        let up = Tensor::from_vec((0..b * n * d).map(|i| ((i as f32) * 0.61).cos()).collect(), (b, n, d), &Device::Cpu)
            .expect("up");
        let causal = |dropped: f32| {
            let mut m = vec![0f32; b * n * n];
            for bi in 0..b {
                for i in 0..n {
                    let row = &mut m[(bi * n + i) * n..(bi * n + i + 1) * n];
                    for (j, x) in row.iter_mut().enumerate() {
                        if bi == 1 && i == 5 {
                            *x = -1e9; // every key dropped, in both masks
                        } else if j / 4 > i / 4 {
                            *x = dropped; // block-causal: later blocks
                        } else if (i + j) % 7 == 3 {
                            *x = -1e9; // dropped in the middle, never skipped
                        }
                    }
                }
            }
            Tensor::from_vec(m, (b, 1, n, n), &Device::Cpu).expect("mask")
        };
        // Key padding: batch element 0 drops its last 20 keys, element 1 its last 3.
        let padding = |dropped: f32| {
            let m: Vec<f32> = (0..b * n).map(|k| if k % n >= [17, 34][k / n] { dropped } else { 0.0 }).collect();
            Tensor::from_vec(m, (b, 1, 1, n), &Device::Cpu).expect("mask")
        };
        for (mask, (b_stride, q_stride)) in [(&causal as &dyn Fn(f32) -> Tensor, (n * n, n)), (&padding, (n, 0))] {
            let (skipped, computed) = (mask(-1e9), mask(-1e7));
            assert!(super::live_keys(&skipped.flatten_all().and_then(|t| t.to_vec1()).expect("m")[..n]) < n);
            let with = |m: &Tensor| {
                run(|| Ok(super::attention(qkv.as_tensor(), Some(m), heads)?.expect("fused")), &[&qkv], &up)
            };
            let a = with(&skipped);
            assert_eq!(a, with(&computed));
            assert!(a.iter().all(|v| v.iter().any(|x| *x != 0.0)));
            // No gradient: nothing kept, the scratch row reused across queries.
            let plain = qkv.as_tensor().detach();
            let fwd = |m: &Tensor| -> Vec<f32> {
                super::attention(&plain, Some(m), heads)
                    .expect("attention")
                    .expect("fused")
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .expect("y")
            };
            assert_eq!(fwd(&skipped), fwd(&computed));
            assert_eq!(fwd(&skipped), a[0]);
            // The backward that recomputes the weights.
            let recompute = |m: &Tensor| -> Vec<f32> {
                let host: Vec<f32> = m.flatten_all().and_then(|t| t.to_vec1()).expect("host");
                let op = super::AttentionFwd::new(heads, false, Some(host), b_stride, q_stride, n);
                plain
                    .apply_op2_no_bwd(&up, &super::AttentionBwd(op))
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .expect("bwd")
            };
            assert_eq!(recompute(&skipped), recompute(&computed));
            assert_eq!(recompute(&skipped), a[1]);
        }
        assert_eq!(super::live_keys(&[0.0, -1e9, 0.0, -1e9, -1e9]), 5);
        assert_eq!(super::live_keys(&[0.0; 3].iter().chain(&[-1e9; 17]).copied().collect::<Vec<_>>()), 8);
        assert_eq!(super::live_keys(&[-1e9; 20]), 20);
        assert_eq!(super::live_keys(&[0.0, f32::NAN, -1e9, -1e9, -1e9, -1e9, -1e9, -1e9, -1e9, -1e9]), 8);
        assert_eq!(super::live_keys(&[-1e9; 9].iter().chain(&[f32::NAN]).copied().collect::<Vec<_>>()), 10);
    }

    /// `dots` (up to 8 rows at once) gives each row the bits `dot` gives it.
    #[test]
    fn dots_equal_dot_row_by_row() {
        for (n, rows) in [(37usize, 13usize), (208, 12), (5, 3), (64, 32)] {
            let a: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.377).sin()).collect();
            let m: Vec<f32> = (0..n * rows).map(|i| ((i as f32) * 0.61).cos() * 3.0).collect();
            let mut out = vec![0f32; rows];
            super::dots(&a, &m, n, &mut out);
            let each: Vec<f32> = (0..rows).map(|r| super::dot(&a, &m[r * n..(r + 1) * n])).collect();
            assert_eq!(out, each, "n {n}, rows {rows}");
        }
    }

    /// `accumulate_keys` (blocks of 8 keys × 8 columns over all queries) gives the bits of
    /// adding each query's row into the result one query at a time, over its live keys.
    #[test]
    fn accumulate_keys_equals_adding_query_by_query() {
        for (n, width, stride) in [(37usize, 12usize, 12usize), (208, 12, 48), (12, 16, 16), (20, 4, 6), (9, 8, 8)] {
            let rows: Vec<f32> = (0..n * n).map(|i| ((i as f32) * 0.377).sin()).collect();
            let coef: Vec<f32> = (0..n * stride).map(|i| ((i as f32) * 0.61).cos() * 3.0).collect();
            // Block-causal lives in frames of 5 queries, rounded up to 8 (or n).
            let lives: Vec<usize> = (0..n).map(|i| ((i / 5 + 1) * 5).div_ceil(8).saturating_mul(8).min(n)).collect();
            let mut blocked = vec![f32::NAN; n * width];
            super::simd(|| {
                super::accumulate_keys(&rows, &lives, (&coef, stride), width, |j, c, v| blocked[j * width + c] = v)
            });
            let mut each = vec![0f32; n * width];
            for (i, &live) in lives.iter().enumerate() {
                for j in 0..live {
                    for c in 0..width {
                        each[j * width + c] = rows[i * n + j].mul_add(coef[i * stride + c], each[j * width + c]);
                    }
                }
            }
            assert_eq!(blocked, each, "n {n}, width {width}");
        }
    }

    /// `combine` (32 outputs at once where it can, then 8, then one) gives every output
    /// the bits of its terms added one by one in order.
    #[test]
    fn combine_gives_every_output_its_in_order_sum() {
        for (n, k, len) in [(45usize, 12usize, 45usize), (208, 12, 120), (7, 16, 7), (64, 3, 64)] {
            let coef: Vec<f32> = (0..k).map(|i| ((i as f32) * 0.377).sin()).collect();
            let rows: Vec<f32> = (0..k * n).map(|i| ((i as f32) * 0.61).cos() * 3.0).collect();
            let mut out = vec![0f32; len];
            super::simd(|| super::combine(&coef, &rows, n, &mut out));
            let each: Vec<f32> = (0..len)
                .map(|j| coef.iter().enumerate().fold(0f32, |acc, (c, w)| w.mul_add(rows[c * n + j], acc)))
                .collect();
            assert_eq!(out, each, "n {n}, k {k}, len {len}");
        }
    }

    #[test]
    fn the_vectorisable_exp_matches_libm_over_the_softmax_range() {
        let mut worst = 0f32;
        for i in 0..=2_000_000u32 {
            let x = -(i as f32) * 90.0 / 2_000_000.0;
            let (a, b) = (super::exp(x), x.exp());
            if x < -87.0 {
                assert_eq!(a, 0.0, "{x}");
                continue;
            }
            let rel = ((a - b) / b).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4.0 * f32::EPSILON, "worst relative error {worst:e}");
        assert_eq!(super::exp(0.0), 1.0);
        assert_eq!(super::exp(-1e9), 0.0);
    }

    #[test]
    fn the_vectorisable_erf_is_within_1e_6_of_libm() {
        let worst = (0..=200_000)
            .map(|i| -10.0 + i as f32 * 20.0 / 200_000.0)
            .map(|x| (super::erf(x) - libm::erff(x)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "worst absolute error {worst:e}");
        assert!(super::erf(0.0).abs() < 1e-6);
        assert_eq!(super::erf(-20.0), -1.0);
    }
}
