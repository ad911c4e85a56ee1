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
//!
//! One file per op family (`norm`, `gelu`, `softmax`, `attention`, `rows`) over the shared
//! loops of `kernel`.

mod attention;
mod gelu;
mod kernel;
mod norm;
mod rows;
mod softmax;

use std::cell::Cell;

use candle_core::{Result, Tensor};

thread_local! {
    static INFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with the fused ops keeping nothing for a backward pass: attention recomputes
/// its weights if a backward comes after all, instead of keeping `[B, H, N, N]` of them
/// from the forward (at inference most of the forward's time went into zeroing and
/// faulting in that buffer). Values are the same bits either way. Ops are built on the
/// calling thread, so this holds for the calls `f` makes on it.
pub fn inference<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INFERENCE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(INFERENCE.with(|c| c.replace(true)));
    f()
}

/// Whether [`inference`] is on for this thread.
fn in_inference() -> bool {
    INFERENCE.with(Cell::get)
}

pub use attention::attention;
use gelu::{BiasGelu, GeluFwd};
pub use kernel::supported;
use norm::{LayerNormAffine, LayerNormFwd};
use rows::RowOp;
use softmax::SoftmaxFwd;
#[cfg(test)]
use {
    attention::{AttentionBwd, AttentionFwd, accumulate_keys, combine, live_keys},
    gelu::erf,
    kernel::{BASELINE, dot, dots, exp, simd},
};

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
        // Under `inference` the forward keeps nothing, gives the same values, and a
        // backward after it still gives the same gradient (recomputing the weights).
        let (y2, grads) = super::inference(|| {
            let y2 = super::attention(qkv.as_tensor(), Some(&mask), heads).expect("attention").expect("fused");
            let grads = (&y2 * &g).and_then(|l| l.sum_all()).and_then(|l| l.backward()).expect("backward");
            (y2, grads)
        });
        let y1 = super::attention(qkv.as_tensor(), Some(&mask), heads).expect("attention").expect("fused");
        let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().and_then(|t| t.to_vec1()).expect("vec") };
        assert_eq!(flat(&y1), flat(&y2));
        assert_eq!(flat(grads.get(&qkv).expect("grad")), kept);
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
