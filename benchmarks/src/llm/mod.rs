//! LLM baselines: `openai:<model>[@<base_url>]`, `anthropic:<model>[@<base_url>]` and
//! `gguf:<path>` (in-process, [`gguf`]) answer the very items the world models answer, from
//! a text rendering of the scene ([`render`]).
//!
//! Zero-shot by default (`--shots k` adds k solved `readout` examples as earlier turns);
//! temperature 0 by default; structured output first (`json_schema`, then `json_object`; a
//! forced tool call for Anthropic; a grammar in-process), then a free-text parse; an
//! unparsable answer is scored wrong and counted invalid (IntPhys 2's rule). VoE items ask,
//! per episode, whether the recording is physically possible ("impossible" is surprise 1);
//! forecasts ask for `{"positions": [[x, y, z], ...]}`. Three prompt variants
//! ([`render::VARIANTS`]) and sampling seeds are separate runs ([`LlmRun`]) that the
//! leaderboard reports as one row (mean and spread). `plan-launch` items are played as a
//! dialogue ([`plan`]): the scene, one placement per reply, each outcome back.
//! Responses are cached on disk (`$PHYSWORLD_LLM_CACHE`, default
//! `~/.cache/physworld/llm`; an `s3://`, `gs://` or `az://` prefix in a `cloud` build) by provider, base URL, model (a GGUF by its SHA-256), every
//! sampling parameter and the full messages: a rerun sends no request;
//! `PHYSWORLD_LLM_OFFLINE=1` replays only. `PHYSWORLD_LLM_CONCURRENCY=N` keeps up to N
//! requests in flight (default 1); `PHYSWORLD_LLM_RPS=R` starts at most R per second.

pub mod client;
pub mod gguf;
pub mod grammar;
pub mod plan;
pub mod render;
pub mod tokenizer;

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use client::{Client, Expect, LlmConfig, Price, Provider, Reply, Stats, Turn};

use crate::adapters::{Adapter, Answer, Context, Surprise};
use crate::error::Result;
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind};

/// Whether this build can run LLM models (the `llm` cargo feature: HTTP/TLS clients and
/// in-process GGUF inference).
pub const AVAILABLE: bool = cfg!(feature = "llm");

/// The error for an LLM `spec` in a build without the `llm` feature, naming the rebuild.
pub fn missing_feature(spec: &str) -> crate::BenchError {
    crate::BenchError::Mismatch {
        what: format!("model `{spec}`"),
        reason: "LLM models (openai:, anthropic:, gguf:) need physworld built with the `llm` feature: rebuild with \
                 `cargo build --release --features llm` (or run `cargo run --release --features llm -- ...`)"
            .into(),
    }
}

/// Refuse the first LLM spec among `specs` when this build cannot run LLMs, so that a
/// command fails before its slow stages rather than when it reaches the model.
pub fn require_available<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<()> {
    match specs.into_iter().find(|s| crate::adapters::is_llm(s)) {
        Some(spec) if !AVAILABLE => Err(missing_feature(spec)),
        _ => Ok(()),
    }
}

/// Version of the prompts (bumps whenever their text changes).
pub const PROMPT_VERSION: &str = "physworld-prompt/7 (3 variants; static scene and zones, visible objects only under \
     relabelled slots, hidden properties only when the suite exposes them, centimetres, every 3rd frame, VoE every \
     6th; k-shot from readout as earlier turns; plan-launch as a dialogue: the scene, one placement per reply, each \
     outcome back; plan-push as a dialogue: the table seen from above, turned boxes by their footprint's corners, one force per \
     reply, the new state back)";

/// What varies between runs of one LLM: the prompt variant, the sampling seed and
/// temperature, and the number of solved examples. Runs that differ only in variant and
/// seed form one leaderboard row (mean and spread).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmRun {
    /// Prompt variant, `0..render::VARIANTS`.
    pub variant: usize,
    /// Sampling seed (OpenAI-compatible servers and `gguf:`; the Messages API has none).
    pub seed: u64,
    /// Solved `readout` examples shown before each question.
    pub shots: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f64,
    /// Replay from the cache only (also `PHYSWORLD_LLM_OFFLINE=1`).
    pub offline: bool,
    /// Most requests (generations, for `gguf:`) this run may send; cache hits are free.
    pub max_requests: Option<u64>,
    /// Environment variable holding the API key, instead of the provider's default.
    pub key_env: Option<String>,
    /// Most tokens (prompt plus completion) this run may spend; cache hits are free.
    pub max_tokens_total: Option<u64>,
    /// Most US dollars this run may spend at `price`.
    pub max_cost_usd: Option<f64>,
    /// The model's token prices.
    pub price: Option<client::Price>,
}

impl LlmRun {
    /// One run per prompt variant and sampling seed (variants outer), each with `base`'s
    /// other settings, after checking those: request and token budgets of at least 1 (a
    /// run that must send nothing is `offline`) and a positive, finite cost bound.
    pub fn grid(base: &LlmRun, variants: &[usize], seeds: &[u64]) -> crate::Result<Vec<LlmRun>> {
        for (field, v) in [("max_requests", base.max_requests), ("max_tokens_total", base.max_tokens_total)] {
            if v == Some(0) {
                return Err(crate::error::BenchError::invalid(field, 0, "at least 1 (an offline run sends none)"));
            }
        }
        if let Some(c) = base.max_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err(crate::error::BenchError::invalid("max_cost_usd", c, "a positive number of US dollars"));
        }
        Ok(variants
            .iter()
            .flat_map(|&variant| seeds.iter().map(move |&seed| LlmRun { variant, seed, ..base.clone() }))
            .collect())
    }

    /// The model-id suffix naming the non-default settings (`#p1#s2#3shot#t0.7`).
    pub fn suffix(&self) -> String {
        let mut s = String::new();
        if self.variant != 0 {
            s.push_str(&format!("#p{}", self.variant));
        }
        if self.seed != 0 {
            s.push_str(&format!("#s{}", self.seed));
        }
        if self.shots != 0 {
            s.push_str(&format!("#{}shot", self.shots));
        }
        if self.temperature != 0.0 {
            s.push_str(&format!("#t{}", self.temperature));
        }
        s
    }
}

/// An LLM as a benchmark model.
pub struct Llm {
    id: String,
    client: std::sync::Arc<Client>,
    raw: BTreeMap<String, Value>,
    fingerprint: Option<String>,
    resolved_model: Option<String>,
    concurrency: usize,
    run: LlmRun,
}

/// One question: the conversation (few-shot turns, then the question) and its choices.
type Prompt = (Vec<Turn>, Expect);

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
enum Parsed {
    Choice(usize),
    Positions(Vec<[f32; 3]>),
}

impl Llm {
    /// From a spec: `openai:<model>[@<base_url>]` or `anthropic:<model>[@<base_url>]`.
    pub fn new(spec: &str, provider: Provider, body: &str) -> Llm {
        Llm::with_config(spec, LlmConfig::from_spec(provider, body))
    }

    /// With explicit settings.
    pub fn with_config(spec: &str, cfg: LlmConfig) -> Llm {
        let concurrency = std::env::var("PHYSWORLD_LLM_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        Llm::from_client(spec, Client::new(cfg), concurrency)
    }

    fn from_client(spec: &str, client: Client, concurrency: usize) -> Llm {
        Llm {
            id: spec.into(),
            client: std::sync::Arc::new(client),
            raw: BTreeMap::new(),
            fingerprint: None,
            resolved_model: None,
            concurrency,
            run: LlmRun::default(),
        }
    }

    /// With the run settings `run` (appends [`LlmRun::suffix`] to the id).
    pub fn with_run(mut self, run: LlmRun) -> Result<Llm> {
        if run.variant >= render::VARIANTS {
            return Err(crate::error::BenchError::invalid(
                "prompt variant",
                run.variant.to_string(),
                format!("0..{}", render::VARIANTS - 1),
            ));
        }
        if !(0.0..=2.0).contains(&run.temperature) {
            return Err(crate::error::BenchError::invalid(
                "temperature",
                run.temperature.to_string(),
                "a number in 0..=2",
            ));
        }
        self.id.push_str(&run.suffix());
        let client = std::sync::Arc::get_mut(&mut self.client).ok_or_else(|| crate::error::BenchError::Mismatch {
            what: format!("LLM `{}`", self.id),
            reason: "its settings changed while a planner held its client".into(),
        })?;
        client.set_sampling(run.temperature, run.seed);
        client.set_limits(run.offline, run.max_requests, run.key_env.as_deref());
        client.set_budget(run.max_tokens_total, run.max_cost_usd, run.price);
        self.run = run;
        Ok(self)
    }

    /// `gguf:<path>`: the GGUF chat model at `path`, run in-process (loaded now).
    pub fn gguf(spec: &str, path: &str) -> Result<Llm> {
        let client = Client::new_local(LlmConfig::from_spec(Provider::Gguf, path))?;
        // One model, one generation at a time.
        Ok(Llm::from_client(spec, client, 1))
    }

    /// Requests, cache hits and retries so far.
    pub fn stats(&self) -> Stats {
        self.client.stats()
    }

    /// Ask every `(user message, choices)` with up to `concurrency` requests in flight;
    /// replies in order.
    fn ask_all(&self, prompts: &[Prompt]) -> Vec<Result<Reply>> {
        let system = render::system(self.run.variant);
        let workers = self.concurrency.max(1).min(prompts.len().max(1));
        if workers == 1 {
            return prompts.iter().map(|(t, x)| self.client.ask_for(system, t, x)).collect();
        }
        let mut slots: Vec<Option<Result<Reply>>> = (0..prompts.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    scope.spawn(move || {
                        (w..prompts.len())
                            .step_by(workers)
                            .map(|i| (i, self.client.ask_for(system, &prompts[i].0, &prompts[i].1)))
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

    fn record(&mut self, item: &str, reply: Result<Reply>, expect: &Expect) -> Result<Option<Parsed>> {
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
                resolved_model: None,
            },
        };
        if self.fingerprint.is_none() {
            self.fingerprint = reply.fingerprint.clone();
        }
        if self.resolved_model.is_none() {
            self.resolved_model = reply.resolved_model.clone();
        }
        let parsed = match expect {
            Expect::Choice(choices) => render::parse_answer(&reply.text, choices).map(Parsed::Choice),
            Expect::Positions(n) => render::parse_positions(&reply.text, *n).map(Parsed::Positions),
            // Placements and forces are asked by the planners ([`plan`]), never through an item.
            Expect::Placement { .. } | Expect::Force { .. } => None,
        };
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

impl Llm {
    /// The solved examples shown before each question of `task`: `shots` items of the
    /// `readout` split, spread over the answers (round-robin over them, in a seeded order),
    /// as user/assistant turns. VoE examples are single episodes with their verdict.
    fn shots(&self, ctx: &Context<'_>, task: TaskKind) -> Result<Vec<Turn>> {
        let k = self.run.shots;
        if k == 0 {
            return Ok(Vec::new());
        }
        let Some(readout) = ctx.readout.get(&task) else {
            return Err(crate::error::BenchError::Mismatch {
                what: format!("--shots {k}"),
                reason: format!("the readout split has no {} items to draw examples from", task.as_str()),
            });
        };
        let fps = ctx.ds.info.fps;
        let v = self.run.variant;
        // Candidate examples (item, which of its episodes is shown, reply), grouped by
        // answer; only the picked ones are rendered.
        let mut by_answer: BTreeMap<String, Vec<(&Item, usize, String)>> = BTreeMap::new();
        for it in &readout.items {
            match (&it.target, task) {
                (crate::tasks::Target::Possible(p), TaskKind::Voe) => {
                    for (m, ok) in p.iter().enumerate().take(it.episodes.len()) {
                        let verdict = if *ok { "possible" } else { "impossible" };
                        let reply = client::answer_texts(&[verdict.to_string()]).remove(0);
                        by_answer.entry(verdict.into()).or_default().push((it, m, reply));
                    }
                }
                (crate::tasks::Target::Positions(p), TaskKind::Forecast) => {
                    by_answer.entry("forecast".into()).or_default().push((it, 0, render::positions_json(p)));
                }
                (crate::tasks::Target::Choice(c), _) => {
                    let answer = it.choices.get(*c).cloned().unwrap_or_default();
                    let reply = client::answer_texts(std::slice::from_ref(&answer)).remove(0);
                    by_answer.entry(format!("{}/{answer}", it.question)).or_default().push((it, 0, reply));
                }
                _ => {}
            }
        }
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(self.run.seed);
        for list in by_answer.values_mut() {
            rand::seq::SliceRandom::shuffle(list.as_mut_slice(), &mut rng);
        }
        let mut picked = Vec::new();
        let mut round = 0;
        while picked.len() < k && by_answer.values().any(|l| l.len() > round) {
            for list in by_answer.values() {
                if picked.len() < k
                    && let Some(x) = list.get(round)
                {
                    picked.push(x.clone());
                }
            }
            round += 1;
        }
        if picked.len() < k {
            return Err(crate::error::BenchError::Mismatch {
                what: format!("--shots {k}"),
                reason: format!("the readout split has only {} {} examples", picked.len(), task.as_str()),
            });
        }
        rand::seq::SliceRandom::shuffle(picked.as_mut_slice(), &mut rng);
        let mut turns = Vec::with_capacity(2 * k);
        for (it, m, reply) in picked {
            let obs = ctx.observe(it)?;
            let e = &obs.episodes[m];
            let user = match task {
                TaskKind::Voe => render::voe_prompt(e, fps, v),
                TaskKind::Forecast => render::forecast_prompt(it, e, fps, v),
                _ => render::choice_prompt(it, e, fps, v),
            };
            turns.extend([Turn::user(user), Turn::assistant(reply)]);
        }
        Ok(turns)
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
        matches!(task, TaskKind::Forecast | TaskKind::Contact | TaskKind::Outcome | TaskKind::Voe)
    }
    fn describe(&self) -> ModelRef {
        let c = self.client.config();
        ModelRef {
            seeds: vec![c.seed],
            labels_used: if self.run.shots > 0 {
                vec![format!("readout split: {} solved examples per question", self.run.shots)]
            } else {
                Vec::new()
            },
            config: json!({
                "provider": c.provider.name(),
                "model": c.model,
                "base_url": c.base_url,
                "resolved_model": self.resolved_model,
                "temperature": c.temperature,
                "max_tokens": c.max_tokens,
                "prompt": PROMPT_VERSION,
                "prompt_template_sha256": render::template_sha256(),
                "prompt_variant": self.run.variant,
                "shots": self.run.shots,
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
    fn launch_planner(&self) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        Some(Box::new(plan::LlmPlanner::new(&self.id, self.client.clone(), self.run.variant)))
    }
    fn push_planner(&self) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        Some(Box::new(plan::LlmPush::new(&self.id, self.client.clone(), self.run.variant)))
    }
    fn summary(&self) -> Option<String> {
        let s = self.stats();
        let cost = self.client.config().price.map(|p| format!(", ${:.4}", s.cost(&p))).unwrap_or_default();
        Some(format!(
            "{} requests, {} cache hits, {} retries, {} input + {} output tokens{cost}",
            s.requests, s.cache_hits, s.retries, s.input_tokens, s.output_tokens
        ))
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
        let v = self.run.variant;
        let verdicts = vec!["possible".to_string(), "impossible".to_string()];
        let shots = self.shots(ctx, task)?;
        let ask = |user: String, expect: Expect| -> Prompt {
            let mut turns = shots.clone();
            turns.push(Turn::user(user));
            (turns, expect)
        };
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(4 * self.concurrency.max(1)) {
            // The prompts of this chunk (four per VoE quadruplet), asked concurrently.
            let mut prompts = Vec::new();
            for it in chunk {
                let obs = ctx.observe(it)?;
                if task == TaskKind::Voe {
                    for e in &obs.episodes {
                        prompts.push(ask(render::voe_prompt(e, fps, v), Expect::Choice(verdicts.clone())));
                    }
                } else if task == TaskKind::Forecast {
                    let e = obs.first();
                    prompts.push(ask(
                        render::forecast_prompt(it, e, fps, v),
                        Expect::Positions(it.horizons.len() * it.objects.len()),
                    ));
                } else {
                    let e = obs.first();
                    prompts.push(ask(render::choice_prompt(it, e, fps, v), Expect::Choice(it.choices.clone())));
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
                                    let x = if *v == Some(Parsed::Choice(1)) { 1.0 } else { 0.0 };
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
                            Some(Parsed::Choice(k)) => Answer::Choice(k),
                            Some(Parsed::Positions(p)) => {
                                let n = it.objects.len().max(1);
                                Answer::Positions(p.chunks(n).map(<[[f32; 3]]>::to_vec).collect())
                            }
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
