//! Multi-head attention over a fused `qkv` projection, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::*;

/// Multi-head attention over a fused `qkv` projection `[B, N, 3 D]` (laid out
/// `[B, N, 3, H, hd]`) with an optional additive mask, to `[B, N, D]`:
/// `softmax(q kᵀ / sqrt(hd) + mask) v` per head. When the output needs a gradient, the
/// forward keeps the attention weights (`[B, H, N, N]`, as PyTorch's attention does) for
/// the backward, which otherwise recomputes them (as flash attention does); both give the
/// same bits. Work is split by batch element, each computed in a fixed order: the same
/// bits whatever the thread count.
#[derive(Clone)]
pub(super) struct AttentionFwd {
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
pub(super) struct Heads {
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
pub(super) const DROPPED: f32 = -1e8;

/// How many leading keys of a query's mask row (`n` keys) can have a non-zero weight: up
/// to the last kept key, rounded up to a multiple of 8 (or `n`). The keys past it are dropped, so
/// their weights are exactly 0 and every sum over keys gets exact zeros from them;
/// leaving them out changes no bit as long as [`dot`]'s lanes see the same elements,
/// hence the rounding. A row that drops every key keeps them all (uniform weights, as
/// the composed ops give).
#[inline(always)]
pub(super) fn live_keys(m: &[f32]) -> usize {
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
pub(super) fn max(p: &[f32]) -> f32 {
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
pub(super) fn combine(coef: &[f32], rows: &[f32], n: usize, out: &mut [f32]) {
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
pub(super) fn combine_block<const B: usize>(coef: &[f32], rows: &[f32], n: usize, j: usize, out: &mut [f32]) {
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
impl AttentionFwd {
    /// The op over rows of `n` keys, with the live key counts of `mask`'s rows.
    pub(super) fn new(
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
pub(super) fn accumulate_keys(
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
pub(super) fn accumulate_block<const G: usize>(
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
pub(super) struct AttentionBwd(pub(super) AttentionFwd);

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
    let op = AttentionFwd::new(heads, qkv.track_op() && !super::in_inference(), mask, b_stride, q_stride, n);
    Ok(Some(qkv.contiguous()?.apply_op1(op)?))
}
