//! Layers built from differentiable Candle ops only.
//!
//! Candle's fused `layer_norm`, `softmax_last_dim` and `rms_norm` have no backward pass
//! (candle issues #3011, #2168): gradients silently stop. Attention, layer norm, softmax,
//! GELU and the bias/gain ops here are our own fused ops with a backward on CPU f32
//! ([`crate::fused`]) and plain tensor ops elsewhere; the tests check that every
//! trainable variable receives a non-zero gradient, and that both paths agree.

use candle_core::{D, Tensor, Var};

use crate::error::Result;
use crate::params::Params;

/// `x W^T + b`.
#[derive(Clone)]
pub struct Linear {
    w: Var,
    b: Option<Var>,
}

impl Linear {
    /// Weights `[out, in]` ~ truncated normal(0.02), bias zero.
    pub fn new(p: &mut Params, name: &str, input: usize, output: usize, bias: bool) -> Result<Self> {
        p.scope(name, |p| {
            let w = p.trunc_normal("weight", &[output, input], 0.02)?;
            let b = if bias { Some(p.constant("bias", &[output], 0.0)?) } else { None };
            Ok(Linear { w, b })
        })
    }

    /// Apply to `[..., in]` (flattened to one matrix product).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.project(x)?;
        Ok(match &self.b {
            Some(b) => add_vec(&y, b.as_tensor())?,
            None => y,
        })
    }

    /// `x W^T` without the bias.
    fn project(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let input = dims.pop().unwrap_or(1);
        let y = x.contiguous()?.reshape(((), input))?.matmul(&self.w.as_tensor().t()?)?;
        dims.push(y.dim(1)?);
        Ok(y.reshape(dims)?)
    }

    /// `gelu(x W^T + b)`: the bias and GELU in one fused op on CPU f32 (the same bits as
    /// [`Linear::forward`] then [`gelu`]).
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.project(x)?;
        match &self.b {
            Some(b) if fused_row_vector(&y, b.as_tensor())? => Ok(crate::fused::bias_gelu(&y, b.as_tensor())?),
            Some(b) => gelu(&add_vec(&y, b.as_tensor())?),
            None => gelu(&y),
        }
    }
}

/// `x + v`, a vector `v` `[d]` broadcast over the rows of `x` `[..., d]`: fused on CPU
/// f32 (its vector gradient a parallel column sum; candle's reduction over the leading
/// dimensions was a seventh of a training step), `broadcast_add` otherwise.
pub fn add_vec(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    if fused_row_vector(x, v)? {
        return Ok(crate::fused::add_row(x, v)?);
    }
    Ok(x.broadcast_add(v)?)
}

/// `x × v`, as [`add_vec`].
pub fn mul_vec(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    if fused_row_vector(x, v)? {
        return Ok(crate::fused::mul_row(x, v)?);
    }
    Ok(x.broadcast_mul(v)?)
}

/// Whether `x (op) v` can take the fused row-vector path: `x` on the fused path and `v`
/// exactly one value per channel of `x`'s last dimension.
fn fused_row_vector(x: &Tensor, v: &Tensor) -> Result<bool> {
    Ok(crate::fused::supported(x) && v.dims() == [x.dim(D::Minus1)?])
}

/// Layer normalisation over the last dimension, from differentiable ops.
#[derive(Clone)]
pub struct LayerNorm {
    gamma: Option<Var>,
    beta: Option<Var>,
}

/// Epsilon of every layer norm.
pub const LN_EPS: f64 = 1e-6;

/// Normalise the last dimension to zero mean, unit variance (no affine): fused on CPU f32,
/// composed otherwise.
pub fn layer_norm_plain(x: &Tensor) -> Result<Tensor> {
    if crate::fused::supported(x) {
        return Ok(crate::fused::layer_norm(x, LN_EPS)?);
    }
    layer_norm_composed(x)
}

/// [`layer_norm_plain`] from differentiable elementwise ops, on any device and dtype.
pub fn layer_norm_composed(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(xc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?)
}

impl LayerNorm {
    /// With learnable gain (1) and bias (0).
    pub fn new(p: &mut Params, name: &str, dim: usize) -> Result<Self> {
        p.scope(name, |p| {
            Ok(LayerNorm {
                gamma: Some(p.constant("weight", &[dim], 1.0)?),
                beta: Some(p.constant("bias", &[dim], 0.0)?),
            })
        })
    }

    /// Apply: one fused op on CPU f32 (the same bits as the three steps below).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (Some(g), Some(b)) = (&self.gamma, &self.beta)
            && fused_row_vector(x, g.as_tensor())?
            && fused_row_vector(x, b.as_tensor())?
        {
            return Ok(crate::fused::layer_norm_affine(x, g.as_tensor(), b.as_tensor(), LN_EPS)?);
        }
        let mut y = layer_norm_plain(x)?;
        if let Some(g) = &self.gamma {
            y = mul_vec(&y, g.as_tensor())?;
        }
        if let Some(b) = &self.beta {
            y = add_vec(&y, b.as_tensor())?;
        }
        Ok(y)
    }
}

/// Softmax over the last dimension (max-shifted): fused on CPU f32, composed otherwise.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if crate::fused::supported(x) {
        return Ok(crate::fused::softmax(x)?);
    }
    softmax_composed(x)
}

/// [`softmax_last`] from differentiable elementwise ops, on any device and dtype.
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// GELU (exact, erf form): fused on CPU f32, candle's `gelu_erf` otherwise.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if crate::fused::supported(x) {
        return Ok(crate::fused::gelu(x)?);
    }
    Ok(x.gelu_erf()?)
}

/// Two-layer MLP with GELU.
#[derive(Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// `dim -> hidden -> dim`.
    pub fn new(p: &mut Params, name: &str, dim: usize, hidden: usize) -> Result<Self> {
        p.scope(name, |p| {
            Ok(Mlp { fc1: Linear::new(p, "fc1", dim, hidden, true)?, fc2: Linear::new(p, "fc2", hidden, dim, true)? })
        })
    }

    /// Apply.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward_gelu(x)?)
    }
}

/// Multi-head self-attention with an additive mask.
#[derive(Clone)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attention {
    /// `dim` split over `heads`.
    pub fn new(p: &mut Params, name: &str, dim: usize, heads: usize) -> Result<Self> {
        p.scope(name, |p| {
            Ok(Attention {
                qkv: Linear::new(p, "qkv", dim, 3 * dim, true)?,
                proj: Linear::new(p, "proj", dim, dim, true)?,
                heads,
            })
        })
    }

    /// `x`: `[B, N, D]`; `mask`: additive `[B, 1, N, N]` (0 keep, -1e9 drop) or `None`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.proj.forward(&attention(&self.qkv.forward(x)?, mask, self.heads)?)
    }
}

/// `softmax(q kᵀ / sqrt(hd) + mask) v` per head, from a fused projection `qkv`
/// `[B, N, 3 D]` (laid out `[B, N, 3, H, hd]`) and an additive mask (`[B, 1, N, N]` or
/// `[B, 1, 1, N]`, 0 keep, -1e9 drop): `[B, N, D]`. One fused op with its own backward
/// on CPU f32 ([`crate::fused::attention`]), composed ops otherwise.
pub fn attention(qkv: &Tensor, mask: Option<&Tensor>, heads: usize) -> Result<Tensor> {
    if crate::fused::supported(qkv)
        && let Some(y) = crate::fused::attention(qkv, mask, heads)?
    {
        return Ok(y);
    }
    attention_composed(qkv, mask, heads)
}

/// [`attention`] from differentiable tensor ops, on any device and dtype.
pub fn attention_composed(qkv: &Tensor, mask: Option<&Tensor>, heads: usize) -> Result<Tensor> {
    let (b, n, d3) = qkv.dims3()?;
    let (d, h) = (d3 / 3, heads);
    let hd = d / h;
    // [B, N, 3, H, hd] -> [3, B, H, N, hd]
    let qkv = qkv.reshape((b, n, 3, h, hd))?.permute((2, 0, 3, 1, 4))?;
    let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
    let mut att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?; // [B, H, N, N]
    if let Some(m) = mask {
        att = att.broadcast_add(m)?;
    }
    let att = softmax_last(&att)?;
    Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?) // [B, N, D]
}

/// Pre-norm transformer block.
#[derive(Clone)]
pub struct Block {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    /// A block of width `dim`.
    pub fn new(p: &mut Params, name: &str, dim: usize, heads: usize, mlp_ratio: f32) -> Result<Self> {
        p.scope(name, |p| {
            Ok(Block {
                ln1: LayerNorm::new(p, "ln1", dim)?,
                attn: Attention::new(p, "attn", dim, heads)?,
                ln2: LayerNorm::new(p, "ln2", dim)?,
                mlp: Mlp::new(p, "mlp", dim, (dim as f32 * mlp_ratio) as usize)?,
            })
        })
    }

    /// Apply.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        Ok((&x + self.mlp.forward(&self.ln2.forward(&x)?)?)?)
    }
}

/// Sinusoidal embedding of positions `pos` (`[N]` values) into `dim` channels: `[N, dim]`.
pub fn sinusoidal(pos: &[f32], dim: usize, device: &candle_core::Device) -> Result<Tensor> {
    let half = dim / 2;
    let mut v = Vec::with_capacity(pos.len() * dim);
    for &p in pos {
        for i in 0..dim {
            let k = (i % half) as f32;
            let freq = libm::powf(10_000.0, -k / half as f32);
            v.push(if i < half { libm::sinf(p * freq) } else { libm::cosf(p * freq) });
        }
    }
    Ok(Tensor::from_vec(v, (pos.len(), dim), device)?)
}
