//! Heuristic adapters: cheap tricks a meaningful task must defeat (`physworld
//! validate-suite` runs them). VoE heuristics compute one statistic per frame (or pair of
//! consecutive frames) and report its maximum and mean over the episode; contact heuristics
//! answer from the observed frames alone; [`Structural`] tricks read only how items are
//! presented.

use serde_json::json;

use super::structural::Structural;
use super::{Adapter, Answer, Context, Surprise};
use crate::error::{BenchError, Result};
use crate::metrics::dist;
use crate::results::ModelRef;
use crate::tasks::{Item, NEAR_CONTACT_M, TaskKind, box_gap, half, pos, seen, vel};
use physworld_pipeline::EpisodeFrames;
use physworld_sim::GRAVITY;

/// The heuristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heuristic {
    /// VoE: the most objects seen in one frame.
    ObjectCount,
    /// VoE: the largest displacement of an object between consecutive frames it is seen in.
    LargestJump,
    /// VoE: the largest change of an object's size (1 for a shape change) between
    /// consecutive frames it is seen in.
    PropertyDiff,
    /// VoE: the largest gap between the finite-difference velocity and the reported one.
    VelocityVsFiniteDifferences,
    /// VoE: the largest deviation of an airborne object's vertical acceleration from −g.
    FreeFallResidual,
    /// Contact: "yes" when agent and patient already touch (bounding boxes within 1 cm) at
    /// the last observed frame.
    AlreadyTouching,
    /// Contact: "yes" when their bounding boxes came within 5 cm in the observed frames.
    ClosestApproach,
    /// A trick that reads only the presentation (episode index, movie position and length,
    /// cross-movie matches, a fixed choice position).
    Structural(Structural),
}

impl Heuristic {
    /// Every heuristic.
    pub const ALL: [Heuristic; 16] = [
        Heuristic::ObjectCount,
        Heuristic::LargestJump,
        Heuristic::PropertyDiff,
        Heuristic::VelocityVsFiniteDifferences,
        Heuristic::FreeFallResidual,
        Heuristic::AlreadyTouching,
        Heuristic::ClosestApproach,
        Heuristic::Structural(Structural::EpisodeIndex),
        Heuristic::Structural(Structural::MoviePosition),
        Heuristic::Structural(Structural::MovieLength),
        Heuristic::Structural(Structural::CrossMovieMatch),
        Heuristic::Structural(Structural::FirstChoice),
        Heuristic::Structural(Structural::LastChoice),
        Heuristic::Structural(Structural::LowestSlot),
        Heuristic::Structural(Structural::HighestSlot),
        Heuristic::Structural(Structural::ListedSlotChanges),
    ];

    /// Name in `heuristic:<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Heuristic::ObjectCount => "object-count",
            Heuristic::LargestJump => "largest-jump",
            Heuristic::PropertyDiff => "property-diff",
            Heuristic::VelocityVsFiniteDifferences => "velocity-vs-finite-differences",
            Heuristic::FreeFallResidual => "free-fall-residual",
            Heuristic::AlreadyTouching => "already-touching",
            Heuristic::ClosestApproach => "closest-approach",
            Heuristic::Structural(s) => s.name(),
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Result<Heuristic> {
        Heuristic::ALL.into_iter().find(|h| h.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Heuristic::ALL.iter().map(|h| h.name()).collect();
            BenchError::invalid(
                "heuristic",
                s,
                format!("{}{}", names.join(", "), physworld_sim::suggest::did_you_mean(s, names.iter().copied())),
            )
        })
    }

    /// The task kinds it answers.
    pub fn tasks(self) -> &'static [TaskKind] {
        match self {
            Heuristic::AlreadyTouching | Heuristic::ClosestApproach => &[TaskKind::Contact],
            Heuristic::Structural(s) => s.tasks(),
            _ => &[TaskKind::Voe],
        }
    }

    /// Per-frame statistic, aggregated as (max, mean) over frames.
    fn statistic(self, e: &EpisodeFrames, dt: f32) -> Surprise {
        let mut per_frame = Vec::with_capacity(e.frames);
        for f in 0..e.frames {
            let both = |o: usize| f > 0 && seen(e, f - 1, o) && seen(e, f, o);
            let v = match self {
                Heuristic::ObjectCount => (0..e.slots).filter(|&o| seen(e, f, o)).count() as f64,
                Heuristic::LargestJump => {
                    (0..e.slots).filter(|&o| both(o)).map(|o| dist(pos(e, f - 1, o), pos(e, f, o))).fold(0.0, f64::max)
                }
                Heuristic::PropertyDiff => (0..e.slots)
                    .filter(|&o| both(o))
                    .map(|o| {
                        let shape = e.shape[(f - 1) * e.slots + o] != e.shape[f * e.slots + o];
                        if shape { 1.0 } else { dist(half(e, f - 1, o), half(e, f, o)) }
                    })
                    .fold(0.0, f64::max),
                Heuristic::VelocityVsFiniteDifferences => (0..e.slots)
                    .filter(|&o| both(o))
                    .map(|o| {
                        let (p0, p1, v0, v1) = (pos(e, f - 1, o), pos(e, f, o), vel(e, f - 1, o), vel(e, f, o));
                        let fd = [(p1[0] - p0[0]) / dt, (p1[1] - p0[1]) / dt, (p1[2] - p0[2]) / dt];
                        let mid = [(v0[0] + v1[0]) / 2.0, (v0[1] + v1[1]) / 2.0, (v0[2] + v1[2]) / 2.0];
                        dist(fd, mid)
                    })
                    .fold(0.0, f64::max),
                Heuristic::FreeFallResidual => (0..e.slots)
                    .filter(|&o| both(o))
                    .filter(|&o| {
                        pos(e, f, o)[1] - half(e, f, o)[1] > 0.05 && pos(e, f - 1, o)[1] - half(e, f - 1, o)[1] > 0.05
                    })
                    .map(|o| (((vel(e, f, o)[1] - vel(e, f - 1, o)[1]) / dt + GRAVITY) as f64).abs())
                    .fold(0.0, f64::max),
                Heuristic::AlreadyTouching | Heuristic::ClosestApproach | Heuristic::Structural(_) => 0.0,
            };
            per_frame.push(v);
        }
        Surprise::from_frames(&per_frame)
    }
}

/// Distance between the agent's and the patient's axis-aligned bounding boxes at frame `f`
/// when both are seen (0 when they overlap; `None` for a zone patient).
fn gap(e: &EpisodeFrames, it: &Item, f: usize) -> Option<f64> {
    let [a, b] = it.objects[..] else { return None };
    let (a, b) = (a as usize, b as usize);
    (seen(e, f, a) && seen(e, f, b)).then(|| box_gap(e, f, a, b))
}

/// A heuristic as an adapter (`heuristic:<name>`).
pub struct HeuristicAdapter {
    id: String,
    h: Heuristic,
}

impl HeuristicAdapter {
    /// Wrap `h`.
    pub fn new(h: Heuristic) -> Self {
        HeuristicAdapter { id: format!("heuristic:{}", h.name()), h }
    }
}

impl Adapter for HeuristicAdapter {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "heuristic"
    }
    fn supports(&self, task: TaskKind) -> bool {
        self.h.tasks().contains(&task)
    }
    fn describe(&self) -> ModelRef {
        ModelRef { config: json!({ "heuristic": self.h.name() }), ..ModelRef::new(&self.id, "heuristic") }
    }
    fn answers_alone(&self) -> bool {
        // Structural tricks read the presentation: positions in the stream, earlier movies.
        !matches!(self.h, Heuristic::Structural(_))
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        if let Heuristic::Structural(s) = self.h {
            return s.answer(ctx, items, tick);
        }
        let dt = 1.0 / ctx.ds.info.fps.max(1) as f32;
        items
            .iter()
            .map(|it| {
                let obs = ctx.observe(it)?;
                let ans = match task {
                    TaskKind::Voe => {
                        Answer::Surprise(obs.episodes.iter().map(|e| self.h.statistic(&e.frames, dt)).collect())
                    }
                    _ => {
                        let e = &obs.first().frames;
                        let last = e.frames.saturating_sub(1);
                        let yes = match self.h {
                            Heuristic::AlreadyTouching => gap(e, it, last).is_some_and(|d| d <= 0.01),
                            _ => (0..e.frames).filter_map(|f| gap(e, it, f)).any(|d| d <= NEAR_CONTACT_M),
                        };
                        super::yes_no(it, yes)
                    }
                };
                tick();
                Ok(ans)
            })
            .collect()
    }
}
