//! How items are shown to models, so that nothing in their presentation depends on the
//! answer.
//!
//! - **Choices** (contact's and tower_falls' yes/no, first_floor's candidates) are shown in
//!   a seeded permutation per item, counterbalanced: within each family and question the
//!   right answer stands at every position equally often, so a fixed-position answer scores
//!   chance exactly. The answer is mapped back before scoring.
//! - **VoE movies are shown one at a time**, as in IntPhys: each episode of a quadruplet
//!   becomes its own single-episode item with an opaque id and hash, and the movies of every
//!   quadruplet are interleaved in one seeded order, so no adapter can tell which movies
//!   belong together from their ids, hashes or positions. The quadruplet is reassembled
//!   from the four answers for the relative metric. Within each family the ranks the
//!   impossible movies take among their quadruplet's four places are counterbalanced (every
//!   pair of ranks equally often), so a model that keys on which relatives it saw before a
//!   movie scores chance exactly.
//! - Forecast items are shown as they are (their answer is positions, not a choice).
//! - **Object slots are relabelled** on every shown item (movies included) by a seeded
//!   permutation ([`Item::slots`]): its `objects` and its candidates' names use the shown
//!   labels and [`crate::observe`] permutes the frames to match, so no slot number carries
//!   a role (the agent, the VoE target, the first candidate).
//!
//! Every permutation is drawn from a ChaCha8 generator seeded by SHA-256 of
//! ([`PRESENTATION_VERSION`], the bench seed, the item's hash — or the task's content hash
//! for the movie order), so the same items and seed are always shown the same way, and the
//! per-item log records how each item was shown ([`Presentation::record`]).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::adapters::{Answer, Surprise};
use crate::tasks::{Item, Target, TaskItems, TaskKind};

/// Version of the presentation rules; part of every seed, so a change of rules changes
/// every order.
pub const PRESENTATION_VERSION: &str = "physworld-presentation/2";

/// How one item was shown.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    /// As the presented item of the same index, its choices in `order` (presented position
    /// `p` shows original choice `order[p]`; empty when the item has no choices).
    Item { order: Vec<usize> },
    /// A VoE quadruplet: member `m` shown as the presented item at index `at[m]`.
    Movies { at: Vec<usize> },
}

/// The items of one task as models see them, and the way back to the original items.
#[derive(Debug, Clone)]
pub struct Presentation {
    /// What models answer, in the order they are shown.
    pub shown: Vec<Item>,
    /// Per original item.
    layout: Vec<Shown>,
}

/// SHA-256 of [`PRESENTATION_VERSION`] and `parts`, each after a 0 byte.
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PRESENTATION_VERSION.as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p);
    }
    h.finalize().into()
}

/// A generator seeded from [`digest`] of `parts`.
fn rng(parts: &[&[u8]]) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(digest(parts))
}

/// Where each choice item shows its right answer: within each group of items of one
/// family and question with the same number of choices, a seeded shuffle of the group deals
/// the positions `0, 1, .., k − 1, 0, 1, ..` in turn, so every position holds the right
/// answer equally often (to one item) and a model that always picks one position scores
/// chance exactly, not by luck of the draw.
fn answer_positions(task: &TaskItems, seed: &[u8]) -> Vec<Option<usize>> {
    let mut groups: BTreeMap<(&str, &str, usize), Vec<usize>> = BTreeMap::new();
    for (i, it) in task.items.iter().enumerate() {
        if it.choices.len() > 1 && it.answer_index().is_some() {
            groups.entry((&it.family, &it.question, it.choices.len())).or_default().push(i);
        }
    }
    let mut out = vec![None; task.items.len()];
    for ((family, question, k), mut members) in groups {
        let hashes: String = members.iter().map(|&i| task.items[i].hash.as_str()).collect();
        members.shuffle(&mut rng(&[
            seed,
            b"answer positions",
            family.as_bytes(),
            question.as_bytes(),
            hashes.as_bytes(),
        ]));
        for (r, i) in members.into_iter().enumerate() {
            out[i] = Some(r % k);
        }
    }
    out
}

/// The within-quadruplet ranks (0 = shown first of its four) the impossible movies take,
/// counterbalanced per family: a seeded shuffle of each family's quadruplets deals the six
/// rank pairs in turn, each right after its complement, so that possible and impossible
/// movies hold every rank pattern equally often (to one quadruplet) and a model keyed to
/// what it saw before a movie (its rank among its relatives) scores chance exactly.
fn impossible_ranks(task: &TaskItems, seed: &[u8]) -> Vec<Option<[usize; 2]>> {
    const PAIRS: [[usize; 2]; 6] = [[0, 1], [2, 3], [0, 2], [1, 3], [0, 3], [1, 2]];
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, it) in task.items.iter().enumerate() {
        groups.entry(&it.family).or_default().push(i);
    }
    let mut out = vec![None; task.items.len()];
    for (family, mut members) in groups {
        let hashes: String = members.iter().map(|&i| task.items[i].hash.as_str()).collect();
        members.shuffle(&mut rng(&[seed, b"movie ranks", family.as_bytes(), hashes.as_bytes()]));
        for (r, i) in members.into_iter().enumerate() {
            out[i] = Some(PAIRS[r % PAIRS.len()]);
        }
    }
    out
}

/// A seeded permutation of `0..n`.
fn permutation(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(rng);
    p
}

/// Relabel `it`'s object slots (of `n` in all) by a permutation seeded from `seed` and its
/// hash: shown slot `k` is true slot `slots[k]`.
fn relabel(it: &mut Item, n: usize, seed: &[u8]) {
    if n == 0 {
        return;
    }
    let slots: Vec<u16> =
        permutation(n, &mut rng(&[seed, b"slots", it.hash.as_bytes()])).into_iter().map(|k| k as u16).collect();
    let mut shown_as = vec![0u16; n];
    for (k, &t) in slots.iter().enumerate() {
        shown_as[t as usize] = k as u16;
    }
    it.objects = it.objects.iter().map(|&o| shown_as.get(o as usize).copied().unwrap_or(o)).collect();
    if it.choices_are_objects() {
        it.choices = it.objects.iter().map(|o| format!("object {o}")).collect();
    }
    it.slots = slots;
}

impl Presentation {
    /// Show `task`'s items, whose episodes have `slots` object slots, under bench seed
    /// `seed`.
    pub fn new(task: &TaskItems, seed: u64, n_slots: usize) -> Presentation {
        let seed = seed.to_le_bytes();
        if task.kind == TaskKind::Voe {
            return Presentation::movies(task, &seed, n_slots);
        }
        let slots = answer_positions(task, &seed);
        let mut shown = Vec::with_capacity(task.items.len());
        let mut layout = Vec::with_capacity(task.items.len());
        for (i, it) in task.items.iter().enumerate() {
            let order = if it.choices.len() > 1 {
                let mut r = rng(&[&seed, it.hash.as_bytes()]);
                match (it.answer_index(), slots[i]) {
                    // The right choice where the group's balance puts it, the others around
                    // it in a seeded order.
                    (Some(a), Some(at)) if a < it.choices.len() => {
                        let mut others: Vec<usize> = (0..it.choices.len()).filter(|&k| k != a).collect();
                        others.shuffle(&mut r);
                        others.insert(at, a);
                        others
                    }
                    _ => permutation(it.choices.len(), &mut r),
                }
            } else {
                Vec::new()
            };
            let mut s = it.clone();
            if !order.is_empty() {
                s.choices = order.iter().map(|&k| it.choices[k].clone()).collect();
                if it.choices_are_objects() {
                    s.objects = order.iter().map(|&k| it.objects[k]).collect();
                }
                if let Target::Choice(c) = it.target {
                    s.target = Target::Choice(order.iter().position(|&k| k == c).unwrap_or(c));
                }
            }
            relabel(&mut s, n_slots, &seed);
            shown.push(s);
            layout.push(Shown::Item { order });
        }
        Presentation { shown, layout }
    }

    /// One single-episode item per VoE movie, every quadruplet's movies interleaved.
    fn movies(task: &TaskItems, seed: &[u8], slots: usize) -> Presentation {
        let mut movies = Vec::new();
        for (i, it) in task.items.iter().enumerate() {
            let possible = match &it.target {
                Target::Possible(p) => p.clone(),
                _ => Vec::new(),
            };
            for (m, &ep) in it.episodes.iter().enumerate() {
                let hash = hex::encode(digest(&[seed, b"movie", it.hash.as_bytes(), &(m as u64).to_le_bytes()]));
                let mut s = it.clone();
                s.id = format!("voe/{}/movie/{}", it.split, &hash[..16]);
                s.episodes = vec![ep];
                s.target = Target::Possible(possible.get(m).copied().into_iter().collect());
                s.hash = hash;
                relabel(&mut s, slots, seed);
                movies.push((i, s));
            }
        }
        let order = permutation(movies.len(), &mut rng(&[seed, task.content_hash().as_bytes()]));
        // Each quadruplet's four places in the stream, earliest first.
        let mut places: Vec<Vec<usize>> = task.items.iter().map(|_| Vec::new()).collect();
        for (pos, &k) in order.iter().enumerate() {
            places[movies[k].0].push(pos);
        }
        let ranks = impossible_ranks(task, seed);
        let mut layout: Vec<Shown> =
            task.items.iter().map(|it| Shown::Movies { at: vec![usize::MAX; it.episodes.len()] }).collect();
        // The movie (index into `movies`) shown at each place of the stream.
        let mut movie_at: Vec<Option<usize>> = vec![None; movies.len()];
        let mut start = 0;
        for (i, it) in task.items.iter().enumerate() {
            let n = it.episodes.len();
            let possible: Vec<bool> = match &it.target {
                Target::Possible(p) if p.len() == n => p.clone(),
                _ => vec![true; n],
            };
            // Which member takes which of the quadruplet's places: the impossible ones the
            // ranks the counterbalancing dealt, in a seeded order; the possible ones the rest.
            let mut r = rng(&[seed, b"member places", it.hash.as_bytes()]);
            let mut imp: Vec<usize> = (0..n).filter(|&m| !possible[m]).collect();
            let mut pos: Vec<usize> = (0..n).filter(|&m| possible[m]).collect();
            imp.shuffle(&mut r);
            pos.shuffle(&mut r);
            let member_at_rank: Vec<usize> = match ranks[i] {
                Some(pair) if imp.len() == 2 && n == 4 => {
                    let (mut a, mut b) = (imp.into_iter(), pos.into_iter());
                    (0..4).map(|k| if pair.contains(&k) { a.next() } else { b.next() }.unwrap_or(0)).collect()
                }
                _ => permutation(n, &mut r),
            };
            for (rank, &m) in member_at_rank.iter().enumerate() {
                if let (Some(&place), Shown::Movies { at }) = (places[i].get(rank), &mut layout[i]) {
                    at[m] = place;
                    movie_at[place] = Some(start + m);
                }
            }
            start += n;
        }
        let shown = movie_at.into_iter().map(|k| movies[k.unwrap_or(0)].1.clone()).collect();
        Presentation { shown, layout }
    }

    /// Map answers to [`Presentation::shown`] (same length, same order) back to one answer per
    /// original item: choices un-permuted, a quadruplet's four single-movie surprises joined
    /// in member order (invalid when any movie's answer is).
    pub fn gather(&self, answers: &[Answer]) -> Vec<Answer> {
        self.layout
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Shown::Item { order } => match &answers[i] {
                    Answer::Choice(k) if !order.is_empty() => Answer::Choice(order.get(*k).copied().unwrap_or(*k)),
                    a => a.clone(),
                },
                Shown::Movies { at } => {
                    let mut joined: Vec<Surprise> = Vec::with_capacity(at.len());
                    for &k in at {
                        match &answers[k] {
                            Answer::Surprise(s) if s.len() == 1 => joined.push(s[0]),
                            Answer::Invalid(why) => {
                                return Answer::Invalid(format!("movie {}: {why}", self.shown[k].id));
                            }
                            other => {
                                return Answer::Invalid(format!(
                                    "movie {}: expected one surprise, got {}",
                                    self.shown[k].id,
                                    serde_json::to_string(other).unwrap_or_default()
                                ));
                            }
                        }
                    }
                    Answer::Surprise(joined)
                }
            })
            .collect()
    }

    /// How original item `i` was shown, for its log line: `{"choices": [...]}` in shown order
    /// with `"order"` (original index per shown position) and `"slots"` (the true slot per
    /// shown slot), or `{"movies": [{"id", "position", "slots"}, ...]}` in member order.
    pub fn record(&self, i: usize) -> Value {
        match &self.layout[i] {
            Shown::Item { order } => {
                let s = &self.shown[i];
                let mut v = json!({ "slots": s.slots });
                if !order.is_empty() {
                    v["choices"] = json!(s.choices);
                    v["order"] = json!(order);
                }
                v
            }
            Shown::Movies { at } => json!({
                "movies": at.iter().map(|&k| json!({ "id": self.shown[k].id, "position": k, "slots": self.shown[k].slots })).collect::<Vec<_>>()
            }),
        }
    }

    /// Places in [`Presentation::shown`] of the presented items behind original item `i`
    /// (its own place, or a quadruplet's four movies in member order).
    pub fn places(&self, i: usize) -> Vec<usize> {
        match &self.layout[i] {
            Shown::Item { .. } => vec![i],
            Shown::Movies { at } => at.clone(),
        }
    }

    /// Ids of the presented items behind original item `i` (its raw exchanges are logged under
    /// these).
    pub fn shown_ids(&self, i: usize) -> Vec<&str> {
        match &self.layout[i] {
            Shown::Item { .. } => vec![self.shown[i].id.as_str()],
            Shown::Movies { at } => at.iter().map(|&k| self.shown[k].id.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: usize, choices: &[&str], answer: usize) -> Item {
        Item {
            id: format!("outcome/test/drop/{i}"),
            task: TaskKind::Outcome,
            family: "drop".into(),
            split: "test".into(),
            sample_index: 0,
            episodes: vec![0],
            observe: 6,
            horizons: Vec::new(),
            question: "first_floor".into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            objects: (0..choices.len() as u16).collect(),
            zone: None,
            violation: None,
            slots: Vec::new(),
            target: Target::Choice(answer),
            hash: hex::encode(Sha256::digest(format!("item {i}"))),
        }
    }

    #[test]
    fn voe_movies_hold_every_rank_pattern_equally_often() {
        // 60 quadruplets of one family: members 0, 1 possible, 2, 3 impossible.
        let items: Vec<Item> = (0..60)
            .map(|i| Item {
                task: TaskKind::Voe,
                family: "voe-permanence".into(),
                question: "voe".into(),
                choices: Vec::new(),
                objects: Vec::new(),
                episodes: (0..4).map(|m| 4 * i as u64 + m).collect(),
                target: Target::Possible(vec![true, true, false, false]),
                ..item(i, &[], 0)
            })
            .collect();
        let task = TaskItems { kind: TaskKind::Voe, items, dropped: Default::default() };
        for seed in 0..3 {
            let p = Presentation::new(&task, seed, 4);
            let mut patterns: BTreeMap<[usize; 2], usize> = BTreeMap::new();
            for i in 0..task.items.len() {
                let Shown::Movies { at } = &p.layout[i] else { panic!("movies") };
                let mut sorted = at.clone();
                sorted.sort_unstable();
                let rank = |m: usize| sorted.iter().position(|&x| x == at[m]).expect("placed");
                let mut imp = [rank(2), rank(3)];
                imp.sort_unstable();
                *patterns.entry(imp).or_default() += 1;
                // Every movie is shown once, as its own item.
                for (m, &k) in at.iter().enumerate() {
                    assert_eq!(p.shown[k].episodes, vec![task.items[i].episodes[m]]);
                }
            }
            // Six rank pairs, ten quadruplets each: what came before a movie says nothing.
            assert_eq!(patterns.len(), 6, "{patterns:?}");
            assert!(patterns.values().all(|&n| n == 10), "{patterns:?}");
        }
    }

    #[test]
    fn choices_are_permuted_per_item_and_mapped_back() {
        let items: Vec<Item> = (0..40).map(|i| item(i, &["object 0", "object 1", "object 2"], i % 3)).collect();
        let task = TaskItems { kind: TaskKind::Outcome, items, dropped: Default::default() };
        let p = Presentation::new(&task, 0, 4);
        assert_eq!(p.shown.len(), 40);
        let mut moved = 0;
        for (orig, shown) in task.items.iter().zip(&p.shown) {
            // The right answer is still the right answer, wherever it is shown.
            let (Target::Choice(a), Target::Choice(b)) = (&orig.target, &shown.target) else { panic!() };
            // Named by the shown label of the same true slot.
            assert_eq!(orig.objects[*a], shown.true_slot(shown.objects[*b]));
            assert_eq!(shown.choices[*b], format!("object {}", shown.objects[*b]));
            moved += (a != b) as usize;
        }
        assert!(moved > 10, "only {moved} of 40 answers moved");
        // Counterbalanced: the right answer stands at each of the 3 positions 13 or 14 times.
        let mut at = [0; 3];
        for s in &p.shown {
            at[s.answer_index().expect("choice")] += 1;
        }
        assert!(at.iter().all(|&n| n == 13 || n == 14), "{at:?}");
        // Answering the shown right answer maps back to the original right answer.
        let right: Vec<Answer> = p.shown.iter().map(|s| Answer::Choice(s.answer_index().expect("choice"))).collect();
        let back = p.gather(&right);
        for (orig, a) in task.items.iter().zip(back) {
            assert_eq!(a, Answer::Choice(orig.answer_index().expect("choice")));
        }
        // Deterministic per seed, different across seeds.
        assert_eq!(Presentation::new(&task, 0, 4).shown, p.shown);
        assert_ne!(Presentation::new(&task, 1, 4).shown, p.shown);
        // Slots are relabelled: every shown item carries a permutation, and the true slot 0
        // is not always shown as 0.
        assert!(p.shown.iter().all(|s| {
            let mut k = s.slots.clone();
            k.sort_unstable();
            k == [0, 1, 2, 3]
        }));
        assert!(p.shown.iter().filter(|s| s.slots[0] != 0).count() > 20);
        assert!(p.record(0)["order"].is_array());
    }
}
