//! Items as text: the scene as structured text (the static scene and goal zones, the objects
//! seen, their shapes and sizes, positions in metres, velocities, time step), the question
//! and the allowed answers.
//!
//! What a prompt shows is exactly what every other model observes ([`crate::observe`]): the
//! static boxes (floor, walls, ramps, containers, tables, occluders) and zones, objects only
//! while visible (one never seen in the observed frames is not listed at all), under the
//! item's relabelled slots, and hidden properties (mass, friction, restitution) only when
//! the suite exposes them to every model.

use physworld_pipeline::EpisodeFrames;

use crate::observe::{EpisodeObs, role_name};
use crate::tasks::{Item, TaskKind, half, pos, seen, shape_name, vel};
use physworld_sim::StaticRole;

/// Frames between the states listed in a choice prompt (0.1 s at 30 fps).
pub const FRAME_STEP: usize = 3;
/// Frames between the states listed in a whole-episode (VoE) prompt (0.2 s at 30 fps).
pub const VOE_FRAME_STEP: usize = 6;

fn v3(v: [f32; 3]) -> String {
    format!("({:.2}, {:.2}, {:.2})", v[0], v[1], v[2])
}

/// Prompt variants: the same facts worded and laid out differently. Results are reported
/// per variant and as mean and spread over variants (never the best one).
pub const VARIANTS: usize = 3;

/// The frames a prompt lists: every `step`th of `0..observe` and the last.
fn listed_frames(observe: usize, step: usize) -> Vec<usize> {
    let mut frames: Vec<usize> = (0..observe).step_by(step.max(1)).collect();
    if observe > 0 && frames.last() != Some(&(observe - 1)) {
        frames.push(observe - 1);
    }
    frames
}

/// Objects seen (present and visible) in `0..observe`, with the first frame each is seen.
fn objects(e: &EpisodeFrames, observe: usize) -> Vec<(usize, usize)> {
    (0..e.slots).filter_map(|o| (0..observe).find(|&f| seen(e, f, o)).map(|k| (o, k))).collect()
}

fn q4(q: [f32; 4]) -> String {
    format!("({:.3}, {:.3}, {:.3}, {:.3})", q[0], q[1], q[2], q[3])
}

/// The static scene, zones and (when exposed) hidden properties of `o`, in `variant`'s
/// wording.
fn fixed(o: &EpisodeObs, variant: usize) -> String {
    let c = &o.camera;
    let mut out = format!(
        "Viewpoint: a camera at {} looking at {} (vertical field of view {:.0} degrees); objects it cannot see are not listed.\n",
        v3(c.position),
        v3(c.look_at),
        c.fov_y_deg
    );
    if !o.statics.is_empty() {
        out.push_str(match variant {
            1 => "Fixed geometry (boxes that never move; centre; half extents; orientation if rotated):\n",
            2 => "Static boxes:\n",
            _ => "Static scene (immovable boxes: centre, half extents along their own axes, rotation as a quaternion x, y, z, w when rotated):\n",
        });
        for st in &o.statics {
            let role = match st.role {
                StaticRole::Occluder => "occluder (blocks the view, nothing passes into it physically)",
                r => role_name(r),
            };
            let rot = if st.rotation == [0.0, 0.0, 0.0, 1.0] {
                String::new()
            } else {
                format!(", rotation {}", q4(st.rotation))
            };
            let material = st.material.map_or(String::new(), |[f, r]| format!(", friction {f:.2}, restitution {r:.2}"));
            out.push_str(&match variant {
                2 => format!("* {role} centre={} half={}{rot}{material}\n", v3(st.position), v3(st.half_extents)),
                _ => format!(
                    "- {role}: centre {}, half extents {}{rot}{material}\n",
                    v3(st.position),
                    v3(st.half_extents)
                ),
            });
        }
    }
    for z in &o.zones {
        out.push_str(&format!(
            "Goal zone {}: centre {}, half extents {} (a region objects can enter; not solid)\n",
            z.index,
            v3(z.center),
            v3(z.half_extents)
        ));
    }
    if !o.joints.is_empty() {
        out.push_str("Joints (anchors: world points, or points in an object's own frame):\n");
        let name = if variant == 2 { "body" } else { "object" };
        let end = |e: &crate::observe::JointEndObs| match *e {
            crate::observe::JointEndObs::Object { slot, anchor } => format!("{name} {slot} at {}", v3(anchor)),
            crate::observe::JointEndObs::World { anchor } => format!("the fixed point {}", v3(anchor)),
        };
        for j in &o.joints {
            let axis = j.axis.map_or(String::new(), |a| format!(" about axis {}", v3(a)));
            let spring =
                j.spring.map_or(String::new(), |[k, l]| format!(" (stiffness {k:.1} N/m, rest length {l:.2} m)"));
            out.push_str(&format!("- {} joint{axis}{spring} between {} and {}\n", j.kind, end(&j.a), end(&j.b)));
        }
    }
    if !o.properties.is_empty() {
        out.push_str("Object properties:\n");
        for p in &o.properties {
            let name = if variant == 2 { "body" } else { "object" };
            out.push_str(&format!(
                "- {name} {}: mass {:.2} kg, friction {:.2}, restitution {:.2}\n",
                p.slot, p.mass, p.friction, p.restitution
            ));
        }
    }
    out
}

/// The agent's plan (every `step`th frame's force, over the whole episode), if any.
fn plan(o: &EpisodeObs, fps: u32, step: usize, variant: usize) -> String {
    let Some(p) = &o.plan else { return String::new() };
    let dt = 1.0 / fps.max(1) as f64;
    let obj = if variant == 2 { "body" } else { "object" };
    let mut out = format!(
        "The agent pushes {obj} {} with these forces in newtons (each held until the next listed time; its plan for the whole recording):\n",
        p.object
    );
    let listed: Vec<String> = (0..p.forces.len())
        .step_by(step.max(1))
        .map(|t| match p.forces[t] {
            Some(f) => format!("t={:.3}s: {}", t as f64 * dt, v3(f)),
            None => format!("t={:.3}s: none", t as f64 * dt),
        })
        .collect();
    out.push_str(&listed.join("; "));
    out.push('\n');
    out
}

/// The scene of `o` (the static scene, the agent's plan, then its observed frames, every
/// `step`th and the last), to the centimetre, laid out as `variant` says: 0 and 2 list the
/// states frame by frame (2 with named fields), 1 lists each object's trajectory.
pub fn scene(o: &EpisodeObs, fps: u32, step: usize, variant: usize) -> String {
    let e = &o.frames;
    let observe = e.frames;
    let s = e.slots;
    let dt = 1.0 / fps.max(1) as f64;
    let frames = listed_frames(observe, step);
    let mut out = match variant {
        1 => format!(
            "Conventions: SI units (m, s); y points up, gravity is 9.81 m/s^2 downwards, the ground is y = 0. \
             The recording has {fps} frames per second.\n"
        ),
        2 => format!(
            "Setting: a rigid-body simulation. Ground plane y = 0 m, gravity g = 9.81 m/s^2 towards -y, time step {dt:.4} s.\n"
        ),
        _ => format!(
            "Units: metres, seconds. Gravity is 9.81 m/s^2 along -y; the floor is the plane y = 0. \
             Frames are {dt:.4} s apart ({fps} per second).\n"
        ),
    };
    out.push_str(&fixed(o, variant));
    out.push_str(&plan(o, fps, step, variant));
    if variant == 0 {
        out.push_str("Objects (half extents along x, y, z):\n");
    }
    match variant {
        1 => {
            out.push_str("Trajectories (time: position; velocity) of each object while visible:\n");
            for (o, k) in objects(e, observe) {
                out.push_str(&format!(
                    "Object {o} ({}, half extents {}):\n",
                    shape_name(e.shape[k * s + o]),
                    v3(half(e, k, o))
                ));
                for &f in &frames {
                    if seen(e, f, o) {
                        out.push_str(&format!("  {:.3}s: {}; {}\n", f as f64 * dt, v3(pos(e, f, o)), v3(vel(e, f, o))));
                    }
                }
            }
            return out;
        }
        2 => {
            out.push_str("Bodies:\n");
            for (o, k) in objects(e, observe) {
                let h = half(e, k, o);
                out.push_str(&format!(
                    "* body {o}: shape={} size=({:.2} x {:.2} x {:.2}) m\n",
                    shape_name(e.shape[k * s + o]),
                    2.0 * h[0],
                    2.0 * h[1],
                    2.0 * h[2]
                ));
            }
            out.push_str("Snapshots:\n");
        }
        _ => {
            for (o, k) in objects(e, observe) {
                out.push_str(&format!(
                    "- object {o}: {}, half extents {}\n",
                    shape_name(e.shape[k * s + o]),
                    v3(half(e, k, o))
                ));
            }
            out.push_str("Observed states (position; velocity) of the visible objects:\n");
        }
    }
    for f in frames {
        let objs: Vec<String> = (0..s)
            .filter(|&o| seen(e, f, o))
            .map(|o| {
                let (p, v) = (pos(e, f, o), vel(e, f, o));
                if variant == 2 {
                    format!(
                        "body {o} x={:.2} y={:.2} z={:.2} vx={:.2} vy={:.2} vz={:.2}",
                        p[0], p[1], p[2], v[0], v[1], v[2]
                    )
                } else {
                    format!("object {o} {}; {}", v3(p), v3(v))
                }
            })
            .collect();
        let hidden = if objs.is_empty() { "nothing visible".to_string() } else { objs.join(" | ") };
        out.push_str(&format!("t={:.3}s: {hidden}\n", f as f64 * dt));
    }
    out
}

/// The question of a choice item (in `variant`'s wording; variant 2 says "body").
pub fn question(it: &Item, o: &EpisodeObs, fps: u32, variant: usize) -> String {
    let end = o.episode_frames.saturating_sub(1) as f64 / fps.max(1) as f64;
    let obj = if variant == 2 { "body" } else { "object" };
    let z = it.zone.unwrap_or(0);
    match (it.task, it.question.as_str(), variant) {
        (TaskKind::Contact, _, 1) => match it.objects[..] {
            [a, b] => format!("Will objects {a} and {b} come into contact before t={end:.2}s?"),
            [a] => format!("Does object {a} enter goal zone {z} before t={end:.2}s?"),
            _ => "Does the agent object touch its target?".into(),
        },
        (TaskKind::Contact, _, _) => match it.objects[..] {
            [a, b] => format!("Question: will {obj} {a} touch {obj} {b} at any time before t={end:.2}s?"),
            [a] => format!("Question: will {obj} {a} reach goal zone {z} at any time before t={end:.2}s?"),
            _ => format!("Question: will the agent {obj} touch its target?"),
        },
        (_, "tower_falls", 1) => format!("Does the stack topple before t={end:.2}s?"),
        (_, "tower_falls", _) => format!("Question: will the stack of {obj}s fall over before t={end:.2}s?"),
        (_, "first_floor", 1) => "Which of these objects lands on the ground (y = 0) first?".into(),
        (_, "first_floor", _) => format!("Question: which of these {obj}s will touch the floor (y = 0) first?"),
        _ => "Question: is this trajectory physically possible?".into(),
    }
}

/// The system prompt of `variant`.
pub fn system(variant: usize) -> &'static str {
    match variant {
        1 => {
            "You are an expert in classical mechanics. Given measured states of objects in a short \
              simulation, you predict what happens next. Give only one of the allowed answers."
        }
        2 => {
            "Predict the outcome of a rigid-body physics simulation from its recorded states. Respond \
              with exactly one of the allowed answers."
        }
        _ => SYSTEM,
    }
}

/// SHA-256 of the prompt templates: this file's source, which holds every variant's
/// system prompt, question wording and scene rendering. Recorded in result files, so that
/// two LLM rows built from different prompts are told apart even where
/// [`super::PROMPT_VERSION`] was not bumped.
pub fn template_sha256() -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(include_str!("render.rs").as_bytes()))
}

/// The system prompt of variant 0.
pub const SYSTEM: &str = "You are a careful physicist. You predict what happens in short rigid-body simulations \
from the states you are given. Answer with one of the allowed answers only.";

const REPLY: &str = "Reply as JSON {\"answer\": \"...\"} or end with a line `Answer: <answer>`.";

/// The user message for a choice item.
pub fn choice_prompt(it: &Item, o: &EpisodeObs, fps: u32, variant: usize) -> String {
    let scene = scene(o, fps, FRAME_STEP, variant);
    let q = question(it, o, fps, variant);
    let allowed = it.choices.join(", ");
    match variant {
        1 => format!("{q}\n\n{scene}\n{q} Choose from: {allowed}.\n{REPLY}"),
        2 => format!("{scene}\n{q}\nOptions: {allowed}.\n{REPLY}"),
        _ => format!("{scene}\n{q}\nAllowed answers: {allowed}.\n{REPLY}"),
    }
}

/// The user message asking whether one whole episode is physically possible.
pub fn voe_prompt(o: &EpisodeObs, fps: u32, variant: usize) -> String {
    let scene = scene(o, fps, VOE_FRAME_STEP, variant);
    match variant {
        1 => format!(
            "Is the following recording physically possible, or did something impossible happen (an object \
             vanishing or appearing, teleporting, changing shape, passing through a solid, floating)? Objects \
             may be hidden behind an occluder for a while.\n\n{scene}\nChoose from: possible, impossible.\n{REPLY}"
        ),
        2 => format!(
            "{scene}\nNote: bodies can be temporarily occluded.\nCould this recording come from real physics \
             (no vanishing, appearing, teleporting, shape changes, interpenetration or levitation)?\nOptions: \
             possible, impossible.\n{REPLY}"
        ),
        _ => format!(
            "{scene}\nObjects may pass behind an occluder and be hidden for a while.\nQuestion: is everything in this \
             recording physically possible (objects do not vanish, appear, teleport, change shape, pass through \
             solids or float)?\nAllowed answers: possible, impossible.\n{REPLY}"
        ),
    }
}

/// The user message for a forecast item: the scene, then the positions asked for, in
/// order (every object at the first time, then at the next).
pub fn forecast_prompt(it: &Item, o: &EpisodeObs, fps: u32, variant: usize) -> String {
    let scene = scene(o, fps, FRAME_STEP, variant);
    let obj = if variant == 2 { "body" } else { "object" };
    let dt = 1.0 / fps.max(1) as f64;
    let mut asked = Vec::new();
    for h in &it.horizons {
        for o in &it.objects {
            asked.push(format!("{obj} {o} at t={:.3}s", (it.observe - 1 + h) as f64 * dt));
        }
    }
    let list: String = asked.iter().enumerate().map(|(i, a)| format!("{}. {a}\n", i + 1)).collect();
    let n = asked.len();
    let reply = format!(
        "Reply as JSON {{\"positions\": [[x, y, z], ...]}} with exactly {n} positions in metres, in this order."
    );
    match variant {
        1 => format!("Where will these objects be?\n{list}\n{scene}\n{reply}"),
        2 => format!("{scene}\nPredict the positions (x, y, z in metres) of:\n{list}{reply}"),
        _ => format!(
            "{scene}\nQuestion: where will each of these objects be (position x, y, z in metres)?\n{list}{reply}"
        ),
    }
}

/// Positions as the JSON a forecast reply holds (for solved examples), to the millimetre.
pub fn positions_json(p: &[Vec<[f32; 3]>]) -> String {
    let triples: Vec<String> = p.iter().flatten().map(|q| format!("[{:.3}, {:.3}, {:.3}]", q[0], q[1], q[2])).collect();
    format!("{{\"positions\": [{}]}}", triples.join(", "))
}

/// Parse a forecast reply: a JSON object whose `positions` holds exactly `n` triples of
/// finite numbers.
pub fn parse_positions(text: &str, n: usize) -> Option<Vec<[f32; 3]>> {
    let t = text.trim();
    let j = &t[t.find('{')?..=t.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(j).ok()?;
    let list = v.get("positions")?.as_array()?;
    if list.len() != n {
        return None;
    }
    list.iter()
        .map(|q| {
            let a = q.as_array()?;
            if a.len() != 3 {
                return None;
            }
            let mut out = [0f32; 3];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x.as_f64().filter(|x| x.is_finite())? as f32;
            }
            Some(out)
        })
        .collect()
}

/// Parse a free-text or JSON reply into one of `choices` (case-insensitive): a JSON object
/// with `answer`, else the last `Answer: X` line, else a reply that is exactly a choice.
pub fn parse_answer(text: &str, choices: &[String]) -> Option<usize> {
    let find = |s: &str| {
        let s = s.trim().trim_matches(|c: char| c == '"' || c == '.' || c == '`' || c == '*').trim();
        choices.iter().position(|c| c.eq_ignore_ascii_case(s))
    };
    let trimmed = text.trim();
    let json_part = trimmed.find('{').and_then(|a| trimmed.rfind('}').map(|b| &trimmed[a..=b]));
    if let Some(j) = json_part
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(j)
        && let Some(a) = v.get("answer").and_then(|a| a.as_str())
    {
        return find(a);
    }
    if let Some(line) = trimmed.lines().rev().find(|l| l.to_ascii_lowercase().trim_start().starts_with("answer:")) {
        return find(&line.trim_start()[7..]);
    }
    find(trimmed)
}

/// The system prompt of a `plan-launch` dialogue in `variant`'s wording.
pub fn plan_system(variant: usize) -> &'static str {
    match variant {
        1 => {
            "You are an expert in classical mechanics solving physical puzzles. Each turn, propose one \
             action in the requested JSON form and nothing else."
        }
        2 => {
            "Solve a 2D rigid-body physics puzzle by choosing where to drop a ball. Respond only with the \
             requested JSON."
        }
        _ => {
            "You are a careful physicist solving physical puzzles in a rigid-body simulator. You learn from \
             the outcome of each attempt. Answer with the requested JSON only."
        }
    }
}

const PLACEMENT_REPLY: &str = "Reply as JSON {\"x\": ..., \"y\": ..., \"radius\": ...} in metres.";

/// A box of the launch scene: centre and half extents in the x-y plane, its tilt when
/// rotated about z (degrees, counter-clockwise), the full quaternion otherwise.
fn plane_box(b: &physworld_pipeline::SceneBox) -> String {
    let [qx, qy, qz, qw] = b.rotation;
    let rot = if b.rotation == [0.0, 0.0, 0.0, 1.0] {
        String::new()
    } else if qx.abs() < 1e-6 && qy.abs() < 1e-6 {
        format!(", tilted {:.1} degrees", 2.0 * qz.atan2(qw).to_degrees())
    } else {
        format!(", rotation {}", q4(b.rotation))
    };
    format!(
        "centre ({:.2}, {:.2}), half width {:.2}, half height {:.2}{rot}",
        b.position[0], b.position[1], b.half_extents[0], b.half_extents[1]
    )
}

/// The first user message of a `plan-launch` dialogue: the scene (the planner's
/// [`crate::plan::LaunchView`], nothing more), the goal, the action's bounds and the budget.
pub fn launch_prompt(v: &crate::plan::LaunchView, attempts: usize, variant: usize) -> String {
    use crate::plan::{X_MAX, Y_MAX};
    let mut scene = String::from(
        "The scene is a vertical plane: x is horizontal, y points up, in metres; gravity pulls towards -y at \
         9.81 m/s^2.\nStatic boxes (immovable):\n",
    );
    for b in &v.statics {
        scene.push_str(&format!("- {}: {}\n", crate::plan::box_role(b.kind), plane_box(b)));
    }
    scene.push_str(&format!(
        "Target: a ball of radius {:.2} at rest at ({:.2}, {:.2}).\nGoal zone (not solid): {}.\n",
        v.target_radius,
        v.target[0],
        v.target[1],
        plane_box(&v.goal)
    ));
    let task = format!(
        "Task: add one ball of radius {:.2} to {:.2}, released at rest with its centre at (x, y), |x| <= {X_MAX:.1} \
         and y <= {Y_MAX:.1}, not overlapping anything. The simulation then runs for {:.1} s. You succeed if the \
         target ball is inside the goal zone at the end. You have {attempts} attempts; after each you are told \
         what happened. A placement that overlaps something or leaves the scene is refused and not counted.",
        v.radius[0], v.radius[1], v.duration_s
    );
    match variant {
        1 => format!("{task}\n\n{scene}Where do you place the ball?\n{PLACEMENT_REPLY}"),
        2 => format!("{scene}{task}\nPlacement?\n{PLACEMENT_REPLY}"),
        _ => format!("{scene}\n{task}\nQuestion: where do you place the ball?\n{PLACEMENT_REPLY}"),
    }
}

/// What a `plan-launch` planner is told after a simulated attempt, and asked next.
pub fn launch_outcome(f: &crate::plan::Feedback) -> String {
    let verdict = if f.success { "Success" } else { "Failed" };
    format!(
        "{verdict}: the target ended at ({:.2}, {:.2}). Propose a different placement.\n{PLACEMENT_REPLY}",
        f.target_final[0], f.target_final[1]
    )
}

/// What a `plan-launch` planner is told after a refused placement, and asked next.
pub fn launch_refused(why: &str) -> String {
    format!("Refused, not simulated and not counted: {why}. Try again.\n{PLACEMENT_REPLY}")
}

/// What a `plan-launch` planner is told after a reply that was not a placement.
pub fn launch_unusable() -> String {
    format!("That was not a placement and counts as a failed attempt.\n{PLACEMENT_REPLY}")
}

/// A placement as a reply holds it (for the dialogue and tests), to the millimetre.
pub fn placement_json(p: &physworld_sim::Placement) -> String {
    format!("{{\"x\": {:.3}, \"y\": {:.3}, \"radius\": {:.3}}}", p.x, p.y, p.radius)
}

/// Parse a placement reply: a JSON object with finite numbers `x`, `y` and `radius` (in a
/// code fence or after prose too). Bounds are the simulator's to judge.
pub fn parse_placement(text: &str) -> Option<physworld_sim::Placement> {
    let t = text.trim();
    let j = &t[t.find('{')?..=t.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(j).ok()?;
    let num = |k: &str| v.get(k)?.as_f64().filter(|x| x.is_finite()).map(|x| x as f32);
    Some(physworld_sim::Placement { x: num("x")?, y: num("y")?, radius: num("radius")? })
}

const FORCE_REPLY: &str = "Reply as JSON {\"fx\": ..., \"fz\": ...} in newtons.";

/// A box of the push scene seen from above: centre and half sizes in the x-z plane, and
/// the height of its top.
fn top_box(b: &physworld_pipeline::SceneBox) -> String {
    let top = b.position[1] + b.half_extents[1];
    let [x, y, z, _] = b.rotation;
    if x == 0.0 && y == 0.0 && z == 0.0 {
        return format!(
            "centre ({:.2}, {:.2}), half sizes {:.2} along x and {:.2} along z, top at height {top:.2}",
            b.position[0], b.position[2], b.half_extents[0], b.half_extents[2]
        );
    }
    // Turned about the vertical (a wall across the way): its footprint's corners.
    let corners: Vec<String> = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
        .iter()
        .map(|&(sx, sz)| {
            let local = [sx * b.half_extents[0], 0.0, sz * b.half_extents[2]];
            let c = physworld_sim::math::quat_rotate(b.rotation, local);
            format!("({:.2}, {:.2})", b.position[0] + c[0], b.position[2] + c[2])
        })
        .collect();
    format!("footprint with corners {}, top at height {top:.2}", corners.join(", "))
}

/// The puck's state as a user turn states it.
fn puck_state(v: &crate::plan_push::PushView) -> String {
    let t = v.frame as f32 / v.fps.max(1) as f32;
    match v.puck {
        Some(p) => format!(
            "At t = {t:.2} s the puck is at ({:.3}, {:.3}), height {:.3}, moving at ({:.3}, {:.3}) m/s.",
            p.position[0], p.position[2], p.position[1], p.velocity[0], p.velocity[2]
        ),
        None => format!("At t = {t:.2} s the puck is not visible."),
    }
}

/// The first user message of a `plan-push` dialogue: the table seen from above (the
/// planner's [`crate::plan_push::PushView`], nothing more), the goal, the force's bound,
/// the control rate and the puck now.
pub fn push_prompt(v: &crate::plan_push::PushView, variant: usize) -> String {
    let fps = v.fps.max(1) as f32;
    let mut scene = String::from(
        "A table seen from above: x and z are horizontal, in metres; y points up; gravity pulls towards -y at \
         9.81 m/s^2.\nStatic boxes (immovable):\n",
    );
    for b in &v.statics {
        scene.push_str(&format!("- {}: {}\n", crate::plan::box_role(b.kind), top_box(b)));
    }
    scene.push_str(&format!(
        "Goal zone (not solid): centre ({:.2}, {:.2}), half sizes {:.2} along x and {:.2} along z.\nPuck: a \
         cylinder of radius {:.3} lying on the table, with friction; its mass is not given.\n",
        v.goal.position[0], v.goal.position[2], v.goal.half_extents[0], v.goal.half_extents[2], v.puck_radius
    ));
    let task = format!(
        "Task: push the puck so that it is inside the goal zone when the episode ends at t = {:.2} s. Every {:.2} s \
         you choose a horizontal force (fx, fz) on the puck, at most {:.2} N in magnitude (stronger forces are \
         scaled down); it is held until your next choice, and after each you are told where the puck is.",
        (v.frames.saturating_sub(1)) as f32 / fps,
        v.hold as f32 / fps,
        v.max_force
    );
    let now = puck_state(v);
    match variant {
        1 => format!("{task}\n\n{scene}{now}\nWhich force do you apply?\n{FORCE_REPLY}"),
        2 => format!("{scene}{task}\n{now}\nForce?\n{FORCE_REPLY}"),
        _ => format!("{scene}\n{task}\n{now}\nQuestion: which force do you apply now?\n{FORCE_REPLY}"),
    }
}

/// What a `plan-push` planner is told after its previous reply, and asked next: the
/// puck's new state (and, after a reply that was not a force, that none was applied).
pub fn push_state(v: &crate::plan_push::PushView, unusable: bool) -> String {
    let lead = if unusable { "That was not a force; none was applied.\n" } else { "" };
    format!("{lead}{}\nWhich force now?\n{FORCE_REPLY}", puck_state(v))
}

/// A force as a reply holds it (for logs and tests), to the millinewton.
pub fn force_json(f: [f32; 2]) -> String {
    format!("{{\"fx\": {:.3}, \"fz\": {:.3}}}", f[0], f[1])
}

/// Parse a force reply: a JSON object with finite numbers `fx` and `fz` (in a code fence
/// or after prose too). The bound is the harness's to apply.
pub fn parse_force(text: &str) -> Option<[f32; 2]> {
    let t = text.trim();
    let j = &t[t.find('{')?..=t.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(j).ok()?;
    let num = |k: &str| v.get(k)?.as_f64().filter(|x| x.is_finite()).map(|x| x as f32);
    Some([num("fx")?, num("fz")?])
}

#[cfg(test)]
mod tests {
    /// A box turned about the vertical is told by its footprint's corners, an axis-aligned
    /// one by its half sizes along x and z.
    #[test]
    fn turned_boxes_are_told_by_their_corners() {
        use physworld_pipeline::SceneBox;
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let wall = SceneBox {
            kind: 1,
            position: [0.5, 0.45, -0.2],
            rotation: [0.0, s, 0.0, s],
            half_extents: [0.3, 0.05, 0.02],
        };
        let text = super::top_box(&wall);
        // Turned 90°: 0.3 m along z, 0.02 m along x.
        for c in ["(0.48, 0.10)", "(0.52, 0.10)", "(0.52, -0.50)", "(0.48, -0.50)"] {
            assert!(text.contains(c), "{c} in {text}");
        }
        assert!(text.contains("top at height 0.50"), "{text}");
        let table = SceneBox { rotation: [0.0, 0.0, 0.0, 1.0], ..wall };
        assert!(super::top_box(&table).contains("half sizes 0.30 along x and 0.02 along z"));
    }

    #[test]
    fn forces_parse_from_json_with_two_finite_numbers() {
        use super::{force_json, parse_force};
        assert_eq!(parse_force("Push left.\n```json\n{\"fx\": -3.5, \"fz\": 0.25}\n```"), Some([-3.5, 0.25]));
        assert_eq!(parse_force(&force_json([1.0, -2.0])), Some([1.0, -2.0]));
        assert_eq!(parse_force("{\"fx\": 1}"), None);
        assert_eq!(parse_force("{\"fx\": 1, \"fz\": \"left\"}"), None);
        assert_eq!(parse_force("push harder"), None);
    }

    use super::parse_answer;

    #[test]
    fn placements_parse_from_json_with_three_finite_numbers() {
        use super::{parse_placement, placement_json};
        let p = parse_placement("Let me think.\n```json\n{\"x\": -0.4, \"y\": 1.25, \"radius\": 0.1}\n```");
        assert_eq!(p, Some(physworld_sim::Placement { x: -0.4, y: 1.25, radius: 0.1 }));
        assert_eq!(parse_placement("{\"x\": 1, \"y\": 2}"), None);
        assert_eq!(parse_placement("{\"x\": 1, \"y\": \"up\", \"radius\": 0.1}"), None);
        assert_eq!(parse_placement("place it left"), None);
        let q = physworld_sim::Placement { x: 0.125, y: 0.5, radius: 0.075 };
        assert_eq!(parse_placement(&placement_json(&q)), Some(q));
    }

    #[test]
    fn positions_parse_only_with_exactly_n_finite_triples() {
        use super::{parse_positions, positions_json};
        let p = parse_positions("```json\n{\"positions\": [[1, 2.5, -3], [0.1, 0.2, 0.3]]}\n```", 2);
        assert_eq!(p, Some(vec![[1.0, 2.5, -3.0], [0.1, 0.2, 0.3]]));
        assert_eq!(parse_positions("{\"positions\": [[1, 2, 3]]}", 2), None);
        assert_eq!(parse_positions("{\"positions\": [[1, 2]]}", 1), None);
        assert_eq!(parse_positions("{\"positions\": [[1, 2, \"x\"]]}", 1), None);
        assert_eq!(parse_positions("no idea", 1), None);
        let back = positions_json(&[vec![[1.0, 2.5, -3.0]], vec![[0.1, 0.2, 0.3]]]);
        assert_eq!(parse_positions(&back, 2), Some(vec![[1.0, 2.5, -3.0], [0.1, 0.2, 0.3]]));
    }

    #[test]
    fn answers_parse_from_json_answer_lines_and_bare_words() {
        let c = vec!["yes".to_string(), "no".to_string()];
        assert_eq!(parse_answer("{\"answer\": \"No\"}", &c), Some(1));
        assert_eq!(parse_answer("```json\n{\n  \"answer\": \"yes\"\n}\n```", &c), Some(0));
        assert_eq!(parse_answer("The ball rolls on.\nAnswer: yes.", &c), Some(0));
        assert_eq!(parse_answer("no", &c), Some(1));
        assert_eq!(parse_answer("maybe", &c), None);
        assert_eq!(parse_answer("{\"answer\": \"perhaps\"}", &c), None);
        let objs = vec!["object 2".to_string(), "object 5".to_string()];
        assert_eq!(parse_answer("Answer: object 5", &objs), Some(1));
    }
}
