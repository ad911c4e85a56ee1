//! Chat clients for OpenAI-compatible Chat Completions and Anthropic Messages, with a
//! response cache keyed by everything that determines the answer, retries with exponential
//! backoff (honouring `Retry-After`) and a request budget. API keys come only from
//! environment variables and are never logged, cached or written into results.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::gguf::Gguf;
use super::grammar::Grammar;
use crate::error::{BenchError, Result};

/// HTTP statuses that stop a run at once (401 unauthorised, 403 forbidden, 404 unknown model
/// or route): retrying them, or moving on to the next item, cannot succeed.
pub const FATAL_STATUS: [u16; 3] = [401, 403, 404];

/// Which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `POST {base}/v1/chat/completions` (OpenAI, vLLM, llama.cpp, Ollama, LM Studio, TGI).
    OpenAi,
    /// `POST {base}/v1/messages` with `anthropic-version`.
    Anthropic,
    /// A GGUF file run in-process (see [`super::gguf`]); no server, no key.
    Gguf,
}

impl Provider {
    /// Name in specs.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gguf => "gguf",
        }
    }
    fn default_base(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Gguf => "in-process",
        }
    }
    fn default_key_env(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::Gguf => "",
        }
    }
}

/// Settings of an LLM client.
#[derive(Clone)]
pub struct LlmConfig {
    /// API.
    pub provider: Provider,
    /// Model name.
    pub model: String,
    /// Base URL (without `/v1/...`).
    pub base_url: String,
    /// Environment variable holding the API key (unset is fine for local servers).
    pub key_env: String,
    /// Sampling temperature. Default 0.
    pub temperature: f64,
    /// Seed (OpenAI-compatible servers; the Messages API has none). Default 0.
    pub seed: u64,
    /// Most tokens per answer. Default 64.
    pub max_tokens: u32,
    /// Per-request timeout. Default 120 s.
    pub timeout: Duration,
    /// Retries on timeouts, 429 and 5xx. Default 4.
    pub retries: u32,
    /// Response cache folder.
    pub cache_dir: PathBuf,
    /// Replay from the cache only.
    pub offline: bool,
    /// Most requests this client may send (cache hits are free); `None` = unlimited.
    pub max_requests: Option<u64>,
    /// Most tokens (prompt plus completion, as the server reports them) this client may
    /// spend; checked before each request, so the last one may overshoot by its own tokens.
    pub max_tokens_total: Option<u64>,
    /// Most US dollars this client may spend at [`LlmConfig::price`]; checked like
    /// `max_tokens_total`.
    pub max_cost_usd: Option<f64>,
    /// What the model's tokens cost, for `max_cost_usd` and the run summary.
    pub price: Option<Price>,
    /// Most requests started per second, retries included (`PHYSWORLD_LLM_RPS`); `None` =
    /// unlimited.
    pub max_rps: Option<f64>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("LlmConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("key_env", &self.key_env)
            .finish_non_exhaustive()
    }
}

impl LlmConfig {
    /// From a spec body `<model>[@<base_url>]`, with defaults.
    pub fn from_spec(provider: Provider, body: &str) -> LlmConfig {
        let (model, base) = match body.split_once('@') {
            Some((m, b)) if provider != Provider::Gguf => (m.to_string(), b.trim_end_matches('/').to_string()),
            _ => (body.to_string(), provider.default_base().to_string()),
        };
        let cache_dir = std::env::var_os("PHYSWORLD_LLM_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/physworld/llm")
        });
        LlmConfig {
            provider,
            model,
            base_url: base,
            key_env: provider.default_key_env().into(),
            temperature: 0.0,
            seed: 0,
            max_tokens: 64,
            timeout: Duration::from_secs(120),
            retries: 4,
            cache_dir,
            offline: std::env::var_os("PHYSWORLD_LLM_OFFLINE").is_some(),
            max_requests: None,
            max_tokens_total: None,
            max_cost_usd: None,
            price: None,
            max_rps: std::env::var("PHYSWORLD_LLM_RPS").ok().and_then(|v| v.parse().ok()).filter(|r: &f64| *r > 0.0),
        }
    }
}

/// A model's token prices, US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub input_per_mtok: f64,
    /// Per million completion (output) tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// Parse `IN,OUT` (dollars per million input and output tokens).
    pub fn parse(s: &str) -> Result<Price> {
        let bad = || {
            BenchError::invalid("price", s, "IN,OUT: US dollars per million input and output tokens, e.g. 0.15,0.60")
        };
        let (a, b) = s.split_once(',').ok_or_else(bad)?;
        let (input_per_mtok, output_per_mtok) =
            (a.trim().parse::<f64>().map_err(|_| bad())?, b.trim().parse::<f64>().map_err(|_| bad())?);
        if !(input_per_mtok.is_finite()
            && output_per_mtok.is_finite()
            && input_per_mtok >= 0.0
            && output_per_mtok >= 0.0)
        {
            return Err(bad());
        }
        Ok(Price { input_per_mtok, output_per_mtok })
    }
}

/// Counters of a client's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Answers served from the cache.
    pub cache_hits: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Prompt tokens the server reported for the answers it sent (cache hits are free).
    pub input_tokens: u64,
    /// Completion tokens likewise.
    pub output_tokens: u64,
}

impl Stats {
    /// What the tokens spent cost at `price`, US dollars.
    pub fn cost(&self, price: &Price) -> f64 {
        (self.input_tokens as f64 * price.input_per_mtok + self.output_tokens as f64 * price.output_per_mtok) / 1e6
    }
}

/// `(input, output)` tokens a response body reports (OpenAI's and llama.cpp's
/// `prompt_tokens`/`completion_tokens`, Anthropic's `input_tokens`/`output_tokens`).
fn usage(body: &Value) -> (u64, u64) {
    let u = &body["usage"];
    let get = |a: &str, b: &str| u[a].as_u64().or_else(|| u[b].as_u64()).unwrap_or(0);
    (get("prompt_tokens", "input_tokens"), get("completion_tokens", "output_tokens"))
}

/// One message of a conversation: `user` or `assistant` (few-shot examples are earlier
/// turns; the last is the question).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// Text.
    pub content: String,
}

impl Turn {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Turn {
        Turn { role: "user", content: content.into() }
    }
    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Turn {
        Turn { role: "assistant", content: content.into() }
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The answer text (for a forced tool call, its input as JSON).
    pub text: String,
    /// Whether the server honoured the structured-output request.
    pub structured: bool,
    /// The request body sent (no key) and the raw response.
    pub exchange: Value,
    /// The server's system fingerprint, when it gives one.
    pub fingerprint: Option<String>,
    /// The model snapshot that answered, as the server names it (`model` in the response),
    /// when it does.
    pub resolved_model: Option<String>,
}

/// What one HTTP exchange gave: the status (0 when no answer came), the `retry-after`
/// seconds, and the body text or why it could not be read.
type Sent = (u16, Option<f64>, std::result::Result<String, String>);

/// A chat client.
pub struct Client {
    cfg: LlmConfig,
    key: Option<String>,
    #[cfg(feature = "llm")]
    agent: ureq::Agent,
    stats: Mutex<Stats>,
    local: Option<Mutex<Gguf>>,
    local_sha: String,
    next_slot: Mutex<Option<std::time::Instant>>,
    /// The response cache's folder, opened at the first lookup.
    cache: std::sync::OnceLock<std::sync::Arc<dyn physworld_pipeline::Storage>>,
}

/// The complete texts a grammar-constrained answer may take.
pub fn answer_texts(choices: &[String]) -> Vec<String> {
    choices.iter().map(|c| format!("{{\"answer\": {}}}", Value::from(c.as_str()))).collect()
}

/// What a reply must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// One of these answers: `{"answer": "<choice>"}`.
    Choice(Vec<String>),
    /// `n` positions in metres: `{"positions": [[x, y, z], ...]}`.
    Positions(usize),
    /// A `plan-launch` placement in metres, `{"x": .., "y": .., "radius": ..}`, each
    /// within its `[min, max]` (the schema states the bounds; a placement outside them is
    /// still parsed, and the simulator refuses it as invalid).
    Placement {
        /// Bounds of the ball's centre, horizontally.
        x: [f32; 2],
        /// Bounds of the ball's centre, vertically.
        y: [f32; 2],
        /// Bounds of the ball's radius.
        radius: [f32; 2],
    },
    /// A `plan-push` force in newtons, `{"fx": .., "fz": ..}`, each component within
    /// `[-max, max]` (the harness clips the force to the disk of radius `max`).
    Force {
        /// The bound on the force's magnitude.
        max: f32,
    },
}

impl Expect {
    fn schema(&self) -> Value {
        match self {
            Expect::Choice(choices) => json!({
                "type": "object",
                "properties": { "answer": { "type": "string", "enum": choices } },
                "required": ["answer"],
                "additionalProperties": false
            }),
            Expect::Positions(n) => json!({
                "type": "object",
                "properties": { "positions": {
                    "type": "array", "minItems": n, "maxItems": n,
                    "items": { "type": "array", "minItems": 3, "maxItems": 3, "items": { "type": "number" } }
                } },
                "required": ["positions"],
                "additionalProperties": false
            }),
            Expect::Placement { x, y, radius } => {
                // To the millimetre, as the prompts write lengths.
                let mm = |v: f32| (f64::from(v) * 1000.0).round() / 1000.0;
                let bounded = |b: &[f32; 2]| json!({ "type": "number", "minimum": mm(b[0]), "maximum": mm(b[1]) });
                json!({
                    "type": "object",
                    "properties": { "x": bounded(x), "y": bounded(y), "radius": bounded(radius) },
                    "required": ["x", "y", "radius"],
                    "additionalProperties": false
                })
            }
            Expect::Force { max } => {
                let m = (f64::from(*max) * 1000.0).round() / 1000.0;
                let bounded = json!({ "type": "number", "minimum": -m, "maximum": m });
                json!({
                    "type": "object",
                    "properties": { "fx": bounded, "fz": bounded },
                    "required": ["fx", "fz"],
                    "additionalProperties": false
                })
            }
        }
    }

    /// The grammar of an in-process answer, as written in the request.
    fn grammar(&self) -> Value {
        match self {
            Expect::Choice(choices) => json!(answer_texts(choices)),
            Expect::Positions(n) => json!({ "positions": n }),
            Expect::Placement { .. } => json!({ "placement": ["x", "y", "radius"] }),
            Expect::Force { .. } => json!({ "force": ["fx", "fz"] }),
        }
    }

    /// Tokens an answer may need: `max` for a choice, more for many numbers.
    fn max_tokens(&self, max: u32) -> u32 {
        match self {
            Expect::Choice(_) => max,
            Expect::Positions(n) => max.max(16 + 24 * *n as u32),
            Expect::Placement { .. } => max.max(48),
            Expect::Force { .. } => max.max(32),
        }
    }
}

impl Client {
    /// A client for `cfg` (reads the key from `cfg.key_env` if set).
    pub fn new(cfg: LlmConfig) -> Client {
        let key = std::env::var(&cfg.key_env).ok().filter(|k| !k.is_empty());
        #[cfg(feature = "llm")]
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(cfg.timeout)).http_status_as_error(false).build().into();
        Client {
            cfg,
            key,
            #[cfg(feature = "llm")]
            agent,
            stats: Mutex::new(Stats::default()),
            local: None,
            local_sha: String::new(),
            next_slot: Mutex::new(None),
            cache: std::sync::OnceLock::new(),
        }
    }

    /// The response cache's folder: `cfg.cache_dir`, a local folder or (`cloud` builds) an
    /// object-store prefix, so that the workers of a sharded run share one cache.
    fn cache(&self) -> Result<&dyn physworld_pipeline::Storage> {
        if let Some(store) = self.cache.get() {
            return Ok(&**store);
        }
        let store = physworld_pipeline::open_storage(&self.cfg.cache_dir)?;
        Ok(&**self.cache.get_or_init(|| store))
    }

    /// A client running the GGUF file `cfg.model` in-process (loads it now).
    pub fn new_local(cfg: LlmConfig) -> Result<Client> {
        let model = Gguf::load(std::path::Path::new(&cfg.model))?;
        let sha = model.sha256.clone();
        Ok(Client { local: Some(Mutex::new(model)), local_sha: sha, ..Client::new(cfg) })
    }

    /// SHA-256 of the GGUF file of an in-process model.
    pub fn model_sha256(&self) -> Option<&str> {
        self.local.as_ref().map(|_| self.local_sha.as_str())
    }

    /// Sample at `temperature` with `seed` (0: greedy).
    pub fn set_sampling(&mut self, temperature: f64, seed: u64) {
        self.cfg.temperature = temperature;
        self.cfg.seed = seed;
    }

    /// Replay only (`offline`, or as configured), stop after `max_requests` requests (as
    /// configured when `None`), and read the key from `key_env` (as configured when `None`).
    pub fn set_limits(&mut self, offline: bool, max_requests: Option<u64>, key_env: Option<&str>) {
        self.cfg.offline |= offline;
        if max_requests.is_some() {
            self.cfg.max_requests = max_requests;
        }
        if let Some(k) = key_env {
            self.cfg.key_env = k.to_string();
            self.key = std::env::var(k).ok().filter(|v| !v.is_empty());
        }
    }

    /// Token and cost budgets (see [`LlmConfig::max_tokens_total`]); `None` leaves one as it
    /// is.
    pub fn set_budget(&mut self, max_tokens_total: Option<u64>, max_cost_usd: Option<f64>, price: Option<Price>) {
        self.cfg.max_tokens_total = max_tokens_total.or(self.cfg.max_tokens_total);
        self.cfg.max_cost_usd = max_cost_usd.or(self.cfg.max_cost_usd);
        self.cfg.price = price.or(self.cfg.price);
    }

    /// Settings.
    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Wait for this request's slot under `max_rps` (slots are 1/rps apart, shared by every
    /// thread of the client).
    fn pace(&self) {
        let Some(rps) = self.cfg.max_rps else { return };
        let wait = {
            let Ok(mut slot) = self.next_slot.lock() else { return };
            let now = std::time::Instant::now();
            let start = slot.map_or(now, |s| s.max(now));
            *slot = Some(start + Duration::from_secs_f64(1.0 / rps));
            start - now
        };
        std::thread::sleep(wait);
    }

    /// Count one request (`what`: request or generation) against `max_requests`; a spent
    /// budget halts the run.
    fn spend(&self, what: &str) -> Result<()> {
        let st = self.stats();
        let spent = |budget: String| BenchError::Halt {
            what: format!("LLM `{}`", self.cfg.model),
            reason: format!("{budget} spent; rerun to continue from the cache"),
        };
        if let Some(max) = self.cfg.max_requests
            && st.requests >= max
        {
            return Err(spent(format!("{what} budget of {max}")));
        }
        if let Some(max) = self.cfg.max_tokens_total
            && st.input_tokens + st.output_tokens >= max
        {
            return Err(spent(format!("token budget of {max} ({} used)", st.input_tokens + st.output_tokens)));
        }
        if let (Some(max), Some(price)) = (self.cfg.max_cost_usd, &self.cfg.price)
            && st.cost(price) >= max
        {
            return Err(spent(format!("cost budget of ${max} (${:.4} used)", st.cost(price))));
        }
        self.bump(|s| s.requests += 1);
        Ok(())
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn body(&self, system: &str, turns: &[Turn], expect: &Expect, structured: &str) -> (String, Value) {
        let max_tokens = expect.max_tokens(self.cfg.max_tokens);
        let conversation: Vec<Value> = turns.iter().map(|t| json!({"role": t.role, "content": t.content})).collect();
        let mut with_system = vec![json!({"role": "system", "content": system})];
        with_system.extend(conversation.iter().cloned());
        match self.cfg.provider {
            Provider::OpenAi => {
                let mut b = json!({
                    "model": self.cfg.model,
                    "messages": with_system,
                    "temperature": self.cfg.temperature,
                    "seed": self.cfg.seed,
                    "max_tokens": max_tokens,
                });
                match structured {
                    "json_schema" => {
                        b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": expect.schema()}});
                    }
                    "json_object" => b["response_format"] = json!({"type": "json_object"}),
                    _ => {}
                }
                ("/v1/chat/completions".into(), b)
            }
            Provider::Anthropic => {
                let mut b = json!({
                    "model": self.cfg.model,
                    "system": system,
                    "messages": conversation,
                    "temperature": self.cfg.temperature,
                    "max_tokens": max_tokens,
                });
                if structured == "tool" {
                    b["tools"] = json!([{"name": "answer", "description": "Give your answer.", "input_schema": expect.schema()}]);
                    b["tool_choice"] = json!({"type": "tool", "name": "answer"});
                }
                ("/v1/messages".into(), b)
            }
            Provider::Gguf => {
                let mut b = json!({
                    "decoder": super::gguf::DECODER_VERSION,
                    "model_sha256": self.local_sha,
                    "messages": with_system,
                    "temperature": self.cfg.temperature,
                    "max_tokens": max_tokens,
                });
                if self.cfg.temperature > 0.0 {
                    b["seed"] = json!(self.cfg.seed);
                }
                if structured == "grammar" {
                    b["grammar"] = expect.grammar();
                }
                ("generate".into(), b)
            }
        }
    }

    /// One in-process generation, as a response body shaped like the servers'.
    fn generate_local(&self, body: &Value) -> Result<(u16, Value)> {
        let Some(local) = &self.local else {
            return Err(BenchError::Mismatch { what: "gguf client".into(), reason: "no model loaded".into() });
        };
        self.spend("generation")?;
        let mut model = local.lock().map_err(|_| BenchError::Mismatch {
            what: "gguf model".into(),
            reason: "a previous generation panicked".into(),
        })?;
        let msgs: Vec<(String, String)> = body["messages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (m["role"].as_str().unwrap_or("").to_string(), m["content"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = msgs.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
        let prompt = model.chat_prompt(&refs)?;
        let tokens = model.encode_prompt(&prompt);
        let grammar = match &body["grammar"] {
            Value::Array(a) => Some(Grammar::Choices(a.iter().filter_map(|s| s.as_str().map(String::from)).collect())),
            Value::Object(o) if o.contains_key("placement") => Some(Grammar::Placement),
            Value::Object(o) if o.contains_key("force") => Some(Grammar::Force),
            Value::Object(o) => o.get("positions").and_then(Value::as_u64).map(|n| Grammar::Positions(n as usize)),
            _ => None,
        };
        let max = body["max_tokens"].as_u64().unwrap_or(64) as usize;
        let temperature = body["temperature"].as_f64().unwrap_or(0.0);
        let sampling = (temperature > 0.0).then(|| (temperature, body["seed"].as_u64().unwrap_or(0)));
        let g = model.generate_with(&tokens, max, grammar.as_ref(), sampling)?;
        Ok((
            200,
            json!({
                "content": g.text,
                "finish_reason": g.finish,
                "usage": { "prompt_tokens": g.prompt_tokens, "completion_tokens": g.tokens.len() },
            }),
        ))
    }

    fn cache_key(&self, path: &str, body: &Value) -> String {
        let mut h = Sha256::new();
        // An in-process model is named by its file's hash, not by where the file lies.
        let model = if self.local.is_some() { &self.local_sha } else { &self.cfg.model };
        for part in [self.cfg.provider.name(), &self.cfg.base_url, path, model] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(serde_json::to_vec(body).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// One HTTP POST of `body` to `url` with the provider's headers.
    #[cfg(feature = "llm")]
    fn send(&self, url: &str, body: &Value) -> Result<Sent> {
        let mut req = self.agent.post(url).header("content-type", "application/json");
        if let Some(k) = &self.key {
            req = match self.cfg.provider {
                Provider::OpenAi | Provider::Gguf => req.header("authorization", &format!("Bearer {k}")),
                Provider::Anthropic => req.header("x-api-key", k),
            };
        }
        if self.cfg.provider == Provider::Anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        let (status, retry_after, text) = match req.send(body.to_string().as_bytes()) {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let ra = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok());
                (status, ra, r.body_mut().read_to_string().map_err(|e| e.to_string()))
            }
            Err(e) => (0, None, Err(e.to_string())),
        };
        Ok((status, retry_after, text))
    }

    /// Without the `llm` feature there is no HTTP client: every request is refused.
    #[cfg(not(feature = "llm"))]
    fn send(&self, _: &str, _: &Value) -> Result<Sent> {
        Err(super::missing_feature(&self.cfg.model))
    }

    /// Sends `body`; retries what may heal (no answer, 429, 5xx) and stops the run on a
    /// [`FATAL_STATUS`].
    fn post(&self, path: &str, body: &Value, key: &str) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.cfg.base_url);
        let unreachable = |why: String| BenchError::Mismatch { what: format!("LLM server {url}"), reason: why };
        let mut attempt = 0u32;
        loop {
            self.spend("request")?;
            self.pace();
            let (status, retry_after, text) = self.send(&url, body)?;
            let retryable = status == 0 || status == 429 || status >= 500 || text.is_err();
            let parsed = text.as_ref().ok().and_then(|t| serde_json::from_str::<Value>(t).ok());
            if FATAL_STATUS.contains(&status) {
                // A wrong key, a forbidden model or an unknown model or route does not heal:
                // stop the run at once with the provider's own words.
                let said = parsed
                    .as_ref()
                    .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("error")))
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), String::from))
                    .or_else(|| text.as_ref().ok().map(|t| t.chars().take(300).collect()))
                    .unwrap_or_default();
                return Err(BenchError::Halt {
                    what: format!("LLM server {url}"),
                    reason: format!("HTTP {status}: {said}"),
                });
            }
            match (retryable, parsed) {
                (false, Some(v)) => return Ok((status, v)),
                (false, None) => {
                    // A complete answer that is not JSON: malformed, not worth retrying.
                    return Ok((status, json!({ "physworld_error": format!("malformed response (HTTP {status})") })));
                }
                _ => {}
            }
            if attempt >= self.cfg.retries {
                let why = match &text {
                    Err(e) => e.clone(),
                    Ok(_) => format!("HTTP {status}"),
                };
                return Err(unreachable(format!("{why} after {} attempts", attempt + 1)));
            }
            // Exponential backoff with jitter (from the cache key, so reruns wait alike), or
            // the server's Retry-After.
            let jitter = u64::from_str_radix(&key[..4.min(key.len())], 16).unwrap_or(0) % 250;
            let backoff = Duration::from_millis((250u64 << attempt.min(6)).min(30_000) + jitter);
            let wait = retry_after.map_or(backoff, |s| Duration::from_secs_f64(s.clamp(0.0, 60.0)));
            std::thread::sleep(wait);
            attempt += 1;
            self.bump(|s| s.retries += 1);
        }
    }

    fn extract(&self, v: &Value) -> Option<(String, bool)> {
        match self.cfg.provider {
            Provider::OpenAi => v["choices"][0]["message"]["content"].as_str().map(|t| (t.to_string(), true)),
            Provider::Gguf => v["content"].as_str().map(|t| (t.to_string(), true)),
            Provider::Anthropic => {
                let blocks = v["content"].as_array()?;
                if let Some(t) = blocks.iter().find(|b| b["type"] == "tool_use") {
                    return Some((t["input"].to_string(), true));
                }
                let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
                Some((text.join("\n"), false))
            }
        }
    }

    /// Ask for one of `choices`: structured output first (`json_schema`, then `json_object`
    /// for OpenAI-compatible servers; a forced tool call for Anthropic), the reply text for a
    /// free-text parse otherwise. Served from the cache when the same request was answered
    /// before.
    pub fn ask(&self, system: &str, turns: &[Turn], choices: &[String]) -> Result<Reply> {
        self.ask_for(system, turns, &Expect::Choice(choices.to_vec()))
    }

    /// [`Client::ask`] for any kind of answer ([`Expect`]).
    pub fn ask_for(&self, system: &str, turns: &[Turn], expect: &Expect) -> Result<Reply> {
        let modes: &[&str] = match self.cfg.provider {
            Provider::OpenAi => &["json_schema", "json_object"],
            Provider::Anthropic => &["tool"],
            Provider::Gguf => &["grammar"],
        };
        let mut last = None;
        for (i, mode) in modes.iter().enumerate() {
            let (path, body) = self.body(system, turns, expect, mode);
            let key = self.cache_key(&path, &body);
            let file = format!("{}/{key}.json", &key[..2]);
            let cache = self.cache()?;
            // A store that cannot answer is an error, not a miss (a miss asks the server).
            let cached = if cache.exists(&file)? { cache.get(&file).ok() } else { None };
            let response = if let Some(v) = cached.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                self.bump(|s| s.cache_hits += 1);
                v
            } else if self.cfg.offline {
                return Err(BenchError::Halt {
                    what: format!("LLM `{}`", self.cfg.model),
                    reason: "not in the cache and --offline is set".into(),
                });
            } else {
                let (status, v) = if self.cfg.provider == Provider::Gguf {
                    self.generate_local(&body)?
                } else {
                    self.post(&path, &body, &key)?
                };
                let malformed = v.get("physworld_error").is_some();
                let (input, output) = usage(&v);
                self.bump(|s| {
                    s.input_tokens += input;
                    s.output_tokens += output;
                });
                let v = json!({ "status": status, "body": v });
                // Only answers are cached: an error status or a malformed body is asked
                // again next time.
                if (200..300).contains(&status) && !malformed {
                    cache.put(&file, v.to_string().as_bytes())?;
                }
                v
            };
            let status = response["status"].as_u64().unwrap_or(0);
            let exchange = json!({ "request": body, "response": response["body"] });
            if !(200..300).contains(&status) && i + 1 < modes.len() {
                last = Some(exchange);
                continue; // e.g. a server without json_schema support: try the next mode
            }
            let fingerprint = response["body"]["system_fingerprint"].as_str().map(String::from);
            let resolved_model = response["body"]["model"].as_str().map(String::from);
            let (text, structured) = self.extract(&response["body"]).unwrap_or_default();
            let structured = structured && (200..300).contains(&status);
            return Ok(Reply { text, structured, exchange, fingerprint, resolved_model });
        }
        Ok(Reply {
            text: String::new(),
            structured: false,
            exchange: last.unwrap_or(Value::Null),
            fingerprint: None,
            resolved_model: None,
        })
    }
}
