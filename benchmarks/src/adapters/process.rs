//! `process:<command>`: any external model (PyTorch, JAX, another simulator) over a JSON
//! Lines protocol on its standard input and output, so that models outside Rust can be
//! scored on the same items.
//!
//! # Protocol `physworld-process/6`
//! One JSON object per line each way. The harness starts `sh -c <command>` and sends
//! `{"type": "hello", "protocol": "physworld-process/6", "tasks": [...]}`; the model answers
//! `{"type": "hello", "name": "...", "tasks": ["forecast", "contact", ...]}` with the task
//! kinds it supports (`plan-launch` and `plan-push` among them if it plans, see below). Then, per item, the harness sends what every model observes of it
//! ([`crate::observe`]):
//!
//! ```json
//! {"type": "item", "task": "contact", "id": "...", "hash": "...", "family": "collide",
//!  "question": "contact", "choices": ["yes", "no"], "objects": [2, 0], "zone": null,
//!  "horizons": [], "fps": 30, "observation": "visible-state",
//!  "episodes": [{"episode_frames": 91,
//!    "camera": {"position": [x, y, z], "look_at": [x, y, z], "fov_y_deg": 50, "width": 128,
//!               "height": 128},
//!    "statics": [{"role": "floor", "position": [x, y, z], "rotation": [x, y, z, w],
//!                 "half_extents": [x, y, z]}, ...],
//!    "zones": [{"index": 0, "center": [x, y, z], "half_extents": [x, y, z]}],
//!    "joints": [{"kind": "spherical", "a": {"world": {"anchor": [x, y, z]}},
//!                "b": {"object": {"slot": 1, "anchor": [x, y, z]}}}],
//!    "properties": [], "plan": null,
//!    "frames": [{"t": 0, "action": null, "objects": [
//!      {"slot": 2, "shape": "sphere", "position": [x, y, z], "rotation": [x, y, z, w],
//!       "linvel": [...], "angvel": [...], "size": [...]}]}]}]}
//! ```
//!
//! - `joints`: ball joints (`spherical`), hinges (`revolute`, with `axis`), welds (`fixed`)
//!   and springs between objects (by shown slot, anchors in their local frames) or to a world
//!   point; a spring carries `"spring": [stiffness, rest_length]`.
//! - `camera`: the viewpoint objects are visible from (occlusion is what it cannot see).
//! - `statics`: the fixed boxes of the scene (role `floor`, `wall`, `ramp`, `container`,
//!   `table` or `occluder`; an occluder blocks the view and nothing else), with pose and
//!   half extents; `zones`: goal regions (`zone` names the one a contact question is about).
//! - `plan`: in scenes with an agent, `{"object": k, "forces": [[fx, fy, fz] or null, ...]}`,
//!   the force the agent applies to object `k` between frame `t` and `t + 1`, for every frame
//!   of the episode (actions are the agent's inputs, not outcomes; each frame's `action`
//!   repeats it for the observed frames).
//! - `frames`: only the frames the item lets a model observe (whole episodes for VoE) and
//!   in each only the objects visible in it: an object hidden behind an occluder is not
//!   listed, exactly as one that does not exist. `episode_frames` is the whole episode's
//!   length (the horizon of "by the end" questions).
//! - Slots are relabelled per item by a seeded permutation: `objects`, the candidates'
//!   names and the frames all use the shown labels, and no label carries a role.
//! - Hidden properties (mass, friction, restitution) are sent only when the suite's
//!   `[observation] hidden_properties = true` (then `observation` is
//!   `visible-state+hidden-properties`, `properties` lists `{"slot", "mass", "friction",
//!   "restitution"}` per object seen, and statics carry `"material": [friction,
//!   restitution]`), to every model alike.
//!
//! Choices come in a seeded order per item ([`crate::present`]); a VoE item is one movie
//! (one episode) with an opaque `id` and `hash`, and the movies of all quadruplets arrive
//! interleaved. The model answers with one line carrying the item's `id` and one of
//! `"choice": k` (an index into the choices as sent), `"positions": [[[x, y, z], ...], ...]`
//! (`[horizon][object]`, the item's `objects`), `"surprise": [{"max": s, "mean": s}]` (one
//! per episode), or `"error": "..."`. A malformed or missing answer is scored wrong and
//! counted invalid.
//!
//! ## Planning (`plan-launch`)
//! A model that declares `plan-launch` plays each `launch` task ([`crate::plan`]) as a
//! sequence of requests, one per placement it proposes. Each request carries the whole
//! state, so a planner may keep none: the scene as every planner observes it (statics; the
//! goal zone; the target ball; the radii a placed ball may have; the placement bounds
//! `|x| <= x_max`, `0 < y <= y_max`; how long the simulator runs), every simulated
//! attempt's outcome so far, in order (success, and where the target ended), and every
//! placement refused without simulation (with why):
//!
//! ```json
//! {"type": "plan", "task": "plan-launch", "id": "plan-launch/41/2", "episode": 41, "attempts": 100,
//!  "scene": {"statics": [{"role": "floor", "position": [x, y, z], "rotation": [x, y, z, w],
//!                         "half_extents": [x, y, z]}, ...],
//!            "goal": {"center": [x, y, z], "half_extents": [x, y, z]},
//!            "target": {"position": [x, y, z], "radius": r}, "radius": [min, max],
//!            "x_max": 1.5, "y_max": 2.0, "duration_s": 3.0},
//!  "outcomes": [{"placement": {"x": x, "y": y, "radius": r}, "success": false,
//!                "target_final": [x, y, z]}, ...],
//!  "refused": [{"placement": {"x": x, "y": y, "radius": r}, "reason": "..."}]}
//! ```
//!
//! The model answers `{"id": "<the request's id>", "placement": {"x": x, "y": y, "radius": r}}`
//! (metres; the ball is released at rest at `(x, y)` in the scene's plane) or `{"id": ...,
//! "error": "..."}`. A reply that is not a placement is a failed attempt; a placement that
//! overlaps something or leaves the scene is refused and not counted, except that every
//! eleventh refusal in a row counts as a failed attempt ([`crate::plan::MAX_INVALID_STREAK`]).
//! The next request of an item follows the outcome; a new `episode` starts a new item.
//!
//! ## Planning (`plan-push`)
//! A model that declares `plan-push` plays each `push` task ([`crate::plan_push`]) in
//! closed loop: one request per control step, each carrying the whole state (the scene as
//! every planner observes it, the puck now, and what was observed and applied at every
//! earlier step of the item), answered with the horizontal force to hold for the next
//! `hold` frames:
//!
//! ```json
//! {"type": "plan", "task": "plan-push", "id": "plan-push/7/3", "episode": 7,
//!  "scene": {"statics": [...], "goal": {"center": [x, y, z], "half_extents": [x, y, z]},
//!            "goal_state": {"position": [x, y, z], "velocity": [x, y, z]},
//!            "puck_radius": r, "max_force": f, "fps": 30, "frames": 91, "hold": 6},
//!  "frame": 18, "puck": {"position": [x, y, z], "velocity": [x, y, z]},
//!  "history": [{"frame": 0, "puck": {...}, "force": [fx, fz]}, ...],
//!  "track": [{"position": [x, y, z], "velocity": [x, y, z], "rotation": [x, y, z, w],
//!             "angular_velocity": [x, y, z]}, null, ...]}
//! ```
//!
//! `track` is the puck at every frame `0..=frame` (`null` where it was not visible): what
//! in-process planners observe too ([`crate::plan_push::PushView::observed`]; a world
//! model's context is the frames, not only the control steps).
//!
//! `goal_state` is a state of the puck inside the zone, for planners that need a goal state
//! rather than a zone ([`crate::plan_push::PushItem::goal_state`]). `puck` is `null` while
//! the puck is not visible; `history[k].force` is the force that was
//! applied after the observation at `history[k].frame` (after clipping to the bound; `[0,
//! 0]` when the reply was unusable). The model answers `{"id": ..., "force": [fx, fz]}`
//! (newtons, clipped to the disk of radius `max_force`) or `{"id": ..., "error": "..."}`;
//! anything else is an unusable answer: no force for that step, and it is counted.
//!
//! Version 5 had no `track`; version 4 had no `plan-push`; version 3 had no planning; version 2 sent no static scene and the true slot numbers;
//! version 1 also listed hidden objects as `{"slot": k, "visible": false}`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Adapter, Answer, Context, Surprise};
use crate::error::{BenchError, Result};
use crate::observe::EpisodeObs;
use crate::plan::{Feedback, LaunchView, Proposal};
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind, half, pos, seen, shape_name, vel};
use physworld_sim::Placement;

/// Protocol version.
pub const PROCESS_PROTOCOL: &str = "physworld-process/6";
/// How long one answer may take.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// An external model.
pub struct Process {
    id: String,
    name: String,
    tasks: Vec<TaskKind>,
    plans: bool,
    pushes: bool,
    io: Arc<Mutex<Io>>,
}

/// The running program's pipes, shared with its planner.
struct Io {
    id: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

/// One observed episode as protocol JSON.
pub fn episode_json(e: &EpisodeObs) -> Value {
    let f = &e.frames;
    let s = f.slots;
    let frames: Vec<Value> = (0..f.frames)
        .map(|t| {
            // The observation already holds only what is seen.
            let objects: Vec<Value> = (0..s)
                .filter(|&o| seen(f, t, o))
                .map(|o| {
                    let k = t * s + o;
                    json!({
                        "slot": o,
                        "shape": shape_name(f.shape[k]),
                        "position": pos(f, t, o),
                        "rotation": &f.rotation[k * 4..k * 4 + 4],
                        "linvel": vel(f, t, o),
                        "angvel": &f.angvel[k * 3..k * 3 + 3],
                        "size": half(f, t, o),
                    })
                })
                .collect();
            let action = f.has_action[t].then(|| json!(&f.action[t * 3..t * 3 + 3]));
            json!({ "t": t, "action": action, "objects": objects })
        })
        .collect();
    json!({
        "episode_frames": e.episode_frames,
        "camera": e.camera,
        "statics": e.statics,
        "zones": e.zones,
        "joints": e.joints,
        "properties": e.properties,
        "plan": e.plan,
        "frames": frames,
    })
}

impl Process {
    /// Start `command` and shake hands.
    pub fn start(spec: &str, command: &str) -> Result<Process> {
        let bad = |why: String| {
            BenchError::invalid("model", spec, format!("process:<command> that speaks {PROCESS_PROTOCOL} ({why})"))
        };
        let mut cmd = Command::new("sh");
        // Not the runtime settings `physworld` re-executed itself with: the model under
        // test runs with the environment the user gave.
        physworld_model::runtime::remove_injected_env(&mut cmd);
        let mut child = cmd
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| bad(format!("could not start: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(bad("no pipes".into()));
        };
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut io = Io { id: spec.into(), child, stdin, lines };
        let mut all: Vec<&str> = TaskKind::ALL.iter().map(|k| k.as_str()).collect();
        all.extend([crate::plan::LAUNCH_TASK, crate::plan_push::PUSH_TASK]);
        if let Err(e) = io.send(&json!({ "type": "hello", "protocol": PROCESS_PROTOCOL, "tasks": all })) {
            // A program that died at once closes its stdin before or while the hello is
            // written: say why from its output side, with its exit status, as when it dies
            // a moment later.
            return Err(bad(match io.recv() {
                Err(closed) => closed.to_string(),
                Ok(_) => e.to_string(),
            }));
        }
        let hello = io.recv().map_err(|e| bad(e.to_string()))?;
        let v: Value = serde_json::from_str(&hello).map_err(|e| bad(format!("hello is not JSON: {e}")))?;
        if v["type"] != "hello" {
            return Err(bad(format!("expected a hello, got {hello}")));
        }
        let mut p = Process {
            id: spec.into(),
            name: v["name"].as_str().unwrap_or("").to_string(),
            tasks: Vec::new(),
            plans: false,
            pushes: false,
            io: Arc::new(Mutex::new(io)),
        };
        for t in v["tasks"].as_array().into_iter().flatten() {
            match t.as_str().unwrap_or("") {
                crate::plan::LAUNCH_TASK => p.plans = true,
                crate::plan_push::PUSH_TASK => p.pushes = true,
                t => p.tasks.push(TaskKind::parse(t).map_err(|e| bad(e.to_string()))?),
            }
        }
        Ok(p)
    }

    /// Send `v` and read the answer line.
    fn ask(&self, v: &Value) -> Result<String> {
        exchange(&self.io, &self.id, v)
    }
}

/// Send `v` to the program and read its answer line.
fn exchange(io: &Mutex<Io>, id: &str, v: &Value) -> Result<String> {
    let mut io = io.lock().map_err(|_| BenchError::Mismatch {
        what: format!("model `{id}`"),
        reason: "an earlier exchange panicked".into(),
    })?;
    io.send(v)?;
    io.recv()
}

impl Io {
    fn send(&mut self, v: &Value) -> Result<()> {
        let mut line = serde_json::to_string(v).map_err(|e| BenchError::invalid("request", e, "JSON"))?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()).map_err(|e| BenchError::Mismatch {
            what: format!("model `{}`", self.id),
            reason: format!("its stdin closed: {e}"),
        })
    }

    fn recv(&mut self) -> Result<String> {
        match self.lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => Err(BenchError::Mismatch {
                what: format!("model `{}`", self.id),
                reason: format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_default();
                Err(BenchError::Mismatch {
                    what: format!("model `{}`", self.id),
                    reason: format!("it closed its output ({status})"),
                })
            }
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_answer(v: &Value, task: TaskKind) -> Answer {
    if let Some(e) = v.get("error") {
        return Answer::Invalid(format!("model error: {e}"));
    }
    let parsed = match task {
        TaskKind::Forecast => {
            v.get("positions").and_then(|p| serde_json::from_value(p.clone()).ok()).map(Answer::Positions)
        }
        TaskKind::Contact | TaskKind::Outcome => {
            v.get("choice").and_then(Value::as_u64).map(|c| Answer::Choice(c as usize))
        }
        TaskKind::Voe => v
            .get("surprise")
            .and_then(|s| serde_json::from_value::<Vec<Surprise>>(s.clone()).ok())
            .map(Answer::Surprise),
    };
    parsed.unwrap_or_else(|| Answer::Invalid(format!("unusable answer: {v}")))
}

impl Adapter for Process {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "process"
    }
    fn supports(&self, task: TaskKind) -> bool {
        self.tasks.contains(&task)
    }
    fn describe(&self) -> ModelRef {
        ModelRef {
            config: json!({ "name": self.name, "protocol": PROCESS_PROTOCOL }),
            ..ModelRef::new(&self.id, "process")
        }
    }
    fn launch_planner(&self) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        self.plans.then(|| {
            Box::new(ProcessPlanner { id: self.id.clone(), io: self.io.clone(), episode: 0, attempts: 0, asked: 0 })
                as Box<dyn crate::plan::LaunchPlanner>
        })
    }
    fn push_planner(&self) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        self.pushes.then(|| {
            Box::new(ProcessPush { id: self.id.clone(), io: self.io.clone(), episode: 0, seen: Vec::new() })
                as Box<dyn crate::plan_push::PushPlanner>
        })
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let obs = ctx.observe(it)?;
            let episodes: Vec<Value> = obs.episodes.iter().map(episode_json).collect();
            let line = self.ask(&json!({
                "type": "item",
                "task": task.as_str(),
                "id": it.id,
                "hash": it.hash,
                "family": it.family,
                "question": it.question,
                "choices": it.choices,
                "objects": it.objects,
                "zone": it.zone,
                "horizons": it.horizons,
                "fps": obs.fps,
                "observation": obs.observability.name(),
                "episodes": episodes,
            }))?;
            let ans = match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["id"] == it.id.as_str() => parse_answer(&v, task),
                Ok(v) => Answer::Invalid(format!("answer for another item: {}", v["id"])),
                Err(e) => Answer::Invalid(format!("not JSON ({e}): {line}")),
            };
            out.push(ans);
            tick();
        }
        Ok(out)
    }
}

/// A program playing `plan-launch` over the protocol's `plan` messages.
struct ProcessPlanner {
    id: String,
    io: Arc<Mutex<Io>>,
    episode: usize,
    attempts: usize,
    asked: usize,
}

/// A planning scene's static boxes as protocol JSON.
fn statics_json(statics: &[physworld_pipeline::SceneBox]) -> Vec<Value> {
    statics
        .iter()
        .map(|b| {
            json!({
                "role": crate::plan::box_role(b.kind),
                "position": b.position,
                "rotation": b.rotation,
                "half_extents": b.half_extents,
            })
        })
        .collect()
}

/// A placement as protocol JSON.
fn placement_json(p: &Placement) -> Value {
    json!({ "x": p.x, "y": p.y, "radius": p.radius })
}

impl crate::plan::LaunchPlanner for ProcessPlanner {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, index: usize, _seed: u64, attempts: usize, _task: Option<&physworld_sim::LaunchTask>) {
        self.episode = index;
        self.attempts = attempts;
        self.asked = 0;
    }
    fn propose(
        &mut self,
        view: &LaunchView,
        history: &[Feedback],
        invalid: &[(Placement, String)],
    ) -> Result<Proposal> {
        let id = format!("{}/{}/{}", crate::plan::LAUNCH_TASK, self.episode, self.asked);
        self.asked += 1;
        let outcomes: Vec<Value> = history
            .iter()
            .map(|f| {
                json!({
                    "placement": placement_json(&f.placement),
                    "success": f.success,
                    "target_final": f.target_final,
                })
            })
            .collect();
        let refused: Vec<Value> =
            invalid.iter().map(|(p, why)| json!({ "placement": placement_json(p), "reason": why })).collect();
        let msg = json!({
            "type": "plan",
            "task": crate::plan::LAUNCH_TASK,
            "id": id,
            "episode": self.episode,
            "attempts": self.attempts,
            "scene": {
                "statics": statics_json(&view.statics),
                "goal": { "center": view.goal.position, "half_extents": view.goal.half_extents },
                "target": { "position": view.target, "radius": view.target_radius },
                "radius": view.radius,
                "x_max": crate::plan::X_MAX,
                "y_max": crate::plan::Y_MAX,
                "duration_s": view.duration_s,
            },
            "outcomes": outcomes,
            "refused": refused,
        });
        let line = exchange(&self.io, &self.id, &msg)?;
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => return Ok(Proposal::Unusable(format!("not JSON ({e}): {line}"))),
        };
        if v["id"] != id.as_str() {
            return Ok(Proposal::Unusable(format!("answer for another request: {}", v["id"])));
        }
        if let Some(e) = v.get("error") {
            return Ok(Proposal::Unusable(format!("model error: {e}")));
        }
        let num = |k: &str| v["placement"][k].as_f64().filter(|x| x.is_finite()).map(|x| x as f32);
        Ok(match (num("x"), num("y"), num("radius")) {
            (Some(x), Some(y), Some(radius)) => Proposal::Place(Placement { x, y, radius }),
            _ => Proposal::Unusable(format!("no placement {{x, y, radius}}: {line}")),
        })
    }
}

/// A program playing `plan-push` over the protocol's `plan` messages.
struct ProcessPush {
    id: String,
    io: Arc<Mutex<Io>>,
    episode: usize,
    /// The item's earlier observations (frame, puck), for the history.
    seen: Vec<(usize, Value)>,
}

/// The puck (slot 0) at every observed frame, `null` where it was not visible.
fn track_json(obs: &physworld_pipeline::EpisodeFrames) -> Value {
    let s = obs.slots.max(1);
    Value::Array(
        (0..obs.frames)
            .map(|f| {
                let d = f * s;
                if !obs.visible.get(d).copied().unwrap_or(false) {
                    return Value::Null;
                }
                json!({
                    "position": &obs.position[d * 3..d * 3 + 3],
                    "velocity": &obs.linvel[d * 3..d * 3 + 3],
                    "rotation": &obs.rotation[d * 4..d * 4 + 4],
                    "angular_velocity": &obs.angvel[d * 3..d * 3 + 3],
                })
            })
            .collect(),
    )
}

fn puck_json(p: Option<&crate::plan_push::PuckState>) -> Value {
    p.map_or(Value::Null, |p| json!({ "position": p.position, "velocity": p.velocity }))
}

impl crate::plan_push::PushPlanner for ProcessPush {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, index: usize, _seed: u64) {
        self.episode = index;
        self.seen.clear();
    }
    fn act(
        &mut self,
        view: &crate::plan_push::PushView,
        executed: &[[f32; 3]],
        _sim: Option<&physworld_sim::Simulation<'_>>,
    ) -> Result<Option<[f32; 2]>> {
        let id = format!("{}/{}/{}", crate::plan_push::PUSH_TASK, self.episode, self.seen.len());
        let history: Vec<Value> = self
            .seen
            .iter()
            .map(|(frame, puck)| {
                let f = executed.get(*frame).copied().unwrap_or([0.0; 3]);
                json!({ "frame": frame, "puck": puck, "force": [f[0], f[2]] })
            })
            .collect();
        let puck = puck_json(view.puck.as_ref());
        let msg = json!({
            "type": "plan",
            "task": crate::plan_push::PUSH_TASK,
            "id": id,
            "episode": self.episode,
            "scene": {
                "statics": statics_json(&view.statics),
                "goal": { "center": view.goal.position, "half_extents": view.goal.half_extents },
                "goal_state": { "position": view.goal_state.position, "velocity": view.goal_state.velocity },
                "puck_radius": view.puck_radius,
                "max_force": view.max_force,
                "fps": view.fps,
                "frames": view.frames,
                "hold": view.hold,
            },
            "frame": view.frame,
            "puck": puck,
            "history": history,
            "track": track_json(&view.observed),
        });
        self.seen.push((view.frame, puck));
        let line = exchange(&self.io, &self.id, &msg)?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else { return Ok(None) };
        if v["id"] != id.as_str() || v.get("error").is_some() {
            return Ok(None);
        }
        let num = |k: usize| v["force"][k].as_f64().filter(|x| x.is_finite()).map(|x| x as f32);
        Ok(match (num(0), num(1), v["force"].as_array().map(Vec::len)) {
            (Some(fx), Some(fz), Some(2)) => Some([fx, fz]),
            _ => None,
        })
    }
}
