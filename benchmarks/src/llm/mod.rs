//! LLM baselines: `openai:<model>[@<base_url>]` and `anthropic:<model>[@<base_url>]`
//! answer the very items the world models answer, from a text rendering of the scene.
//!
//! Zero-shot; temperature 0; structured output first, then a free-text parse; an
//! unparsable answer is scored wrong and counted invalid (IntPhys 2's rule). VoE items ask,
//! per episode, whether the recording is physically possible ("impossible" is surprise 1).
//! Responses are cached on disk (`$PHYSWORLD_LLM_CACHE`, default
//! `~/.cache/physworld/llm`) by provider, base URL, model, every sampling parameter and the
//! full messages: a rerun sends no request; `PHYSWORLD_LLM_OFFLINE=1` replays only.
//! `PHYSWORLD_LLM_CONCURRENCY=N` keeps up to N requests in flight (default 1).

pub mod client;
pub mod gguf;
pub mod render;
pub mod tokenizer;

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use client::{Client, LlmConfig, Provider, Reply, Stats};

use crate::adapters::{Adapter, Answer, Context, Surprise};
use crate::error::Result;
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind};

/// Version of the prompts (bumps whenever their text changes).
pub const PROMPT_VERSION: &str =
    "physworld-prompt/1 (scene with masses, centimetres, every 3rd frame, VoE every 6th; zero-shot)";

/// An LLM as a benchmark model.
pub struct Llm {
    id: String,
    client: Client,
    raw: BTreeMap<String, Value>,
    fingerprint: Option<String>,
    concurrency: usize,
}

impl Llm {
    /// From a spec: `openai:<model>[@<base_url>]` or `anthropic:<model>[@<base_url>]`.
    pub fn new(spec: &str, provider: Provider, body: &str) -> Llm {
        Llm::with_config(spec, LlmConfig::from_spec(provider, body))
    }

    /// With explicit settings.
    pub fn with_config(spec: &str, cfg: LlmConfig) -> Llm {
        let concurrency = std::env::var("PHYSWORLD_LLM_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        Llm { id: spec.into(), client: Client::new(cfg), raw: BTreeMap::new(), fingerprint: None, concurrency }
    }

    /// `gguf:<path>`: the GGUF chat model at `path`, run in-process (loaded now).
    pub fn gguf(spec: &str, path: &str) -> Result<Llm> {
        let client = Client::new_local(LlmConfig::from_spec(Provider::Gguf, path))?;
        // One model, one generation at a time.
        Ok(Llm { id: spec.into(), client, raw: BTreeMap::new(), fingerprint: None, concurrency: 1 })
    }

    /// Requests, cache hits and retries so far.
    pub fn stats(&self) -> Stats {
        self.client.stats()
    }

    /// Ask every `(user message, choices)` with up to `concurrency` requests in flight;
    /// replies in order.
    fn ask_all(&self, prompts: &[(String, Vec<String>)]) -> Vec<Result<Reply>> {
        let workers = self.concurrency.max(1).min(prompts.len().max(1));
        if workers == 1 {
            return prompts.iter().map(|(u, c)| self.client.ask(render::SYSTEM, u, c)).collect();
        }
        let mut slots: Vec<Option<Result<Reply>>> = (0..prompts.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    scope.spawn(move || {
                        (w..prompts.len())
                            .step_by(workers)
                            .map(|i| (i, self.client.ask(render::SYSTEM, &prompts[i].0, &prompts[i].1)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().unwrap_or_default() {
                    slots[i] = Some(r);
                }
            }
        });
        slots
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(crate::error::BenchError::Mismatch { what: "LLM worker".into(), reason: "panicked".into() })
                })
            })
            .collect()
    }

    fn record(&mut self, item: &str, reply: Result<Reply>, choices: &[String]) -> Result<Option<usize>> {
        let reply = match reply {
            Ok(r) => r,
            // A spent budget stops the run (answers so far are cached: a rerun resumes).
            Err(e @ crate::error::BenchError::Halt { .. }) => return Err(e),
            // A server that keeps failing costs this item, not the run: invalid, with why.
            Err(e) => Reply {
                text: String::new(),
                structured: false,
                exchange: json!({ "error": e.to_string() }),
                fingerprint: None,
            },
        };
        if self.fingerprint.is_none() {
            self.fingerprint = reply.fingerprint.clone();
        }
        let parsed = render::parse_answer(&reply.text, choices);
        let entry = json!({ "exchange": reply.exchange, "structured": reply.structured, "parsed": parsed });
        match self.raw.get_mut(item) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                self.raw.insert(item.to_string(), Value::Array(vec![entry]));
            }
        }
        Ok(parsed)
    }
}

impl Adapter for Llm {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "llm"
    }
    fn supports(&self, task: TaskKind) -> bool {
        matches!(task, TaskKind::Contact | TaskKind::Outcome | TaskKind::Voe)
    }
    fn describe(&self) -> ModelRef {
        let c = self.client.config();
        ModelRef {
            seeds: vec![c.seed],
            config: json!({
                "provider": c.provider.name(),
                "model": c.model,
                "base_url": c.base_url,
                "temperature": c.temperature,
                "max_tokens": c.max_tokens,
                "prompt": PROMPT_VERSION,
                "shots": 0,
                "system_fingerprint": self.fingerprint,
                "model_sha256": self.client.model_sha256(),
                "decoder": self.client.model_sha256().map(|_| gguf::DECODER_VERSION),
            }),
            ..ModelRef::new(&self.id, "llm")
        }
    }
    fn raw_log(&mut self, item: &str) -> Option<Value> {
        self.raw.remove(item)
    }
    fn summary(&self) -> Option<String> {
        let s = self.stats();
        Some(format!("{} requests, {} cache hits, {} retries", s.requests, s.cache_hits, s.retries))
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        let fps = ctx.ds.info.fps;
        let verdicts = vec!["possible".to_string(), "impossible".to_string()];
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(4 * self.concurrency.max(1)) {
            // The prompts of this chunk (four per VoE quadruplet), asked concurrently.
            let mut prompts = Vec::new();
            for it in chunk {
                if task == TaskKind::Voe {
                    for &ep in &it.episodes {
                        prompts
                            .push((render::voe_prompt(ctx.frames.get(ep)?, ctx.ds.meta(ep)?, fps), verdicts.clone()));
                    }
                } else {
                    let e = ctx.frames.get(it.episodes[0])?;
                    prompts.push((render::choice_prompt(it, e, ctx.ds.meta(it.episodes[0])?, fps), it.choices.clone()));
                }
            }
            let mut replies = self.ask_all(&prompts).into_iter().zip(prompts);
            for it in chunk {
                let ans = if task == TaskKind::Voe {
                    let mut s = Vec::new();
                    for _ in &it.episodes {
                        let Some((r, (_, c))) = replies.next() else { break };
                        s.push(self.record(&it.id, r, &c)?);
                    }
                    if s.len() == it.episodes.len() && s.iter().all(Option::is_some) {
                        Answer::Surprise(
                            s.iter()
                                .map(|v| {
                                    let x = if *v == Some(1) { 1.0 } else { 0.0 };
                                    Surprise { max: x, mean: x }
                                })
                                .collect(),
                        )
                    } else {
                        Answer::Invalid("an unparsable verdict".into())
                    }
                } else {
                    match replies.next() {
                        Some((r, (_, c))) => match self.record(&it.id, r, &c)? {
                            Some(k) => Answer::Choice(k),
                            None => Answer::Invalid("unparsable answer".into()),
                        },
                        None => Answer::Invalid("no reply".into()),
                    }
                };
                out.push(ans);
                tick();
            }
        }
        Ok(out)
    }
}
