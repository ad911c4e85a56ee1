//! `judge=trajectory`: contact and outcome read from the model's own imagined future, after
//! Physion's readout of a simulator's predicted trajectory to the event horizon.
//!
//! The predictor rolls each observation out to its episode's end in representation space.
//! A [`Decoder`] turns that rollout into positions. It is a ridge map from what the
//! predictor is trained to predict (the target encoder's representation of a real frame;
//! the normalised state for `state-mse`) to the objects' positions, fit on the `readout`
//! split's real future frames, one map per frame of a prediction pass (the target
//! encoder knows a frame's place in its window). It never sees a rollout in fitting, nor
//! the present state, nor the horizon: the motion in the decoded trajectory is the
//! model's own, read the way the model's targets are read. The questions are then judged on the imagined trajectory
//! with the labels' own geometry: the gap between the agent's and the patient's boxes
//! (contact), how far the tower's blocks end from where they started (tower falls), when
//! each candidate's box reaches the floor (first to the floor). Those few numbers, not the
//! features, go to the logistic probes, which only calibrate the thresholds on the
//! `readout` split. A geometric judgement does not depend on which configuration produced
//! the trajectory, which is what held-out regions test.

use physworld_model::RidgeProbe;
use physworld_pipeline::EpisodeFrames;

use super::probes::Rolled;
use crate::error::Result;
use crate::observe::EpisodeObs;
use crate::tasks::{Item, half, pos, seen};

/// The map that decodes rolled-out frame `k` (1-based) of a rollout in passes of `chunk`
/// frames: the one of its place in the pass, the first pass apart (its context can be
/// shorter than the model's, so its frames sit at other times of the window). A map fit on rollouts per horizon would be a
/// linear forecaster of its own, fit on `readout`: it answered from the present state
/// without the model's dynamics (an untrained twin scored as well as the trained model).
fn map_of(k: usize, chunk: usize) -> usize {
    let chunk = chunk.max(1);
    if k <= chunk { k - 1 } else { chunk + (k - 1) % chunk }
}

/// Folds of the decoder's cross-validated ridge penalty.
const DECODER_FOLDS: usize = 5;
/// Judging windows: the first this many imagined frames (and, after them, all of them).
pub const WINDOWS: [usize; 5] = [4, 8, 16, 32, 64];
/// A box whose bottom is this close (m) to the floor has reached it.
pub const FLOOR_M: f32 = 0.02;
/// Gaps and distances are clipped here (m), so that a wild rollout cannot dominate a probe's
/// standardisation.
pub const CLIP_M: f32 = 5.0;

/// Decodes an object's position from a predicted (or target) representation (see the
/// module docs): one ridge map per frame of a prediction pass.
#[derive(Debug, Clone)]
pub struct Decoder {
    probes: Vec<Option<RidgeProbe>>,
    width: usize,
    chunk: usize,
}

/// Training rows of a [`Decoder`], per map: target representations and positions.
#[derive(Debug, Clone, Default)]
pub struct DecoderRows {
    x: Vec<Vec<f32>>,
    y: Vec<Vec<f32>>,
}

impl DecoderRows {
    /// Rows of no item, for a rollout in passes of `chunk` frames: a map per frame of the
    /// first pass, and one per frame of the later passes.
    pub fn new(chunk: usize) -> DecoderRows {
        let n = 2 * chunk.max(1);
        DecoderRows { x: vec![Vec::new(); n], y: vec![Vec::new(); n] }
    }

    /// Append `other`'s rows.
    pub fn extend(&mut self, other: DecoderRows) {
        for (b, (x, y)) in other.x.into_iter().zip(other.y).enumerate() {
            self.x[b].extend(x);
            self.y[b].extend(y);
        }
    }
}

/// One decoder row: object `o`'s rolled-out features `k` frames ahead.
fn row(r: &Rolled, o: usize, k: usize, d_fut: usize) -> &[f32] {
    let s = r.slots;
    &r.roll[((k - 1) * s + o) * d_fut..((k - 1) * s + o + 1) * d_fut]
}

impl Decoder {
    /// Append training rows: `windows` of real frames (one prediction pass long each) and
    /// `targets`, their target representations (`[W × T × S × width]`, from
    /// [`super::Featurizer::targets`], placed where the first pass puts its frames when
    /// `first`, else where the later passes do); a row per object seen in a frame (the
    /// model has no target for a hidden one), for the map of the frame's place in the pass.
    pub fn rows(windows: &[EpisodeFrames], targets: &[f32], width: usize, first: bool, rows: &mut DecoderRows) {
        let chunk = rows.x.len() / 2;
        for (w, e) in windows.iter().enumerate() {
            let (t, s) = (e.frames, e.slots);
            for j in 0..t.min(chunk) {
                let m = if first { j } else { chunk + j };
                for o in (0..s).filter(|&o| seen(e, j, o)) {
                    let at = ((w * t + j) * s + o) * width;
                    let Some(x) = targets.get(at..at + width) else { continue };
                    rows.x[m].extend_from_slice(x);
                    rows.y[m].extend(pos(e, j, o));
                }
            }
        }
    }

    /// Fit on the rows of [`Decoder::rows`], each map's penalty cross-validated; a map
    /// without rows (no readout episode ran that far past its observation) decodes
    /// nothing, and without any row it is an error.
    pub fn fit(rows: &DecoderRows, width: usize) -> Result<Decoder> {
        if rows.y.iter().all(Vec::is_empty) {
            return Err(crate::error::BenchError::invalid(
                "judge",
                "trajectory",
                "readout episodes that run at least one prediction pass past their observation",
            ));
        }
        let probes = rows
            .x
            .iter()
            .zip(&rows.y)
            .map(|(x, y)| {
                if x.is_empty() {
                    return Ok(None);
                }
                Ok(Some(RidgeProbe::fit_cv(x, y, width, 3, &RidgeProbe::LAMBDAS, DECODER_FOLDS)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder { probes, width, chunk: rows.x.len() / 2 })
    }

    /// The imagined trajectory of an observation: each object seen at its last observed
    /// frame, at that frame and at every rolled-out frame after it.
    pub fn imagine(&self, r: &Rolled, o: &EpisodeObs) -> Imagined {
        let e = &o.frames;
        let last = e.frames.saturating_sub(1);
        let known: Vec<usize> = (0..r.slots).filter(|&s| e.frames > 0 && seen(e, last, s)).collect();
        let mut at = vec![None; (r.ahead + 1) * r.slots];
        for &s in &known {
            at[s] = Some(pos(e, last, s));
        }
        for k in 1..=r.ahead {
            let x: Vec<f32> = known.iter().flat_map(|&s| row(r, s, k, self.width)).copied().collect();
            let Some(Some(probe)) = self.probes.get(map_of(k, self.chunk)) else { break };
            if x.is_empty() {
                break;
            }
            let d = probe.predict(&x);
            for (j, &s) in known.iter().enumerate() {
                at[k * r.slots + s] = Some([d[j * 3], d[j * 3 + 1], d[j * 3 + 2]]);
            }
        }
        Imagined {
            ahead: r.ahead,
            slots: r.slots,
            at,
            half: (0..r.slots).map(|s| if known.contains(&s) { half(e, last, s) } else { [0.0; 3] }).collect(),
            start: (0..r.slots).map(|s| (e.frames > 0 && seen(e, 0, s)).then(|| pos(e, 0, s))).collect(),
        }
    }
}

/// An imagined trajectory: decoded positions from the last observed frame (0) to the
/// episode's end (`ahead`), per slot; `None` for objects not seen at the last observed frame.
#[derive(Debug, Clone)]
pub struct Imagined {
    /// Frames past the last observed one.
    pub ahead: usize,
    /// Slots.
    pub slots: usize,
    /// `[(ahead + 1) × slots]` positions.
    pub at: Vec<Option<[f32; 3]>>,
    /// Half extents per slot as last observed.
    pub half: Vec<[f32; 3]>,
    /// Positions per slot at the first observed frame, where seen then.
    pub start: Vec<Option<[f32; 3]>>,
}

/// Distance between two axis-aligned boxes (0 when they overlap), m.
fn gap(pa: [f32; 3], ha: [f32; 3], pb: [f32; 3], hb: [f32; 3]) -> f32 {
    (0..3).map(|c| ((pa[c] - pb[c]).abs() - ha[c] - hb[c]).max(0.0).powi(2)).sum::<f32>().sqrt()
}

impl Imagined {
    fn get(&self, k: usize, s: u16) -> Option<[f32; 3]> {
        self.at.get(k * self.slots + s as usize).copied().flatten()
    }

    fn half_of(&self, s: u16) -> [f32; 3] {
        self.half.get(s as usize).copied().unwrap_or([0.0; 3])
    }

    /// The last frame of each judging window: each of [`WINDOWS`] (at most the rollout),
    /// then the episode's end.
    fn windows(&self) -> impl Iterator<Item = usize> + '_ {
        WINDOWS.iter().map(|&w| w.min(self.ahead)).chain([self.ahead])
    }

    /// The row a contact or tower question is judged on, one value per judging window
    /// (the first [`WINDOWS`] frames of the imagined future, then all of it) and a flag:
    /// contact `[smallest imagined gap between the agent's box and the patient's (object or
    /// zone) within each window, unknown]`, `unknown` being 1 when an object of the question
    /// was not seen at the last observed frame (its gaps then read [`CLIP_M`]); tower
    /// `[largest displacement of a block from its first observed position at each window's
    /// end, over its half height; the largest at the end (m)]`. Early windows are where
    /// the rollout is most accurate, late ones where the event is: the probe weighs them.
    pub fn scene_row(&self, it: &Item, o: &EpisodeObs) -> Vec<f32> {
        match it.question.as_str() {
            "contact" => {
                let zone =
                    it.zone.and_then(|z| o.zones.iter().find(|x| x.index == z)).map(|z| (z.center, z.half_extents));
                let patient = it.objects.get(1).copied();
                let a = it.objects.first().copied();
                let gaps: Option<Vec<f32>> = a.and_then(|a| {
                    (1..=self.ahead)
                        .map(|k| {
                            let pa = self.get(k, a)?;
                            let (pb, hb) = match patient {
                                Some(b) => (self.get(k, b)?, self.half_of(b)),
                                None => zone?,
                            };
                            Some(gap(pa, self.half_of(a), pb, hb))
                        })
                        .collect()
                });
                match gaps {
                    Some(g) if !g.is_empty() => {
                        self.windows().map(|w| g[..w].iter().copied().fold(CLIP_M, f32::min)).chain([0.0]).collect()
                    }
                    _ => self.windows().map(|_| CLIP_M).chain([1.0]).collect(),
                }
            }
            _ => {
                let moved = |k: usize| -> (f32, f32) {
                    let (mut rel, mut abs) = (0f32, 0f32);
                    for s in 0..self.slots {
                        let (Some(p0), Some(p)) = (self.start[s], self.get(k, s as u16)) else { continue };
                        let d = (0..3).map(|c| (p[c] - p0[c]).powi(2)).sum::<f32>().sqrt();
                        rel = rel.max(d / self.half[s][1].max(0.01));
                        abs = abs.max(d);
                    }
                    (rel.min(CLIP_M / 0.01), abs.min(CLIP_M))
                };
                self.windows().map(|w| moved(w).0).chain([moved(self.ahead).1]).collect()
            }
        }
    }

    /// The row a first-to-the-floor candidate is judged on: `[its imagined box's clearance
    /// above the floor at each judging window's end (m), the imagined frame it first comes
    /// within FLOOR_M of the floor as a fraction of the rollout (2 when never), unknown]`.
    pub fn candidate_row(&self, s: u16) -> Vec<f32> {
        if self.get(0, s).is_none() {
            return self.windows().map(|_| CLIP_M).chain([2.0, 1.0]).collect();
        }
        let h = self.half_of(s)[1];
        let clear = |k: usize| self.get(k, s).map_or(CLIP_M, |p| (p[1] - h).clamp(-CLIP_M, CLIP_M));
        let first =
            (1..=self.ahead).find(|&k| clear(k) <= FLOOR_M).map_or(2.0, |k| k as f32 / self.ahead.max(1) as f32);
        self.windows().map(clear).chain([first, 0.0]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::blank;
    use crate::tasks::{Target, TaskKind};

    /// An episode of `n` frames: object 0 moves along x at `v` m/s from x = 0, object 1 rests
    /// at x = 2; both are boxes of half extent 0.1 resting on the floor (y = 0.1).
    fn scene(n: usize, v: f32) -> EpisodeFrames {
        let mut e = blank(n, 2);
        for f in 0..n {
            for (o, x) in [(0, v * f as f32 / 30.0), (1, 2.0)] {
                let i = f * 2 + o;
                e.present[i] = true;
                e.visible[i] = true;
                e.shape[i] = 0;
                e.position[i * 3..i * 3 + 3].copy_from_slice(&[x, 0.1, 0.0]);
                e.size[i * 3..i * 3 + 3].copy_from_slice(&[0.1; 3]);
            }
        }
        e
    }

    fn observed(e: &EpisodeFrames, observe: usize) -> EpisodeObs {
        EpisodeObs {
            camera: Default::default(),
            statics: Vec::new(),
            zones: Vec::new(),
            joints: Vec::new(),
            frames: crate::observe::mask(e, observe, &[]),
            episode_frames: e.frames,
            properties: Vec::new(),
            plan: None,
        }
    }

    /// What a toy model's targets and predictions are: an object's position and a constant.
    fn rep(p: [f32; 3]) -> [f32; 4] {
        [p[0], p[1], p[2], 1.0]
    }

    /// Decoder rows from `e`'s real frames after the first 10, in passes of 4 frames.
    fn learn(e: &EpisodeFrames, rows: &mut DecoderRows) {
        let windows: Vec<EpisodeFrames> = (10..e.frames - 3).step_by(4).map(|s| e.slice(s, 4)).collect();
        let mut targets = Vec::new();
        for w in &windows {
            for f in 0..w.frames {
                for o in 0..w.slots {
                    targets.extend(rep(pos(w, f, o)));
                }
            }
        }
        let first = windows[0].frames * windows[0].slots * 4;
        Decoder::rows(&windows[..1], &targets[..first], 4, true, rows);
        Decoder::rows(&windows[1..], &targets[first..], 4, false, rows);
    }

    /// A perfect model's rollout after 10 observed frames (`still`: one that predicts no
    /// motion).
    fn rolled(e: &EpisodeFrames, still: bool) -> Rolled {
        let (last, ahead) = (9, e.frames - 10);
        let roll = (1..=ahead)
            .flat_map(|k| (0..2).flat_map(move |o| rep(pos(e, if still { last } else { last + k }, o))))
            .collect();
        Rolled { roll, ahead, slots: 2 }
    }

    fn contact_item() -> Item {
        Item {
            id: "contact/test/x/0/0".into(),
            task: TaskKind::Contact,
            family: "x".into(),
            split: "test".into(),
            sample_index: 0,
            episodes: vec![0],
            observe: 10,
            horizons: Vec::new(),
            question: "contact".into(),
            choices: vec!["yes".into(), "no".into()],
            objects: vec![0, 1],
            zone: None,
            violation: None,
            slots: Vec::new(),
            target: Target::Choice(0),
            hash: String::new(),
        }
    }

    /// The decoder, fit on real frames' targets, reads a rollout's positions; the imagined
    /// gap separates an object that reaches the other from one that stops short or leaves,
    /// and a model that predicts no motion imagines no contact.
    #[test]
    fn decoded_rollouts_are_judged_by_the_boxes_gap() {
        let it = contact_item();
        let mut rows = DecoderRows::new(4);
        for v in [-1.0, 0.0, 0.5, 1.0, 2.0] {
            learn(&scene(90, v), &mut rows);
        }
        let dec = Decoder::fit(&rows, 4).expect("fits");
        let row_of = |v: f32, still: bool| {
            let e = scene(90, v);
            let o = observed(&e, 10);
            let im = dec.imagine(&rolled(&e, still), &o);
            // The decoded end position is where the rollout puts the object.
            let end = im.get(im.ahead, 0).expect("decoded");
            let want = pos(&e, if still { 9 } else { 89 }, 0)[0];
            assert!((end[0] - want).abs() < 0.05, "v {v}: {end:?}");
            im.scene_row(&it, &o)
        };
        // From x = 0.9 (frame 9) at 3 m/s it ends at 8.9: it passes the box at x = 2 after
        // about 8 frames (gap 0.9 closing at 0.1 m a frame).
        let fast = row_of(3.0, false);
        assert_eq!(fast.len(), WINDOWS.len() + 2);
        assert!((fast[0] - 0.5).abs() < 0.05 && fast[1] < 0.11, "{fast:?}");
        assert!(fast[2..].iter().all(|&g| g == 0.0), "{fast:?}");
        // Imagined standing still, it keeps its 0.9 m gap.
        let still = row_of(3.0, true);
        assert!(still[..=WINDOWS.len()].iter().all(|&g| (g - 0.9).abs() < 0.05), "{still:?}");
        // At 0.5 m/s it ends at 1.48: 0.32 short of the boxes touching.
        let short = row_of(0.5, false);
        assert!((short[WINDOWS.len()] - 0.32).abs() < 0.05, "{short:?}");
        assert!(short.windows(2).take(WINDOWS.len()).all(|w| w[1] <= w[0]), "{short:?}");
        // Moving away, the smallest gap is the first imagined frame's.
        assert!(row_of(-1.0, false)[WINDOWS.len()] > 1.5);
        // An object not seen at the last observed frame is "unknown".
        let e = scene(90, 1.0);
        let mut o = observed(&e, 10);
        o.frames.present[9 * 2 + 1] = false;
        o.frames.visible[9 * 2 + 1] = false;
        let unknown = dec.imagine(&rolled(&e, false), &o).scene_row(&it, &o);
        assert_eq!(unknown, [vec![CLIP_M; WINDOWS.len() + 1], vec![1.0]].concat());
    }

    /// A falling candidate reaches the floor at the imagined frame its box does; one that
    /// stays up never does.
    #[test]
    fn candidates_reach_the_floor_when_their_imagined_box_does() {
        let mut e = scene(40, 0.0);
        for f in 0..40 {
            // Object 1 falls from y = 1.1 at 1 m per 20 frames, down at frame 20.
            let i = f * 2 + 1;
            e.position[i * 3 + 1] = (1.1 - f as f32 / 20.0).max(0.1);
        }
        let mut rows = DecoderRows::new(4);
        learn(&e, &mut rows);
        let dec = Decoder::fit(&rows, 4).expect("fits");
        let o = observed(&e, 10);
        let im = dec.imagine(&rolled(&e, false), &o);
        let falls = im.candidate_row(1);
        let n = WINDOWS.len() + 1;
        // Its bottom is within 2 cm of the floor from frame 20 (clearance 0.0), 11 frames
        // after the last observed one, of 30 rolled out.
        assert!((falls[n] - 11.0 / 30.0).abs() < 1e-6, "{falls:?}");
        // Clearance 1 - (9 + k) / 20 after k frames: 0.35 after 4, 0.15 after 8, then 0.
        for (got, want) in falls[..n].iter().zip([0.35, 0.15, 0.0, 0.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 0.02, "{falls:?}");
        }
        // Object 0 rests on the floor: down at the first imagined frame.
        assert!((im.candidate_row(0)[n] - 1.0 / 30.0).abs() < 1e-6);
    }
}
