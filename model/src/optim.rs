//! AdamW with checkpointable state (candle-nn's AdamW keeps its moments private) and
//! global-norm gradient clipping (candle has none).

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::config::OptimConfig;
use crate::error::Result;

/// Decoupled-weight-decay Adam (Loshchilov & Hutter) over named variables.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    /// First moments by variable name.
    pub m: BTreeMap<String, Tensor>,
    /// Second moments by variable name.
    pub v: BTreeMap<String, Tensor>,
    /// Updates applied so far.
    pub t: u64,
    cfg: OptimConfig,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(vars: Vec<(String, Var)>, cfg: &OptimConfig) -> Result<AdamW> {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (k, x) in &vars {
            m.insert(k.clone(), x.as_tensor().zeros_like()?);
            v.insert(k.clone(), x.as_tensor().zeros_like()?);
        }
        Ok(AdamW { vars, m, v, t: 0, cfg: cfg.clone() })
    }

    /// Global L2 norm of the gradients of the optimised variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f32> {
        let mut sq = 0f64;
        for (_, x) in &self.vars {
            if let Some(g) = grads.get(x.as_tensor()) {
                sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(sq.sqrt() as f32)
    }

    /// One update at learning rate `lr`, with gradients scaled by `scale` (clipping).
    pub fn step(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (k, x) in &self.vars {
            let Some(g) = grads.get(x.as_tensor()) else { continue };
            let g = (g * scale)?;
            let (Some(m), Some(v)) = (self.m.get(k), self.v.get(k)) else { continue };
            let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.cfg.eps)?)?;
            let w = x.as_tensor();
            let decayed = (w * (1.0 - lr * self.cfg.weight_decay))?;
            x.set(&(decayed - (update * lr)?)?)?;
            self.m.insert(k.clone(), m);
            self.v.insert(k.clone(), v);
        }
        Ok(())
    }
}

/// Clip factor for a global gradient norm: `min(1, max_norm / norm)` (1 when disabled).
pub fn clip_scale(norm: f32, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm as f64 > max_norm { max_norm / norm as f64 } else { 1.0 }
}
