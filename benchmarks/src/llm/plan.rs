//! LLMs as planners: one dialogue per item, on `plan-launch` ([`LlmPlanner`]) and on
//! `plan-push` ([`LlmPush`]).
//!
//! The first user turn is the scene as the planner observes it ([`crate::plan::LaunchView`]:
//! statics, target, goal zone, the ball's radius range, the simulation's length) and the
//! rules, written by [`render::launch_prompt`]; each reply is a placement
//! (`{"x": .., "y": .., "radius": ..}`, structured output under the action's bounds, a
//! grammar in-process); each later user turn is the outcome of the previous attempt, the
//! one signal every planner gets: success or not and where the target came to rest, or why
//! the placement was refused, or that the reply was not a placement. The whole dialogue is
//! the request, so the response cache is keyed on it: a rerun replays the item without a
//! request. Invalid and unparsable replies are counted by [`crate::plan::play`]'s rules,
//! never fatal; only a spent request, token or cost budget stops the run.

use std::sync::Arc;

use serde_json::{Value, json};

use super::client::{Client, Expect, Turn};
use super::render;
use crate::error::{BenchError, Result};
use crate::plan::{Feedback, LaunchPlanner, LaunchView, Proposal, X_MAX, Y_MAX};
use crate::plan_push::{PushPlanner, PushView};
use physworld_sim::{LaunchTask, Placement, Simulation};

/// What became of the planner's previous reply.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Last {
    /// Nothing asked yet this item.
    None,
    /// A placement (its fate is in the history or the invalid list).
    Placed,
    /// Not a placement.
    Unusable,
}

/// An LLM playing `plan-launch` items.
pub struct LlmPlanner {
    id: String,
    client: Arc<Client>,
    variant: usize,
    attempts: usize,
    turns: Vec<Turn>,
    last: Last,
    seen: (usize, usize),
    responses: Vec<Value>,
    request: Option<Value>,
}

impl LlmPlanner {
    /// The planner of the LLM `id` asking through `client` in prompt `variant`.
    pub fn new(id: &str, client: Arc<Client>, variant: usize) -> LlmPlanner {
        LlmPlanner {
            id: id.to_string(),
            client,
            variant,
            attempts: crate::plan::MAX_ATTEMPTS,
            turns: Vec::new(),
            last: Last::None,
            seen: (0, 0),
            responses: Vec::new(),
            request: None,
        }
    }

    /// The user turn reporting what became of the previous reply.
    fn outcome(&self, history: &[Feedback], invalid: &[(Placement, String)]) -> String {
        match self.last {
            Last::Unusable => render::launch_unusable(),
            _ if invalid.len() > self.seen.1 => {
                render::launch_refused(invalid.last().map_or("invalid placement", |(_, why)| why.as_str()))
            }
            _ => match history.last() {
                Some(f) if history.len() > self.seen.0 => render::launch_outcome(f),
                _ => render::launch_unusable(),
            },
        }
    }
}

impl LaunchPlanner for LlmPlanner {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, _index: usize, _seed: u64, attempts: usize, _task: Option<&LaunchTask>) {
        self.attempts = attempts;
        self.turns.clear();
        self.last = Last::None;
        self.seen = (0, 0);
        self.responses.clear();
        self.request = None;
    }
    fn propose(
        &mut self,
        view: &LaunchView,
        history: &[Feedback],
        invalid: &[(Placement, String)],
    ) -> Result<Proposal> {
        let user = if self.last == Last::None {
            render::launch_prompt(view, self.attempts, self.variant)
        } else {
            self.outcome(history, invalid)
        };
        self.turns.push(Turn::user(user));
        self.seen = (history.len(), invalid.len());
        let expect = Expect::Placement { x: [-X_MAX, X_MAX], y: [view.radius[0], Y_MAX], radius: view.radius };
        let (text, response, structured) = ask(&self.client, self.variant, &self.turns, &expect, &mut self.request)?;
        let parsed = render::parse_placement(&text);
        self.responses.push(json!({
            "response": response,
            "structured": structured,
            "parsed": parsed.as_ref().map(render::placement_json),
        }));
        self.turns.push(Turn::assistant(if text.is_empty() { "(no reply)".to_string() } else { text }));
        Ok(match parsed {
            Some(p) => {
                self.last = Last::Placed;
                Proposal::Place(p)
            }
            None => {
                self.last = Last::Unusable;
                Proposal::Unusable("not a placement".into())
            }
        })
    }
    fn raw_log(&mut self) -> Option<Value> {
        dialogue_log(&self.turns, self.variant, &mut self.request, &mut self.responses)
    }
}

/// Ask for the dialogue's next reply: its text, raw response and whether it came as
/// structured output, keeping the first request's settings in `request`. A spent budget
/// stops the run (the answers so far are cached: a rerun resumes); a server that keeps
/// failing costs this reply (an empty text), not the run.
fn ask(
    client: &Client,
    variant: usize,
    turns: &[Turn],
    expect: &Expect,
    request: &mut Option<Value>,
) -> Result<(String, Value, bool)> {
    match client.ask_for(render::plan_system(variant), turns, expect) {
        Ok(r) => {
            if request.is_none() {
                *request = Some(settings(&r.exchange["request"]));
            }
            Ok((r.text, r.exchange["response"].clone(), r.structured))
        }
        Err(e @ BenchError::Halt { .. }) => Err(e),
        Err(e) => Ok((String::new(), json!({ "error": e.to_string() }), false)),
    }
}

/// A request's settings (model, sampling, response format or grammar), without its
/// messages: those are the dialogue.
fn settings(request: &Value) -> Value {
    let mut req = request.clone();
    if let Some(o) = req.as_object_mut() {
        o.remove("messages");
        o.remove("system");
    }
    req
}

/// An item's dialogue (system prompt and every turn), the request's settings and each raw
/// response, once.
fn dialogue_log(
    turns: &[Turn],
    variant: usize,
    request: &mut Option<Value>,
    responses: &mut Vec<Value>,
) -> Option<Value> {
    if turns.is_empty() {
        return None;
    }
    let dialogue: Vec<Value> = turns.iter().map(|t| json!({ "role": t.role, "content": t.content })).collect();
    Some(json!({
        "system": render::plan_system(variant),
        "dialogue": dialogue,
        "request": request.take(),
        "responses": std::mem::take(responses),
    }))
}

/// An LLM playing `plan-push` items: one dialogue per item, one force per reply. The first
/// user turn is the table seen from above, the goal, the force's bound, the control rate
/// and the puck now ([`render::push_prompt`]); each later turn is the puck's new state
/// ([`render::push_state`]). A reply that is not a force applies none and is counted by
/// [`crate::plan_push::play`]; only a spent budget stops the run.
pub struct LlmPush {
    id: String,
    client: Arc<Client>,
    variant: usize,
    turns: Vec<Turn>,
    unusable: bool,
    responses: Vec<Value>,
    request: Option<Value>,
}

impl LlmPush {
    /// The planner of the LLM `id` asking through `client` in prompt `variant`.
    pub fn new(id: &str, client: Arc<Client>, variant: usize) -> LlmPush {
        LlmPush {
            id: id.to_string(),
            client,
            variant,
            turns: Vec::new(),
            unusable: false,
            responses: Vec::new(),
            request: None,
        }
    }
}

impl PushPlanner for LlmPush {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, _index: usize, _seed: u64) {
        self.turns.clear();
        self.unusable = false;
        self.responses.clear();
        self.request = None;
    }
    fn act(&mut self, view: &PushView, _: &[[f32; 3]], _: Option<&Simulation<'_>>) -> Result<Option<[f32; 2]>> {
        let user = if self.turns.is_empty() {
            render::push_prompt(view, self.variant)
        } else {
            render::push_state(view, self.unusable)
        };
        self.turns.push(Turn::user(user));
        let expect = Expect::Force { max: view.max_force };
        let (text, response, structured) = ask(&self.client, self.variant, &self.turns, &expect, &mut self.request)?;
        let parsed = render::parse_force(&text);
        self.responses.push(json!({
            "response": response,
            "structured": structured,
            "parsed": parsed.map(render::force_json),
        }));
        self.turns.push(Turn::assistant(if text.is_empty() { "(no reply)".to_string() } else { text }));
        self.unusable = parsed.is_none();
        Ok(parsed)
    }
    fn raw_log(&mut self) -> Option<Value> {
        dialogue_log(&self.turns, self.variant, &mut self.request, &mut self.responses)
    }
}
