//! Structural tricks: models that look only at how items are presented, never at the
//! physics. A meaningful task leaves every one of them at chance (`physworld
//! validate-suite` runs them beside the physical heuristics).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use physworld_pipeline::EpisodeFrames;

use super::{Answer, Context, Surprise};
use crate::error::Result;
use crate::tasks::{Item, TaskKind, pos, seen};

/// A trick that reads an item's presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structural {
    /// VoE: surprise = the episode's index within its item (the impossible movies of a
    /// quadruplet used to be listed last).
    EpisodeIndex,
    /// VoE: surprise = the movie's position in the stream of movies shown.
    MoviePosition,
    /// VoE: surprise = the movie's length in frames.
    MovieLength,
    /// VoE: surprise = how much of the movie exactly repeats movies shown before it: the
    /// longest shared prefix with one earlier movie plus the longest shared suffix with
    /// another, over its length (a spliced impossible twin shares both).
    CrossMovieMatch,
    /// Contact and outcome: always the first choice shown.
    FirstChoice,
    /// Contact and outcome: always the last choice shown.
    LastChoice,
    /// Reads slot labels as roles: first_floor picks the candidate with the lowest label,
    /// contact says "yes" when the agent's label is below the patient's, VoE's surprise is the
    /// share of frames in which slot 0 is not listed (the VoE target used to be slot 0).
    LowestSlot,
    /// As [`Structural::LowestSlot`] with the highest label (VoE: the last slot).
    HighestSlot,
    /// VoE: surprise = how often the set of listed slots changes between frames (a hidden
    /// object that stays listed and then drops out gives itself away).
    ListedSlotChanges,
}

impl Structural {
    /// Name in `heuristic:<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Structural::EpisodeIndex => "episode-index",
            Structural::MoviePosition => "movie-position",
            Structural::MovieLength => "movie-length",
            Structural::CrossMovieMatch => "cross-movie-match",
            Structural::FirstChoice => "first-choice",
            Structural::LastChoice => "last-choice",
            Structural::LowestSlot => "lowest-slot",
            Structural::HighestSlot => "highest-slot",
            Structural::ListedSlotChanges => "listed-slot-changes",
        }
    }

    /// Tasks it answers.
    pub fn tasks(self) -> &'static [TaskKind] {
        match self {
            Structural::FirstChoice | Structural::LastChoice => &[TaskKind::Contact, TaskKind::Outcome],
            Structural::LowestSlot | Structural::HighestSlot => &[TaskKind::Contact, TaskKind::Outcome, TaskKind::Voe],
            _ => &[TaskKind::Voe],
        }
    }

    /// Answer `items`, seen in this order, as the trick would: each from its own item and
    /// the items shown before it only.
    pub(super) fn answer(self, ctx: &Context<'_>, items: &[Item], tick: &(dyn Fn() + Sync)) -> Result<Vec<Answer>> {
        let mut earlier: Vec<Vec<u64>> = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        for (k, it) in items.iter().enumerate() {
            let lowest = self == Structural::LowestSlot;
            let ans = match self {
                Structural::FirstChoice => Answer::Choice(0),
                Structural::LastChoice => Answer::Choice(it.choices.len().saturating_sub(1)),
                Structural::LowestSlot | Structural::HighestSlot if it.task != TaskKind::Voe => {
                    match it.objects[..] {
                        // Contact with an object: the agent's label against the patient's.
                        [a, b] if it.task == TaskKind::Contact => super::yes_no(it, (a < b) == lowest),
                        [] | [_] if it.task == TaskKind::Contact => super::yes_no(it, lowest),
                        _ if it.question == "tower_falls" => super::yes_no(it, lowest),
                        ref objs => {
                            let pick = if lowest { objs.iter().min() } else { objs.iter().max() };
                            Answer::Choice(pick.and_then(|p| objs.iter().position(|o| o == p)).unwrap_or(0))
                        }
                    }
                }
                _ => {
                    let obs = ctx.observe(it)?;
                    let mut s = Vec::with_capacity(it.episodes.len());
                    for (j, ep) in obs.episodes.iter().enumerate() {
                        let e = &ep.frames;
                        let x = match self {
                            Structural::EpisodeIndex => j as f64,
                            Structural::MoviePosition => k as f64,
                            Structural::MovieLength => ep.episode_frames as f64,
                            Structural::LowestSlot | Structural::HighestSlot => label_missing(e, lowest),
                            Structural::ListedSlotChanges => listed_changes(e),
                            _ => {
                                let sig = signature(e);
                                let x = repeated(&sig, &earlier);
                                earlier.push(sig);
                                x
                            }
                        };
                        s.push(Surprise { max: x, mean: x });
                    }
                    Answer::Surprise(s)
                }
            };
            tick();
            out.push(ans);
        }
        Ok(out)
    }
}

/// Share of frames in which slot 0 (or the last slot) is not listed.
fn label_missing(e: &EpisodeFrames, lowest: bool) -> f64 {
    let o = if lowest { 0 } else { e.slots.saturating_sub(1) };
    (0..e.frames).filter(|&f| !seen(e, f, o)).count() as f64 / e.frames.max(1) as f64
}

/// Frames whose set of listed slots differs from the previous frame's.
fn listed_changes(e: &EpisodeFrames) -> f64 {
    (1..e.frames).filter(|&f| (0..e.slots).any(|o| seen(e, f - 1, o) != seen(e, f, o))).count() as f64
}

/// One hash per frame of what a model is shown of it: the visible objects' exact positions,
/// as a set (slot labels are relabelled per movie, so they would hide a repeat).
fn signature(e: &EpisodeFrames) -> Vec<u64> {
    (0..e.frames)
        .map(|f| {
            let mut h = DefaultHasher::new();
            let mut at: Vec<[u32; 3]> =
                (0..e.slots).filter(|&o| seen(e, f, o)).map(|o| pos(e, f, o).map(f32::to_bits)).collect();
            at.sort_unstable();
            at.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Longest prefix `sig` shares with one earlier movie plus the longest suffix it shares
/// with a different one, over its length.
fn repeated(sig: &[u64], earlier: &[Vec<u64>]) -> f64 {
    if sig.is_empty() {
        return 0.0;
    }
    let prefix = |o: &Vec<u64>| sig.iter().zip(o).take_while(|(a, b)| a == b).count();
    let suffix = |o: &Vec<u64>| sig.iter().rev().zip(o.iter().rev()).take_while(|(a, b)| a == b).count();
    // The two longest suffixes (length, movie), so that each prefix pairs with the best
    // suffix of another movie in one pass.
    let mut top: [(usize, usize); 2] = [(0, usize::MAX); 2];
    for (j, b) in earlier.iter().enumerate() {
        let s = suffix(b);
        if s > top[0].0 {
            top = [(s, j), top[0]];
        } else if s > top[1].0 {
            top[1] = (s, j);
        }
    }
    let mut best = 0;
    for (i, a) in earlier.iter().enumerate() {
        let p = prefix(a);
        if p > 0 {
            let s = if top[0].1 != i { top[0].0 } else { top[1].0 };
            best = best.max((p + s).min(sig.len()));
        }
    }
    best as f64 / sig.len() as f64
}
