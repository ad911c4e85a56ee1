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
        }
    }

    /// Tasks it answers.
    pub fn tasks(self) -> &'static [TaskKind] {
        match self {
            Structural::FirstChoice | Structural::LastChoice => &[TaskKind::Contact, TaskKind::Outcome],
            _ => &[TaskKind::Voe],
        }
    }

    /// Answer `items`, seen in this order, as the trick would: each from its own item and
    /// the items shown before it only.
    pub(super) fn answer(self, ctx: &Context<'_>, items: &[Item], tick: &(dyn Fn() + Sync)) -> Result<Vec<Answer>> {
        let mut earlier: Vec<Vec<u64>> = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        for (k, it) in items.iter().enumerate() {
            let ans = match self {
                Structural::FirstChoice => Answer::Choice(0),
                Structural::LastChoice => Answer::Choice(it.choices.len().saturating_sub(1)),
                _ => {
                    let mut s = Vec::with_capacity(it.episodes.len());
                    for (j, &ep) in it.episodes.iter().enumerate() {
                        let e = ctx.frames.get(ep)?;
                        let x = match self {
                            Structural::EpisodeIndex => j as f64,
                            Structural::MoviePosition => k as f64,
                            Structural::MovieLength => e.frames as f64,
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

/// One hash per frame of what a model is shown of it: the visible objects' slots and exact
/// positions.
fn signature(e: &EpisodeFrames) -> Vec<u64> {
    (0..e.frames)
        .map(|f| {
            let mut h = DefaultHasher::new();
            for o in (0..e.slots).filter(|&o| seen(e, f, o)) {
                o.hash(&mut h);
                pos(e, f, o).map(f32::to_bits).hash(&mut h);
            }
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
