//! The loops every kernel shares: row and element maps run in fixed parallel chunks, the
//! run-time SIMD dispatch, and sums and dot products in a fixed lane order.

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;

/// Rows per parallel task: each row is computed independently, so results do not depend
/// on the thread count.
pub(super) const ROWS_PER_TASK: usize = 64;

/// Set by a test to run every kernel compiled for the baseline instruction set.
pub(super) static BASELINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run `f` compiled for the best instruction set of this CPU (AVX2 + FMA where present,
/// chosen at run time by pulp, as gemm does; the baseline build only assumes SSE2). The
/// kernels' arithmetic is written out in a fixed order, Rust never fuses a multiply and
/// an add on its own, and the fused multiply-adds they ask for (`mul_add`) are exactly
/// rounded everywhere (one instruction with FMA, libm's `fmaf` without), so every
/// instruction set gives the same bits (a test checks it).
#[inline(always)]
pub(super) fn simd<R>(f: impl FnOnce() -> R) -> R {
    if BASELINE.load(std::sync::atomic::Ordering::Relaxed) {
        return pulp::Arch::Scalar.dispatch(f);
    }
    pulp::Arch::new().dispatch(f)
}

/// `out[r] = f(a[r], b[r])` for every row of width `d`, rows in parallel.
pub(super) fn map_rows(
    a: &[f32],
    b: Option<&[f32]>,
    d: usize,
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
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
pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &'static str) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

pub(super) fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// `sum_j f(a[j], b[j])` in 8 fixed lanes, finished as [`dot`] is: vectorisable (a serial
/// sum is one dependent addition per element), the same order every time.
#[inline(always)]
pub(super) fn sum_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
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
pub(super) fn lane_sum(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}
/// `e^x` for `x <= 0` (softmax after the max shift), within 4 f32 epsilons (relative) of
/// `f32::exp` (the unit test's bound), and
/// exactly 0 below -87 (masked entries): Cephes' `expf` range reduction and polynomial,
/// branch-free so that the compiler vectorises the loop that calls it (libm's `expf` is a
/// call per element, the largest cost of the forward pass). Pure arithmetic: the same
/// bits whatever the vector width.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
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

/// Elements per parallel task of the elementwise kernels.
pub(super) const ELEMS_PER_TASK: usize = 16_384;

/// `out[i] = f(a[i], b[i])` over two slices of one length, in parallel chunks, each inside
/// [`simd`] (pass an `#[inline(always)]` closure so that the loop vectorises).
pub(super) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
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

/// `sum_j a[j] b[j]` in 8 fixed lanes (vectorisable, same order every time).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32];
    dots_block::<1>(a, b, 0, &mut out);
    out[0]
}

/// The end of [`dot`] (and of each row of [`dots`]): the 8 lane sums combined pairwise,
/// then the elements past the last whole chunk of 8 added in order. One function, so that
/// both give the same bits.
#[inline(always)]
pub(super) fn finish_dot(acc: &[f32; 8], a_rest: &[f32], b_rest: &[f32]) -> f32 {
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
pub(super) fn dots(a: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
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
pub(super) fn dots_block<const R: usize>(a: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
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

/// `f(row)` for every row of width `d`, `f` writing that row's output and adding into `k`
/// column sums of width `d`: rows in parallel chunks of [`ROWS_PER_TASK`], each chunk's
/// sums added in row order and the chunks' sums in chunk order (as [`column_sums`]: the
/// same bits whatever the thread count). Returns the outputs followed by the `k` sums,
/// packed in one buffer (a backward op's one output).
pub(super) fn rows_with_sums(
    rows: usize,
    d: usize,
    k: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> Vec<f32> {
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
