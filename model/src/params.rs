//! Trainable parameters, initialised on the host from a seeded generator (Candle's CPU RNG
//! cannot be seeded) and kept by name so that safetensors weight names stay stable.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::error::Result;

/// Named variables of a model part (`encoder.blocks.0.attn.qkv.weight`, ...).
pub struct Params {
    vars: BTreeMap<String, Var>,
    prefix: Vec<String>,
    rng: ChaCha8Rng,
    device: Device,
}

impl Params {
    /// An empty store drawing initial values from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Params {
            vars: BTreeMap::new(),
            prefix: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    /// Run `f` with `name` pushed on the name prefix (candle's `vb.pp`).
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.prefix.push(name.to_string());
        let out = f(self);
        self.prefix.pop();
        out
    }

    fn full_name(&self, name: &str) -> String {
        let mut s = self.prefix.join(".");
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(name);
        s
    }

    fn normal(&mut self) -> f32 {
        // Box-Muller on 24-bit uniforms.
        let u1 = ((self.rng.next_u32() >> 8) as f32 + 1.0) / 16_777_217.0;
        let u2 = (self.rng.next_u32() >> 8) as f32 / 16_777_216.0;
        libm::sqrtf(-2.0 * libm::logf(u1)) * libm::cosf(std::f32::consts::TAU * u2)
    }

    /// A variable of `shape` drawn from a normal truncated at 2 std (V-JEPA's init).
    pub fn trunc_normal(&mut self, name: &str, shape: &[usize], std: f32) -> Result<Var> {
        let n: usize = shape.iter().product();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let x = self.normal();
            if x.abs() <= 2.0 {
                v.push(x * std);
            }
        }
        self.insert(name, Tensor::from_vec(v, shape, &self.device)?)
    }

    /// A variable filled with `value`.
    pub fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Var> {
        let t = (Tensor::ones(shape, DType::F32, &self.device)? * value as f64)?;
        self.insert(name, t)
    }

    fn insert(&mut self, name: &str, t: Tensor) -> Result<Var> {
        let var = Var::from_tensor(&t)?;
        self.vars.insert(self.full_name(name), var.clone());
        Ok(var)
    }

    /// All variables by name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// Consume into the variables.
    pub fn into_vars(self) -> BTreeMap<String, Var> {
        self.vars
    }
}
