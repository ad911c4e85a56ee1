//! Candle's CPU matrix product (the `gemm` crate) on the shapes of a `small` training
//! step (3072 tokens, widths 192/576/768), plain and with a transposed left operand as in
//! the weight gradients; best of 5 × 10 products, GFLOP/s. The PyTorch side is
//! `benchmarks/compare/gemm_shapes.py` (BENCHMARKS.md, "Matrix products").
//!
//! `cargo run --release -p physworld-model --example gemm_shapes`

use std::time::Instant;

use candle_core::{Device, Tensor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (m, k, n, what): `a [m, k] @ b [n, k]ᵀ`.
const SHAPES: [(usize, usize, usize, &str); 6] = [
    (3072, 192, 576, "fwd qkv"),
    (3072, 192, 768, "fwd fc1"),
    (3072, 768, 192, "fwd fc2"),
    (3072, 576, 192, "bwd dx"),
    (576, 3072, 192, "bwd dW qkv"),
    (192, 3072, 768, "bwd dW fc2"),
];

fn best(f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..10 {
            std::hint::black_box(f()?);
        }
        best = best.min(t.elapsed().as_secs_f64() / 10.0);
    }
    Ok(best)
}

fn main() -> candle_core::Result<()> {
    physworld_model::runtime::exec_with_runtime_env();
    let dev = Device::Cpu;
    for (m, k, n, what) in SHAPES {
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let at = Tensor::randn(0f32, 1.0, (k, m), &dev)?;
        let b = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let plain = best(|| a.matmul(&b.t()?))?;
        let transposed = best(|| at.t()?.matmul(&b.t()?))?;
        let gf = 2.0 * (m * k * n) as f64 / 1e9;
        println!(
            "{what:11} {m}x{k}x{n}: a@bᵀ {:.3} ms ({:.1} GFLOP/s), aᵀ-view@bᵀ {:.3} ms ({:.1} GFLOP/s)",
            plain * 1e3,
            gf / plain,
            transposed * 1e3,
            gf / transposed
        );
    }
    Ok(())
}
