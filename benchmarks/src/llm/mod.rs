//! LLM baselines: `openai:<model>[@<base_url>]` and `anthropic:<model>[@<base_url>]`
//! answer the very items the world models answer, from a text rendering of the scene.
//!
//! Zero-shot; temperature 0; structured output first, then a free-text parse; an
//! unparsable answer is scored wrong and counted invalid (IntPhys 2's rule). VoE items ask,
//! per episode, whether the recording is physically possible ("impossible" is surprise 1).
//! Responses are cached on disk (`$PHYSWORLD_LLM_CACHE`, default
//! `~/.cache/physworld/llm`) by provider, base URL, model, every sampling parameter and the
//! full messages: a rerun sends no request; `PHYSWORLD_LLM_OFFLINE=1` replays only.

pub mod client;
pub mod render;

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
}

impl Llm {
    /// From a spec: `openai:<model>[@<base_url>]` or `anthropic:<model>[@<base_url>]`.
    pub fn new(spec: &str, provider: Provider, body: &str) -> Llm {
        Llm::with_config(spec, LlmConfig::from_spec(provider, body))
    }

    /// With explicit settings.
    pub fn with_config(spec: &str, cfg: LlmConfig) -> Llm {
        Llm { id: spec.into(), client: Client::new(cfg), raw: BTreeMap::new(), fingerprint: None }
    }

    /// Requests, cache hits and retries so far.
    pub fn stats(&self) -> Stats {
        self.client.stats()
    }

    fn choose(&mut self, item: &str, user: &str, choices: &[String]) -> Result<Option<usize>> {
        let reply = match self.client.ask(render::SYSTEM, user, choices) {
            Ok(r) => r,
            // A spent budget stops the run (answers so far are cached: a rerun resumes).
            Err(e) if e.to_string().contains("budget") || e.to_string().contains("--offline") => return Err(e),
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
            id: self.id.clone(),
            kind: "llm".into(),
            checkpoint_hash: None,
            seeds: vec![c.seed],
            labels_used: Vec::new(),
            config: json!({
                "provider": c.provider.name(),
                "model": c.model,
                "base_url": c.base_url,
                "temperature": c.temperature,
                "max_tokens": c.max_tokens,
                "prompt": PROMPT_VERSION,
                "shots": 0,
                "system_fingerprint": self.fingerprint,
            }),
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
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let ans = match task {
                TaskKind::Voe => {
                    let verdicts = ["possible".to_string(), "impossible".to_string()];
                    let mut s = Vec::new();
                    for &ep in &it.episodes {
                        let e = ctx.frames.get(ep)?;
                        let user = render::voe_prompt(e, ctx.ds.meta(ep)?, fps);
                        s.push(self.choose(&it.id, &user, &verdicts)?);
                    }
                    if s.iter().all(Option::is_some) {
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
                }
                _ => {
                    let e = ctx.frames.get(it.episodes[0])?;
                    let user = render::choice_prompt(it, e, ctx.ds.meta(it.episodes[0])?, fps);
                    match self.choose(&it.id, &user, &it.choices)? {
                        Some(k) => Answer::Choice(k),
                        None => Answer::Invalid("unparsable answer".into()),
                    }
                }
            };
            out.push(ans);
            tick();
        }
        Ok(out)
    }
}
