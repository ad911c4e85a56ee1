//! In-process inference of a quantized GGUF chat model (`gguf:<path>`), with no server:
//! candle-transformers' `quantized_llama` for the network, the GGUF's own tokenizer
//! ([`super::tokenizer`]) and its own Jinja chat template (`tokenizer.chat_template`,
//! rendered by minijinja), greedy decoding on the CPU.
//!
//! Answers are decoded under a grammar, as llama.cpp does for a `json_schema` request:
//! at every step only tokens that keep the text a prefix of `{"answer": "<choice>"}` for
//! some allowed choice are eligible, and the most likely of them is taken. Free greedy
//! decoding ([`Gguf::generate`] without a constraint) is what the tests compare with
//! llama.cpp's own greedy output.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
#[cfg(feature = "llm")]
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::grammar::{Grammar, Matcher};
use super::tokenizer::Tokenizer;
use crate::error::{BenchError, Result};
#[cfg(not(feature = "llm"))]
use absent::{MAX_SEQ_LEN, ModelWeights};

/// Version of the in-process decoding (part of every cache key).
pub const DECODER_VERSION: &str = "physworld-gguf/1 (greedy; grammar over allowed answers)";

/// Prompt tokens per forward pass while reading the prompt.
const PREFILL_CHUNK: usize = 512;

/// A loaded GGUF chat model.
pub struct Gguf {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Most tokens of prompt plus answer.
    pub context: usize,
    model: ModelWeights,
    pieces: Vec<Vec<u8>>,
    device: Device,
}

/// One decoding.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Tokens produced (the end-of-turn token excluded).
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// Per produced token, the gap between the best and the second-best eligible logit.
    pub margins: Vec<f32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Why it stopped: `stop` (end of turn or a complete constrained answer) or `length`.
    pub finish: &'static str,
}

fn bad(path: &Path, reason: impl Into<String>) -> BenchError {
    BenchError::Mismatch { what: format!("GGUF model {}", path.display()), reason: reason.into() }
}

/// SHA-256 (hex) of a model file's bytes: the name the cache and the results give it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The same model with every weight dequantized to f32, as an in-memory GGUF: candle's CPU
/// kernels for quantized blocks read a prompt at ~22 tokens/s on 2 cores, its f32 matrix
/// multiply at ~130 (BENCHMARKS.md, `examples/gguf_prefill.rs`). Costs 4 bytes a weight (0.6 GB for 135M).
fn dequantized<R: Read + Seek>(
    ct: Content,
    file: &mut R,
    device: &Device,
) -> candle_core::Result<(Content, std::io::Cursor<Vec<u8>>)> {
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in &names {
        let q = ct.tensor(file, name, device)?;
        let w = match q.dtype() {
            GgmlDType::F32 => q,
            _ => QTensor::quantize(&q.dequantize(device)?, GgmlDType::F32)?,
        };
        tensors.push((name.as_str(), w));
    }
    let mut meta: Vec<(&str, &candle_core::quantized::gguf_file::Value)> =
        ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    meta.sort_by_key(|(k, _)| *k);
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut buf, &meta, &refs)?;
    drop(tensors);
    buf.set_position(0);
    let ct = Content::read(&mut buf)?;
    Ok((ct, buf))
}

impl Gguf {
    /// Load `path` (a llama-architecture GGUF with a byte-level BPE tokenizer) on the CPU.
    pub fn load(path: &Path) -> Result<Gguf> {
        Gguf::load_with(path, true)
    }

    /// [`Gguf::load`], keeping the quantized weights when `dequantize` is false (candle's
    /// quantized CPU kernels: less memory, much slower prompt reading; for comparisons).
    pub fn load_with(path: &Path, dequantize: bool) -> Result<Gguf> {
        if !cfg!(feature = "llm") {
            return Err(super::missing_feature(&format!("gguf:{}", path.display())));
        }
        // Read once: hashed, then parsed from memory.
        let bytes = std::fs::read(path).map_err(|e| BenchError::file(path, e))?;
        let sha256 = sha256_hex(&bytes);
        let mut file = std::io::Cursor::new(bytes);
        let ct = Content::read(&mut file).map_err(|e| bad(path, format!("not a readable GGUF file: {e}")))?;
        let arch = ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned();
        if arch.as_deref() != Some("llama") {
            return Err(bad(path, format!("architecture {arch:?} is not supported (only `llama`)")));
        }
        let trained = ct.metadata.get("llama.context_length").and_then(|v| v.to_u32().ok()).unwrap_or(2048) as usize;
        let tokenizer = Tokenizer::from_gguf(&ct)?;
        let device = Device::Cpu;
        let model = if dequantize {
            dequantized(ct, &mut file, &device)
                .and_then(|(ct, mut f32_file)| ModelWeights::from_gguf(ct, &mut f32_file, &device))
        } else {
            ModelWeights::from_gguf(ct, &mut file, &device)
        }
        .map_err(|e| bad(path, format!("cannot load the weights: {e}")))?;
        let pieces = (0..tokenizer.len() as u32).map(|i| tokenizer.token_bytes(i, false)).collect();
        Ok(Gguf {
            path: path.to_path_buf(),
            sha256,
            tokenizer,
            context: trained.min(MAX_SEQ_LEN),
            model,
            pieces,
            device,
        })
    }

    /// The model's chat template applied to `messages` (`(role, content)`), ending with
    /// the assistant's turn.
    pub fn chat_prompt(&self, messages: &[(&str, &str)]) -> Result<String> {
        let template =
            self.tokenizer.chat_template.as_deref().ok_or_else(|| bad(&self.path, "has no tokenizer.chat_template"))?;
        let token =
            |id: Option<u32>| id.map(|i| String::from_utf8_lossy(&self.tokenizer.token_bytes(i, true)).into_owned());
        let msgs: Vec<_> = messages.iter().map(|(r, c)| json!({"role": r, "content": c})).collect();
        let (bos, eos) = (token(self.tokenizer.bos).unwrap_or_default(), token(self.tokenizer.eos).unwrap_or_default());
        render_chat(template, msgs, bos, eos)
            .map_err(|e| bad(&self.path, format!("its chat template failed to render: {e}")))
    }

    /// Tokens of a rendered chat prompt (special tokens parsed, as llama.cpp's server does).
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true, true)
    }

    /// Greedy decoding of up to `max_new` tokens after `prompt`. With a `grammar`, only
    /// continuations that keep the reply a prefix of a valid answer are eligible, and
    /// decoding stops when the answer is complete.
    pub fn generate(&mut self, prompt: &[u32], max_new: usize, grammar: Option<&Grammar>) -> Result<Generation> {
        self.generate_with(prompt, max_new, grammar, None)
    }

    /// [`Gguf::generate`], sampling at `(temperature, seed)` instead of greedy when given:
    /// eligible tokens drawn from softmax(logits / temperature) by a generator seeded from
    /// the seed and the prompt, so the same request gives the same answer.
    pub fn generate_with(
        &mut self,
        prompt: &[u32],
        max_new: usize,
        grammar: Option<&Grammar>,
        sampling: Option<(f64, u64)>,
    ) -> Result<Generation> {
        let mut rng = sampling.map(|(_, seed)| {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            for t in prompt {
                h.update(t.to_le_bytes());
            }
            let d = h.finalize();
            let mut s = [0u8; 32];
            s.copy_from_slice(&d);
            <rand_chacha::ChaCha8Rng as rand::SeedableRng>::from_seed(s)
        });
        if prompt.is_empty() {
            return Err(bad(&self.path, "an empty prompt"));
        }
        if prompt.len() + max_new > self.context {
            return Err(bad(
                &self.path,
                format!(
                    "a prompt of {} tokens plus {max_new} to answer exceeds its context of {} tokens",
                    prompt.len(),
                    self.context
                ),
            ));
        }
        self.model.clear_kv_cache();
        let mut pos = 0;
        let mut logits = None;
        for chunk in prompt.chunks(PREFILL_CHUNK) {
            let x = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits = Some(self.model.forward(&x, pos)?);
            pos += chunk.len();
        }
        let mut out = Generation {
            tokens: Vec::new(),
            text: String::new(),
            margins: Vec::new(),
            prompt_tokens: prompt.len(),
            finish: "length",
        };
        let mut produced: Vec<u8> = Vec::new();
        let mut matcher = grammar.map(Matcher::new);
        for _ in 0..max_new {
            let Some(l) = logits.take() else { break };
            let l: Vec<f32> = l.squeeze(0)?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
            // The tokens the grammar allows here (all without one), checked once per step.
            let eligible: Vec<(usize, f32)> = l
                .iter()
                .copied()
                .enumerate()
                .filter(|(id, _)| matcher.as_ref().is_none_or(|m| m.allows(&self.pieces[*id])))
                .collect();
            let (mut best, mut second) = (None::<(usize, f32)>, f32::NEG_INFINITY);
            for &(id, v) in &eligible {
                match best {
                    Some((_, b)) if v <= b => second = second.max(v),
                    _ => {
                        if let Some((_, b)) = best {
                            second = second.max(b);
                        }
                        best = Some((id, v));
                    }
                }
            }
            let Some((mut next, top)) = best else {
                return Err(bad(&self.path, "no token continues any allowed answer"));
            };
            if let (Some((temperature, _)), Some(rng)) = (sampling, rng.as_mut()) {
                let weights: Vec<(usize, f64)> =
                    eligible.iter().map(|&(id, v)| (id, (f64::from(v - top) / temperature).exp())).collect();
                let total: f64 = weights.iter().map(|w| w.1).sum();
                let mut u = rand::Rng::random::<f64>(rng) * total;
                for (id, w) in weights {
                    next = id;
                    u -= w;
                    if u <= 0.0 {
                        break;
                    }
                }
            }
            let next = next as u32;
            if matcher.is_none() && (Some(next) == self.tokenizer.eos || self.tokenizer.is_control(next)) {
                out.finish = "stop";
                break;
            }
            out.tokens.push(next);
            out.margins.push(top - second);
            produced.extend_from_slice(&self.pieces[next as usize]);
            if let Some(m) = matcher.as_mut() {
                m.push(&self.pieces[next as usize]);
            }
            if matcher.as_ref().is_some_and(Matcher::complete) {
                out.finish = "stop";
                break;
            }
            let x = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = Some(self.model.forward(&x, pos)?);
            pos += 1;
        }
        out.text = String::from_utf8_lossy(&produced).into_owned();
        Ok(out)
    }
}

/// A Jinja chat template rendered with minijinja, as llama.cpp and transformers render it.
#[cfg(feature = "llm")]
fn render_chat(
    template: &str,
    messages: Vec<serde_json::Value>,
    bos: String,
    eos: String,
) -> std::result::Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => true,
        bos_token => bos,
        eos_token => eos,
    };
    env.render_str(template, ctx).map_err(|e| e.to_string())
}

/// Without the `llm` feature no [`Gguf`] is ever loaded, so nothing is rendered.
#[cfg(not(feature = "llm"))]
fn render_chat(_: &str, _: Vec<serde_json::Value>, _: String, _: String) -> std::result::Result<String, String> {
    Err(super::missing_feature("gguf:").to_string())
}

/// What stands in for candle-transformers' network in a build without the `llm` feature:
/// a type with no values, so that the code around it compiles and no [`Gguf`] can exist.
#[cfg(not(feature = "llm"))]
mod absent {
    use candle_core::quantized::gguf_file::Content;
    use candle_core::{Device, Tensor};

    /// candle-transformers' `quantized_llama::MAX_SEQ_LEN`.
    pub const MAX_SEQ_LEN: usize = 4096;

    /// No network (uninhabited).
    pub enum ModelWeights {}

    impl ModelWeights {
        pub fn from_gguf<R>(_: Content, _: &mut R, _: &Device) -> candle_core::Result<ModelWeights> {
            Err(candle_core::Error::Msg(super::super::missing_feature("gguf:").to_string()))
        }

        pub fn forward(&mut self, _: &Tensor, _: usize) -> candle_core::Result<Tensor> {
            match *self {}
        }

        pub fn clear_kv_cache(&mut self) {
            match *self {}
        }
    }
}
