//! `push`: an agent applies bounded horizontal forces to a puck on a table.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED};
use super::{FamilyInfo, FamilyKind, Outcome, Range, Sample};
use crate::episode::{Episode, Frame};
use crate::error::{Rejection, Result};
use crate::math::{Vec3, norm, sub};
use crate::scene::{
    AgentSpec, ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, Shape, SimConfig, StaticRole, StaticSpec, Zone,
};
use crate::seed::Sampler;
use crate::simulate::{HealthConfig, Simulation};
use crate::split::Split;

/// Height of the table top, m.
pub const TABLE_TOP: f32 = 0.4;
/// Half size of the square table top, m.
pub const TABLE_HALF: f32 = 0.8;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "push",
    kind: FamilyKind::Planning,
    description: "An agent pushes a puck across a table with bounded horizontal forces (one per frame) toward a goal zone, around a wall where one stands across the way. Samples whose force bound is under 1.5x the puck's friction force are redrawn.",
    params: &[
        ("max_force", "bound on the agent's force, N"),
        ("puck_radius", "puck radius, m"),
        ("mass", "puck mass, kg"),
        ("friction", "puck and table friction"),
        ("goal_half_size", "goal zone half size, m"),
        (
            "heldout_goal_quadrant",
            "true: test goals lie in the table's +x,+z quadrant, which train/val/readout never use",
        ),
        ("aim_noise", "scripted policy: heading error around the goal direction, degrees"),
        ("duration_s", "episode length, s"),
        (
            "wall_chance",
            "chance that a wall stands across the straight path from the puck to the goal (a detour is needed); default 0",
        ),
    ],
    heldout: "goal positions in the +x,+z quadrant of the table",
    labels: "goal_reached (puck at rest, overlapping the goal zone, at the last frame), contact (puck→goal zone), actions per frame, final_positions",
};

/// Parameters of `push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[2.0, 4.0]` N.
    pub max_force: Range,
    /// Default `[0.04, 0.07]` m.
    pub puck_radius: Range,
    /// Default `[0.2, 0.8]` kg.
    pub mass: Range,
    /// Default `[0.2, 0.4]`.
    pub friction: Range,
    /// Default `[0.08, 0.12]` m.
    pub goal_half_size: Range,
    /// Default true.
    pub heldout_goal_quadrant: bool,
    /// Default `[0, 8]` degrees.
    pub aim_noise: Range,
    /// Default 3 s.
    pub duration_s: f32,
    /// Chance that a wall ([`StaticRole::Wall`]) stands across the straight path from the
    /// puck to the goal, so that pushing straight at the goal gets stuck and a detour is
    /// needed. Default 0 (written out only when set, so suites without walls keep their
    /// hashes).
    #[serde(skip_serializing_if = "is_zero")]
    pub wall_chance: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

/// Below this speed (m/s) the puck counts as at rest: `goal_reached` needs it at rest in
/// the goal zone at the last frame.
pub const REST_SPEED: f32 = 0.05;

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            max_force: Range::new(2.0, 4.0),
            puck_radius: Range::new(0.04, 0.07),
            mass: Range::new(0.2, 0.8),
            friction: Range::new(0.2, 0.4),
            goal_half_size: Range::new(0.08, 0.12),
            heldout_goal_quadrant: true,
            aim_noise: Range::new(0.0, 8.0),
            duration_s: 3.0,
            wall_chance: 0.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("push", self.fov_y_deg)?;
        self.max_force.validate("push.max_force", 0.0, 100.0)?;
        self.puck_radius.validate("push.puck_radius", 0.01, 0.3)?;
        self.mass.validate("push.mass", 0.001, 100.0)?;
        self.friction.validate("push.friction", 0.0, 2.0)?;
        self.goal_half_size.validate("push.goal_half_size", 0.02, 0.5)?;
        self.aim_noise.validate("push.aim_noise", 0.0, 180.0)?;
        Range::new(self.duration_s, self.duration_s).validate("push.duration_s", 0.1, 60.0)?;
        Range::new(self.wall_chance, self.wall_chance).validate("push.wall_chance", 0.0, 1.0)
    }
}

fn goal_position(s: &mut Sampler, heldout_quadrant: bool, test: bool) -> Vec3 {
    let lim = TABLE_HALF - 0.2;
    loop {
        let (x, z) = (s.uniform(-lim, lim), s.uniform(-lim, lim));
        let in_quadrant = x > 0.0 && z > 0.0;
        if !heldout_quadrant || in_quadrant == test {
            return [x, TABLE_TOP + 0.05, z];
        }
    }
}

/// A `push` planning task: the scene of an episode's own seed (table, goal zone, puck,
/// camera) with the agent's bound but none of the scripted expert's forces. A planner
/// chooses the forces; [`PushTask::run`] simulates them.
#[derive(Debug, Clone, PartialEq)]
pub struct PushTask {
    /// The scene; its agent pushes the puck (object 0) and has no actions.
    pub scene: Scene,
    /// The bound on the force's magnitude, N (forces are clipped to it).
    pub max_force: f32,
}

impl PushTask {
    /// The task of `seed` (an episode's own seed) for `split`: the recorded episode's scene.
    pub fn new(p: &Params, seed: u64, split: Split) -> Result<PushTask> {
        let mut scene = scene(p, seed, split)?;
        let max_force = scene.agent.as_ref().map_or(0.0, |a| a.max_force);
        if let Some(a) = scene.agent.as_mut() {
            a.actions.clear();
        }
        Ok(PushTask { scene, max_force })
    }

    /// Frames of an episode.
    pub fn frames(&self) -> usize {
        self.scene.sim.num_frames() as usize
    }

    /// Simulate the whole episode under `actions` (entry `f` acts between frames `f` and
    /// `f + 1`, none after the list): the episode, with `goal_reached` (the family's label:
    /// the puck at rest in the goal zone at the last frame) set, or why the physics was
    /// rejected.
    pub fn run(&self, actions: &[Vec3]) -> Result<std::result::Result<Episode, Rejection>> {
        let mut scene = self.scene.clone();
        if let Some(a) = scene.agent.as_mut() {
            a.actions = actions.to_vec();
        }
        Ok(common::run(&scene, &[])?.map(|mut ep| {
            ep.labels.goal_reached = Some(PushTask::reached(&ep.frames));
            ep
        }))
    }

    /// The task's simulation at its first frame, to be advanced one frame at a time with
    /// the chosen forces ([`Simulation::advance`]); forks ([`Clone`]) continue exactly as
    /// [`PushTask::run`] would under the same forces.
    pub fn start(&self) -> Result<std::result::Result<Simulation<'_>, Rejection>> {
        Simulation::start(&self.scene, &HealthConfig::default(), &[])
    }

    /// The family's goal label on recorded frames: the puck (object 0) overlapping the goal
    /// zone (zone 0) and at rest (slower than [`REST_SPEED`]) at the last frame.
    pub fn reached(frames: &[Frame]) -> bool {
        frames.last().is_some_and(|f| {
            f.zone_contacts.contains(&(0, 0)) && f.objects.first().is_some_and(|o| norm(o.linvel) < REST_SPEED)
        })
    }
}

/// The agent's bound must exceed the force that keeps the puck from sliding (friction
/// times weight) by this factor, or the sample is redrawn: a puck the agent can hardly
/// move is no planning task.
pub const FORCE_MARGIN: f32 = 1.5;

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let scene = scene(p, seed, split)?;
    let (puck, bound) = (&scene.objects[0], scene.agent.as_ref().map_or(0.0, |a| a.max_force));
    let sticking = puck.friction * puck.mass_kg() * crate::scene::GRAVITY;
    if bound < FORCE_MARGIN * sticking {
        return Ok(Err(Rejection::family(format!(
            "the agent's bound {bound:.2} N is under {FORCE_MARGIN} times the puck's friction force {sticking:.2} N"
        ))));
    }
    let mut ep = match common::run(&scene, &[])? {
        Ok(e) => e,
        Err(rj) => return Ok(Err(rj)),
    };
    ep.labels.goal_reached = Some(PushTask::reached(&ep.frames));
    Ok(Ok(Sample::one(ep)))
}

/// The scene of `seed`, with the scripted expert's forces (the family's draws, in order).
fn scene(p: &Params, seed: u64, split: Split) -> Result<Scene> {
    let mut s = Sampler::new(seed);
    let sim = SimConfig { duration_s: p.duration_s, ..SimConfig::default() };
    let frames = sim.num_frames() as usize;
    let mut scene = Scene::new(sim);
    let friction = s.range(p.friction);
    scene.statics.push(common::floor(0.5, 0.1));
    let mut table =
        StaticSpec::new("table", StaticRole::Table, [TABLE_HALF, 0.05, TABLE_HALF], [0.0, TABLE_TOP - 0.05, 0.0]);
    table.friction = friction;
    table.color = [0.55, 0.35, 0.2];
    scene.statics.push(table);
    let goal = goal_position(&mut s, p.heldout_goal_quadrant, split.is_heldout());
    let gh = s.range(p.goal_half_size);
    scene.zones.push(Zone { name: "goal".into(), center: goal, half_extents: [gh, 0.05, gh] });

    let r = s.range(p.puck_radius);
    let lim = TABLE_HALF - 0.15;
    let mut start;
    loop {
        start = [s.uniform(-lim, lim), TABLE_TOP + 0.02, s.uniform(-lim, lim)];
        if crate::math::dist(start, goal) > 0.35 {
            break;
        }
    }
    let mut puck =
        ObjectSpec::new("puck", Shape::Cylinder { half_height: 0.02, radius: r }, Mass::Kg(s.range(p.mass)), start);
    puck.friction = friction;
    puck.color = AGENT_RED;
    scene.objects.push(puck);

    // A noisy scripted expert, open loop: it knows mass and friction, pushes along a noisy
    // heading toward the goal with a force and duration that would stop the puck at the
    // goal, with both scaled by random factors; 30% of episodes are a random walk instead.
    let max_force = s.range(p.max_force);
    let mass = scene.objects[0].mass_kg();
    let mu = friction; // puck and table share the coefficient (averaged rule)
    let to_goal = sub(goal, start);
    let distance = norm([to_goal[0], 0.0, to_goal[2]]);
    let base = libm::atan2f(to_goal[2], to_goal[0]);
    let directed = s.chance(0.7);
    let force = max_force * s.uniform(0.6, 1.0);
    let a = (force / mass - mu * crate::scene::GRAVITY).max(0.05);
    // Push for T, then slide to rest: D = a T^2 / 2 * (1 + a / (mu g)).
    let t_push = libm::sqrtf(2.0 * distance / (a * (1.0 + a / (mu * crate::scene::GRAVITY).max(0.05))));
    let push_frames = ((t_push * scene.sim.fps as f32 * s.uniform(0.7, 1.3)) as usize).max(1);
    let mut heading = base + s.range(p.aim_noise).to_radians() * if s.chance(0.5) { 1.0 } else { -1.0 };
    let mut actions = Vec::with_capacity(frames);
    for f in 0..frames.saturating_sub(1) {
        let mag = if directed {
            if f < push_frames { force } else { 0.0 }
        } else {
            heading += s.uniform(-0.4, 0.4);
            max_force * s.uniform(0.0, 1.0)
        };
        actions.push([mag * libm::cosf(heading), 0.0, mag * libm::sinf(heading)]);
    }
    scene.agent = Some(AgentSpec { object: 0, max_force, actions });
    scene.camera = common::camera(&mut s, [0.0, TABLE_TOP, 0.0], 0.6, (2.2, 3.0), (1.0, 1.8));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Zone(0) });
    // Drawn last, and only when walls are asked for, so the draws above are those of a
    // suite without walls.
    if p.wall_chance > 0.0 && s.chance(p.wall_chance) {
        scene.statics.push(wall(&mut s, start, goal, r));
    }
    Ok(scene)
}

/// A wall across the straight path from `start` to `goal`, standing on the table, about
/// midway, wider than the puck (radius `r`) by 0.15-0.3 m on each side: a straight push
/// stops against it. The sampler keeps puck and goal at least 0.35 m apart, so the wall
/// (0.04 m thick) clears the puck's start.
fn wall(s: &mut Sampler, start: Vec3, goal: Vec3, r: f32) -> StaticSpec {
    let (dx, dz) = (goal[0] - start[0], goal[2] - start[2]);
    let n = dx.hypot(dz).max(1e-6);
    let (ux, uz) = (dx / n, dz / n);
    let t = s.uniform(0.4, 0.6);
    let (half_len, height) = (r + s.uniform(0.15, 0.3), 0.1);
    let mut c = [start[0] + t * dx, TABLE_TOP + height / 2.0, start[2] + t * dz];
    // A little off-centre, so the shorter way round is not always the same side.
    let shift = s.uniform(-0.5, 0.5) * half_len;
    c[0] += -uz * shift;
    c[2] += ux * shift;
    // The wall's long side (local x) across the path: rotate local x onto (-uz, ux).
    let yaw = libm::atan2f(-ux, -uz);
    let mut w = StaticSpec::new("wall", StaticRole::Wall, [half_len, height / 2.0, 0.02], c);
    w.rotation = crate::math::quat_axis_angle([0.0, 1.0, 0.0], yaw);
    w.friction = 0.3;
    w.color = [0.5, 0.5, 0.55];
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task is the recorded episode's scene: under the scripted forces it replays the
    /// episode exactly, and without forces the puck stays where it started.
    #[test]
    fn a_task_replays_its_episode_under_the_recorded_forces() {
        let p = Params::default();
        for (seed, split) in [(1u64, Split::Train), (2, Split::Test), (3, Split::Val)] {
            let Ok(recorded) = sample(&p, seed, split).expect("samples") else { continue };
            let recorded = &recorded.episodes[0];
            let actions = scene(&p, seed, split).expect("scene").agent.expect("agent").actions;
            let task = PushTask::new(&p, seed, split).expect("task");
            assert!(task.scene.agent.as_ref().expect("agent").actions.is_empty());
            assert!(task.max_force > 0.0);
            let replay = task.run(&actions).expect("runs").expect("healthy");
            assert_eq!(replay.frames, recorded.frames, "seed {seed}");
            assert_eq!(replay.labels.goal_reached, recorded.labels.goal_reached);
            // Stepped frame by frame, with a fork taken midway, the simulation is the same.
            let mut sim = task.start().expect("starts").expect("healthy");
            let mut fork = None;
            for f in 0..task.frames() - 1 {
                if f == task.frames() / 2 {
                    fork = Some(sim.clone());
                    // The original goes on a detour the fork must not see.
                    let mut detour = sim.clone();
                    for _ in 0..5 {
                        detour.advance([3.0, 0.0, -3.0]).expect("healthy");
                    }
                }
                sim.advance(actions.get(f).copied().unwrap_or([0.0; 3])).expect("healthy");
            }
            assert!(sim.done());
            let mut fork = fork.expect("forked");
            while !fork.done() {
                let f = fork.frames().len() - 1;
                fork.advance(actions.get(f).copied().unwrap_or([0.0; 3])).expect("healthy");
            }
            assert_eq!(sim.finish().frames, recorded.frames, "stepped, seed {seed}");
            assert_eq!(fork.finish().frames, recorded.frames, "forked, seed {seed}");
            let idle = task.run(&[]).expect("runs").expect("healthy");
            let (a, b) = (idle.frames[0].objects[0].position, idle.frames[task.frames() - 1].objects[0].position);
            assert!(crate::math::dist(a, b) < 1e-3, "an unpushed puck stays: {a:?} -> {b:?}");
        }
    }

    /// A wall stands across the way when asked for: the full bound straight at the goal
    /// leaves the puck in front of it, short of the zone. The draws before the wall are
    /// those of a suite without walls.
    #[test]
    fn a_wall_across_the_way_stops_a_straight_push() {
        use crate::math::{dot, normalize, scale};
        let walled = Params { wall_chance: 1.0, ..Params::default() };
        for seed in 0..6u64 {
            let plain = scene(&Params::default(), seed, Split::Test).expect("scene");
            let task = PushTask::new(&walled, seed, Split::Test).expect("task");
            let b = &task.scene;
            assert_eq!(b.statics.len(), plain.statics.len() + 1);
            assert_eq!(&b.statics[..plain.statics.len()], &plain.statics[..]);
            assert_eq!((&b.objects, &b.zones, &b.camera), (&plain.objects, &plain.zones, &plain.camera));
            let wall = &b.statics[plain.statics.len()];
            assert_eq!(wall.role, StaticRole::Wall);
            let (start, goal) = (b.objects[0].position, b.zones[0].center);
            let way = normalize([goal[0] - start[0], 0.0, goal[2] - start[2]]);
            let push = scale(way, task.max_force);
            let ep = task.run(&vec![push; task.frames() - 1]).expect("runs").expect("healthy");
            let end = ep.frames[task.frames() - 1].objects[0].position;
            let (reached, at_wall) = (dot(sub(end, start), way), dot(sub(wall.position, start), way));
            assert!(reached < at_wall, "seed {seed}: {reached} m along the way, the wall at {at_wall} m");
            assert_eq!(ep.labels.goal_reached, Some(false));
        }
    }

    /// A puck the agent can hardly move is redrawn: every kept sample's bound exceeds
    /// 1.5x the puck's friction force, and some draws of the default ranges are refused.
    #[test]
    fn samples_whose_bound_cannot_move_the_puck_are_redrawn() {
        let p = Params::default();
        let (mut kept, mut refused) = (0, 0);
        for seed in 0..60u64 {
            let scene = scene(&p, seed, Split::Train).expect("scene");
            let puck = &scene.objects[0];
            let margin = scene.agent.as_ref().expect("agent").max_force
                / (puck.friction * puck.mass_kg() * crate::scene::GRAVITY);
            match sample(&p, seed, Split::Train).expect("samples") {
                Ok(_) => {
                    assert!(margin >= FORCE_MARGIN, "seed {seed}: kept at {margin:.2}x");
                    kept += 1;
                }
                Err(rj) => {
                    assert!(margin < FORCE_MARGIN, "seed {seed}: refused at {margin:.2}x: {rj:?}");
                    refused += 1;
                }
            }
        }
        assert!(kept > 30 && refused > 3, "kept {kept}, refused {refused}");
    }
}
