//! Latent planning on `plan-launch`: a trained world model imagines what each candidate
//! placement does and the planner tries the placements whose imagined futures look most
//! like a success, best untried first (the ranking agents of PHYRE, with the model's
//! imagination as the ranker, as in Girdhar et al. 2020, "Forward prediction for physical
//! reasoning").
//!
//! Per item, before its first attempt:
//!
//! - **Candidates**: `samples` placements drawn uniformly over the scene and the radius
//!   range (as the `random` planner draws), keeping only those PHYRE's rule accepts
//!   ([`physworld_sim::families::validate_placement`] on the scene the [`LaunchView`]
//!   shows), so no attempt is spent on an overlap.
//! - **Observation**: the placed ball (slot 0, as in the family's episodes) and the target
//!   (slot 1) at rest where they start, with the static scene and the goal zone; the model
//!   was trained on full contexts, so that frame is repeated to fill its context (the
//!   ball is held until released).
//! - **Imagined future**: the predictor rolls each candidate's observation forward
//!   (`imagine=`: by default the rollout length the model was trained on,
//!   `data.future × (1 + loss.rollout_chunks)`, past which its predictions drift; `end`
//!   to the episode's last frame; or a number of frames), cut at the episode's end. The
//!   candidates go through the model in batches of [`BATCH`].
//! - **Ranking** (`rank=`):
//!   - `success` (default): a logistic classifier of success reads the imagined
//!     representations of the ball and the target at the end of every predicted chunk
//!     (every `data.future` frames, and the last imagined frame). It is fit before the
//!     items ([`LaunchPlanner::fit`]) on the readout split's recorded launches: each
//!     episode's first frame, imagined the same way, labelled with whether its target
//!     reached the goal. Only the imagination reaches it: no state, no placement.
//!   - `goal`: no fitting; the energy is the mean L1 distance, over the target's features,
//!     between its imagined representation and the goal's, the same frame with the target
//!     at rest in the goal zone (on the floor at the zone's centre), encoded by the target
//!     encoder at the same time (`energy=final`, at the last imagined frame;
//!     `energy=sum`, averaged over every imagined frame), as the `plan-push` planner's.
//!
//!   For a `state-mse` checkpoint the representation is the normalised state, so the same
//!   ranking plans in state space.
//!
//! Each attempt proposes the best candidate not yet proposed. A failed attempt removes
//! every untried candidate within [`FAILED_RADIUS`] of it (in `x`, `y` and radius, m),
//! since the model ranks such near copies together; when candidates run out, a further
//! `samples` are drawn and ranked. Randomness comes from a generator seeded by the run's
//! seed and the item, so planning is deterministic for a seed.

use std::sync::Arc;

use candle_core::{D, Device, IndexOp, Tensor};
use physworld_model::{Batch, Normalizer, TrainConfig, WorldModel};
use physworld_pipeline::{Dataset, EpisodeFrames};
use physworld_sim::{LaunchTask, ObjectSpec, Placement, Scene, Shape, SimConfig, StaticRole, StaticSpec};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{BenchError, Result};
use crate::latent_plan::{Energy, Imagine, PlanOptions, Rank, context_frames, model_err};
use crate::plan::{Feedback, LaunchPlanner, LaunchView, Proposal, X_MAX, Y_MAX, item_rng, uniform_radius};
use crate::probe::Logistic;

/// Candidates imagined in one forward pass.
pub const BATCH: usize = 200;
/// Draws per wanted candidate before giving up on a crowded scene.
const DRAWS_PER_CANDIDATE: usize = 20;
/// After a failed attempt, untried candidates closer than this to it (m, over `x`, `y`
/// and radius) are dropped.
pub const FAILED_RADIUS: f32 = 0.03;
/// Salt of the planner's generator.
const SALT: u64 = 0x4C_41_55_4E_43_48;
/// Cross-validation folds of the success classifier's penalty.
const FOLDS: usize = 5;

/// A candidate: the task it is placed in, and where.
type Pair<'a> = (&'a LaunchView, Placement);

/// The success classifier and what it was fit on.
#[derive(Debug, Clone)]
pub struct SuccessJudge {
    probe: Logistic,
    /// Feature width.
    dim: usize,
    /// Recorded launches it was fit on, and how many succeeded.
    pub episodes: usize,
    /// See [`SuccessJudge::episodes`].
    pub successes: usize,
    /// The L2 penalty cross-validation chose.
    pub l2: f64,
}

/// A trained checkpoint (JEPA or state-mse) ranking `plan-launch` placements by its own
/// predictions.
pub struct LatentLaunch {
    id: String,
    model: Arc<WorldModel>,
    cfg: TrainConfig,
    norm: Normalizer,
    opts: PlanOptions,
    rng: Option<ChaCha8Rng>,
    /// The current item's scene as far as the view shows it (for PHYRE's validity rule).
    scene: Option<Scene>,
    /// Untried candidates, best first.
    ranked: Vec<Placement>,
    /// `rank=success`: the classifier, once fit.
    judge: Option<SuccessJudge>,
}

impl LatentLaunch {
    /// The planner of `model` (trained with `cfg`, its inputs normalised by `norm`).
    pub fn new(id: &str, model: Arc<WorldModel>, cfg: TrainConfig, norm: Normalizer, opts: PlanOptions) -> Self {
        LatentLaunch { id: id.into(), model, cfg, norm, opts, rng: None, scene: None, ranked: Vec::new(), judge: None }
    }

    /// The success classifier, once [`LaunchPlanner::fit`] has fit it.
    pub fn judge(&self) -> Option<&SuccessJudge> {
        self.judge.as_ref()
    }

    /// Frames imagined after the placement in `view`'s task.
    fn steps(&self, view: &LaunchView) -> usize {
        let remaining = view.frames.saturating_sub(1).max(1);
        match self.opts.imagine {
            Imagine::Trained => self.cfg.loss.future_frames(self.cfg.data.future).max(1).min(remaining),
            Imagine::End => remaining,
            Imagine::Frames(n) => n.min(remaining),
        }
    }

    /// Up to `samples` valid placements, drawn uniformly.
    fn draw(&mut self, scene: &Scene, view: &LaunchView) -> Vec<Placement> {
        let Some(rng) = self.rng.as_mut() else { return Vec::new() };
        let want = self.opts.samples;
        let mut out = Vec::with_capacity(want);
        for _ in 0..want * DRAWS_PER_CANDIDATE {
            if out.len() >= want {
                break;
            }
            let radius = uniform_radius(rng, view.radius);
            let x = rng.random_range(-X_MAX..=X_MAX);
            let y = rng.random_range(radius..=Y_MAX);
            let pl = Placement { x, y, radius };
            if physworld_sim::families::validate_placement(scene, &pl).is_ok() {
                out.push(pl);
            }
        }
        out
    }

    /// Imagine `pairs` in batches of equal length and map each batch with `f` (its pairs,
    /// the imagined `[N, steps, S, D]`, the context length and `steps`) to rows, in order.
    fn over<F>(&self, pairs: &[Pair<'_>], mut f: F) -> Result<Vec<f32>>
    where
        F: FnMut(&[Pair<'_>], &Tensor, usize, usize) -> Result<Vec<f32>>,
    {
        let c = self.cfg.data.context.max(1);
        let mut out = Vec::new();
        for group in pairs.chunk_by(|a, b| self.steps(a.0) == self.steps(b.0)) {
            let steps = self.steps(group[0].0);
            for chunk in group.chunks(BATCH) {
                let ctx: Vec<EpisodeFrames> = chunk.iter().map(|(v, p)| context_frames(&placed(v, p), c)).collect();
                let batch = Batch::new(&ctx, &self.norm, &Device::Cpu).map_err(BenchError::from)?;
                let future = self
                    .model
                    .rollout(&batch, c, steps, self.cfg.data.context, self.cfg.data.future)
                    .map_err(BenchError::from)?; // [N, steps, S, D]
                out.extend(f(chunk, &future, c, steps)?);
            }
        }
        Ok(out)
    }

    /// The goal energy of each pair (`rank=goal`).
    fn goal_energies(&self, pairs: &[Pair<'_>]) -> Result<Vec<f32>> {
        self.over(pairs, |chunk, future, c, steps| {
            // The goal at the imagined frames' times: all of them, or the last.
            let (t0, k) = match self.opts.energy {
                Energy::Final => (c + steps - 1, 1),
                Energy::Sum => (c, steps),
            };
            let goals: Vec<EpisodeFrames> = chunk.iter().map(|(v, p)| goal_frames(v, p, k)).collect();
            let gb = Batch::new(&goals, &self.norm, &Device::Cpu).map_err(BenchError::from)?;
            let goal = self.model.targets(&gb, t0).map_err(BenchError::from)?; // [N, k, S, D]
            future
                .narrow(1, steps - k, k)
                .and_then(|p| p.i((.., .., 1, ..)))
                .and_then(|p| p.sub(&goal.i((.., .., 1, ..))?))
                .and_then(|d| d.abs())
                .and_then(|d| d.mean(D::Minus1))
                .and_then(|d| d.mean(D::Minus1))
                .and_then(|d| d.to_vec1::<f32>())
                .map_err(model_err)
        })
    }

    /// The success classifier's features of each pair, flattened, and their width: the
    /// imagined ball and target at the end of every predicted chunk and at the last frame.
    fn features(&self, pairs: &[Pair<'_>]) -> Result<(Vec<f32>, usize)> {
        let chunk = self.cfg.data.future.max(1);
        let mut dim = 0;
        let x = self.over(pairs, |_, future, _, steps| {
            let mut at: Vec<u32> = (1..=steps / chunk).map(|k| (k * chunk - 1) as u32).collect();
            if at.last() != Some(&(steps as u32 - 1)) {
                at.push(steps as u32 - 1);
            }
            let idx = Tensor::from_vec(at.clone(), at.len(), &Device::Cpu).map_err(model_err)?;
            let rows = future
                .index_select(&idx, 1)
                .and_then(|t| t.narrow(2, 0, 2))
                .and_then(|t| t.flatten_from(1))
                .map_err(model_err)?;
            let d = rows.dim(1).map_err(model_err)?;
            if dim != 0 && dim != d {
                return Err(BenchError::invalid(
                    "launch episodes",
                    format!("{d} features against {dim}"),
                    "one episode length per dataset",
                ));
            }
            dim = d;
            rows.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(model_err)
        })?;
        Ok((x, dim))
    }

    /// Scores of `pairs`, lower is better.
    fn scores(&self, pairs: &[Pair<'_>]) -> Result<Vec<f32>> {
        match (self.opts.rank, &self.judge) {
            (Rank::Goal, _) => self.goal_energies(pairs),
            (Rank::Success, Some(j)) => {
                let (x, dim) = self.features(pairs)?;
                if !pairs.is_empty() && dim != j.dim {
                    return Err(BenchError::invalid(
                        "launch episodes",
                        format!("{dim} imagined features against the {} the classifier was fit on", j.dim),
                        "the readout split's episode length (imagine=FRAMES to fix it)",
                    ));
                }
                Ok(j.probe.logits(&x).into_iter().map(|z| -(z as f32)).collect())
            }
            (Rank::Success, None) => Err(BenchError::invalid(
                "model",
                &self.id,
                "a planner whose success classifier was fit on a readout split first (rank=goal fits nothing)",
            )),
        }
    }

    /// Draw and rank a fresh set of candidates.
    fn rank(&mut self, view: &LaunchView) -> Result<()> {
        let scene = match self.scene.take() {
            Some(s) => s,
            None => view_scene(view),
        };
        let cands = self.draw(&scene, view);
        self.scene = Some(scene);
        let pairs: Vec<Pair<'_>> = cands.iter().map(|&p| (view, p)).collect();
        let e = self.scores(&pairs)?;
        let mut order: Vec<usize> = (0..cands.len()).filter(|&i| e[i].is_finite()).collect();
        order.sort_by(|&a, &b| e[a].total_cmp(&e[b]).then(a.cmp(&b)));
        self.ranked = order.into_iter().map(|i| cands[i]).collect();
        Ok(())
    }
}

/// Distance between placements in `x`, `y` and radius, m.
fn distance(a: &Placement, b: &Placement) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2) + (a.radius - b.radius).powi(2)).sqrt()
}

/// The scene a [`LaunchView`] shows: its statics (not the zone) and the target, for
/// PHYRE's validity rule.
pub fn view_scene(view: &LaunchView) -> Scene {
    let mut scene = Scene::new(SimConfig::default());
    for (k, b) in view.statics.iter().enumerate() {
        let role = b.role().unwrap_or(StaticRole::Occluder);
        let mut s = StaticSpec::new(format!("static{k}"), role, b.half_extents, b.position);
        s.rotation = b.rotation;
        scene.statics.push(s);
    }
    let target = ObjectSpec::new(
        "target",
        Shape::Sphere { radius: view.target_radius },
        physworld_sim::Mass::Kg(1.0),
        view.target,
    );
    scene.objects.push(target);
    scene
}

/// One frame of the placed scene at rest: the ball (slot 0) at `p`, the target (slot 1)
/// where it starts, the statics and the goal zone.
pub fn placed(view: &LaunchView, p: &Placement) -> EpisodeFrames {
    let mut out = EpisodeFrames {
        scene: view.statics.iter().copied().chain([view.goal]).collect(),
        ..crate::observe::blank(1, 2)
    };
    for (k, (radius, position)) in
        [(p.radius, [p.x, p.y, 0.0]), (view.target_radius, view.target)].into_iter().enumerate()
    {
        let shape = Shape::Sphere { radius };
        out.present[k] = true;
        out.visible[k] = true;
        out.shape[k] = shape.kind() as i8;
        out.position[k * 3..k * 3 + 3].copy_from_slice(&position);
        out.rotation[k * 4..k * 4 + 4].copy_from_slice(&[0.0, 0.0, 0.0, 1.0]);
        out.size[k * 3..k * 3 + 3].copy_from_slice(&shape.half_extents());
    }
    out
}

/// The goal of placement `p`, `frames` times: its placed frame with the target at rest on
/// the floor at the goal zone's centre.
pub fn goal_frames(view: &LaunchView, p: &Placement, frames: usize) -> EpisodeFrames {
    let mut g = placed(view, p);
    let floor = view.goal.position[1] - view.goal.half_extents[1];
    g.position[3..6].copy_from_slice(&[view.goal.position[0], floor + view.target_radius, view.goal.position[2]]);
    let mut out = g.clone();
    for _ in 1..frames.max(1) {
        out.append(&g);
    }
    out
}

impl LaunchPlanner for LatentLaunch {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, index: usize, seed: u64, _attempts: usize, _task: Option<&LaunchTask>) {
        self.rng = Some(item_rng(seed, index, SALT));
        self.scene = None;
        self.ranked.clear();
    }
    fn fit(&mut self, ds: &Dataset, split: &str, scored: &str) -> Result<()> {
        if self.opts.rank != Rank::Success {
            return Ok(());
        }
        let splits = || ds.info.splits.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        if split == scored || !ds.info.splits.contains_key(split) {
            return Err(BenchError::invalid(
                "--readout-split",
                split,
                format!(
                    "a split of the dataset other than the scored `{scored}` for the success classifier to learn from: {}",
                    splits()
                ),
            ));
        }
        let items = crate::plan::launch_items(ds, split, 1)?;
        let frames = crate::tasks::Frames::load(ds, split)?;
        let (mut views, mut placements, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for it in &items.items {
            let Some(reached) = ds.meta(it.episode_index)?.goal_reached else { continue };
            let e = frames.get(it.episode_index)?;
            if e.frames == 0 || !e.present.first().copied().unwrap_or(false) {
                continue;
            }
            let (p, h) = (crate::tasks::pos(e, 0, 0), crate::tasks::half(e, 0, 0));
            views.push(LaunchView::of(&it.task)?);
            placements.push(Placement { x: p[0], y: p[1], radius: h[0] });
            y.push(reached);
        }
        let successes = y.iter().filter(|&&v| v).count();
        if successes == 0 || successes == y.len() {
            return Err(BenchError::invalid(
                "--readout-split",
                split,
                format!(
                    "a split with recorded `launch` episodes of both outcomes to fit the success classifier on ({} found, {successes} reaching the goal; splits: {}); rank=goal fits nothing",
                    y.len(),
                    splits()
                ),
            ));
        }
        let pairs: Vec<Pair<'_>> = views.iter().zip(&placements).map(|(v, &p)| (v, p)).collect();
        let (x, dim) = self.features(&pairs)?;
        let groups: Vec<usize> = (0..y.len()).collect();
        let (probe, l2) = Logistic::fit_cv(&x, &y, &groups, dim, &Logistic::L2S, FOLDS);
        self.judge = Some(SuccessJudge { probe, dim, episodes: y.len(), successes, l2 });
        Ok(())
    }
    fn propose(&mut self, view: &LaunchView, history: &[Feedback], _: &[(Placement, String)]) -> Result<Proposal> {
        if let Some(last) = history.last().filter(|f| !f.success) {
            self.ranked.retain(|p| distance(p, &last.placement) >= FAILED_RADIUS);
        }
        if self.ranked.is_empty() {
            self.rank(view)?;
        }
        if self.ranked.is_empty() {
            return Ok(Proposal::Unusable(format!(
                "no valid placement with a finite score in {} uniform draws",
                self.opts.samples * DRAWS_PER_CANDIDATE
            )));
        }
        Ok(Proposal::Place(self.ranked.remove(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use physworld_pipeline::SceneBox;

    fn view() -> LaunchView {
        LaunchView {
            statics: vec![SceneBox {
                kind: 0,
                position: [0.0, -0.1, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
                half_extents: [2.0, 0.1, 0.5],
            }],
            goal: SceneBox {
                kind: 6,
                position: [0.8, 0.05, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
                half_extents: [0.15, 0.05, 0.3],
            },
            target: [0.1, 0.6, 0.0],
            target_radius: 0.05,
            radius: [0.05, 0.15],
            duration_s: 3.0,
            frames: 91,
        }
    }

    #[test]
    fn the_placed_frame_holds_the_ball_then_the_target_at_rest_with_the_scene() {
        let v = view();
        let p = Placement { x: -0.3, y: 1.0, radius: 0.1 };
        let f = placed(&v, &p);
        assert_eq!((f.frames, f.slots), (1, 2));
        assert_eq!(&f.position[..], &[-0.3, 1.0, 0.0, 0.1, 0.6, 0.0]);
        assert_eq!(&f.size[..], &[0.1, 0.1, 0.1, 0.05, 0.05, 0.05]);
        assert!(f.present.iter().all(|&x| x) && f.visible.iter().all(|&x| x));
        assert!(f.linvel.iter().chain(&f.angvel).all(|&x| x == 0.0));
        assert_eq!(f.scene.len(), 2);
        assert_eq!(f.scene[1].kind, 6);
        // The goal moves the target only: onto the floor at the zone's centre.
        let g = goal_frames(&v, &p, 3);
        assert_eq!(g.frames, 3);
        for t in 0..3 {
            assert_eq!(&g.position[t * 6..t * 6 + 3], &[-0.3, 1.0, 0.0]);
            assert_eq!(&g.position[t * 6 + 3..t * 6 + 6], &[0.8, 0.05, 0.0]);
        }
    }

    #[test]
    fn the_view_s_scene_refuses_what_the_task_refuses() {
        let v = view();
        let s = view_scene(&v);
        let ok =
            |x: f32, y: f32, r: f32| physworld_sim::families::validate_placement(&s, &Placement { x, y, radius: r });
        assert!(ok(-0.5, 1.0, 0.1).is_ok());
        assert!(ok(0.12, 0.62, 0.05).is_err(), "overlaps the target");
        assert!(ok(0.5, 0.05, 0.1).is_err(), "overlaps the floor");
        assert!(ok(1.6, 1.0, 0.1).is_err(), "outside the scene");
    }

    #[test]
    fn near_copies_of_a_failed_placement_are_dropped() {
        let a = Placement { x: 0.0, y: 1.0, radius: 0.1 };
        assert!(distance(&a, &Placement { x: 0.01, y: 1.01, radius: 0.1 }) < FAILED_RADIUS);
        assert!(distance(&a, &Placement { x: 0.05, y: 1.0, radius: 0.1 }) >= FAILED_RADIUS);
    }
}
