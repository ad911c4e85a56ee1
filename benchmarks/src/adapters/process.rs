//! `process:<command>`: any external model (PyTorch, JAX, another simulator) over a JSON
//! Lines protocol on its standard input and output, so that models outside Rust can be
//! scored on the same items.
//!
//! # Protocol `physworld-process/3`
//! One JSON object per line each way. The harness starts `sh -c <command>` and sends
//! `{"type": "hello", "protocol": "physworld-process/3", "tasks": [...]}`; the model answers
//! `{"type": "hello", "name": "...", "tasks": ["forecast", "contact", ...]}` with the task
//! kinds it supports. Then, per item, the harness sends what every model observes of it
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
//! Version 2 sent no static scene and the true slot numbers; version 1 also listed hidden
//! objects as `{"slot": k, "visible": false}`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Adapter, Answer, Context, Surprise};
use crate::error::{BenchError, Result};
use crate::observe::EpisodeObs;
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind, half, pos, seen, shape_name, vel};

/// Protocol version.
pub const PROCESS_PROTOCOL: &str = "physworld-process/3";
/// How long one answer may take.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// An external model.
pub struct Process {
    id: String,
    name: String,
    tasks: Vec<TaskKind>,
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
        let mut p = Process { id: spec.into(), name: String::new(), tasks: Vec::new(), child, stdin, lines };
        let all: Vec<&str> = TaskKind::ALL.iter().map(|k| k.as_str()).collect();
        if let Err(e) = p.send(&json!({ "type": "hello", "protocol": PROCESS_PROTOCOL, "tasks": all })) {
            // A program that died at once closes its stdin before or while the hello is
            // written: say why from its output side, with its exit status, as when it dies
            // a moment later.
            return Err(bad(match p.recv() {
                Err(closed) => closed.to_string(),
                Ok(_) => e.to_string(),
            }));
        }
        let hello = p.recv().map_err(|e| bad(e.to_string()))?;
        let v: Value = serde_json::from_str(&hello).map_err(|e| bad(format!("hello is not JSON: {e}")))?;
        if v["type"] != "hello" {
            return Err(bad(format!("expected a hello, got {hello}")));
        }
        p.name = v["name"].as_str().unwrap_or("").to_string();
        for t in v["tasks"].as_array().into_iter().flatten() {
            p.tasks.push(TaskKind::parse(t.as_str().unwrap_or("")).map_err(|e| bad(e.to_string()))?);
        }
        Ok(p)
    }

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

impl Drop for Process {
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
            self.send(&json!({
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
            let line = self.recv()?;
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
