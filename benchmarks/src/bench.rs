//! Running models over a suite: build the items once, let every adapter answer them, score
//! and write one result file per model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use physworld_pipeline::{Dataset, WorkerShard};
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::adapters::{Adapter, Answer, Context};
use crate::error::{BenchError, Result};
use crate::metrics::DEFAULT_RESAMPLES;
use crate::present::Presentation;
use crate::results::{self, ItemLog, ModelRef, RESULTS_SCHEMA, ResultFile, SuiteRef, TaskResult};
use crate::score::{Bootstrap, score};
use crate::tasks::{self, Frames, Item, TaskItems, TaskKind, TaskOptions};

/// The git commit physworld was built from (empty when unknown).
pub const GIT_HASH: &str = env!("PHYSWORLD_GIT_HASH");

/// What to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchOptions {
    /// Split scored. Default `test`.
    pub split: String,
    /// Split probes are fit on. Default `readout`.
    pub readout_split: String,
    /// Tasks. Default all.
    pub tasks: Vec<TaskKind>,
    /// How items are cut.
    pub items: TaskOptions,
    /// Seed of the bootstrap intervals and of how items are presented (choice order, VoE
    /// movie order: [`crate::present`]). Default 0.
    pub bootstrap_seed: u64,
    /// Bootstrap resamples. Default [`DEFAULT_RESAMPLES`].
    pub resamples: u32,
    /// Score only the first N items of each task (for quick and costly runs; the content
    /// hash covers exactly the items scored). Default all.
    pub limit: Option<usize>,
    /// Also score planning on `launch` ([`crate::plan::LAUNCH_TASK`]) with the adapters that
    /// plan. Default true.
    pub plan_launch: bool,
    /// `plan-launch`: attempts per item. Default [`crate::plan::MAX_ATTEMPTS`] (PHYRE's 100).
    pub plan_attempts: usize,
    /// Also score closed-loop planning on `push` ([`crate::plan_push::PUSH_TASK`]) with the
    /// adapters that plan it. Default true.
    pub plan_push: bool,
    /// `plan-push`: frames each action is held. Default [`crate::plan_push::DEFAULT_HOLD`].
    pub push_hold: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            split: "test".into(),
            readout_split: "readout".into(),
            tasks: TaskKind::ALL.to_vec(),
            items: TaskOptions::default(),
            bootstrap_seed: 0,
            resamples: DEFAULT_RESAMPLES,
            limit: None,
            plan_launch: true,
            plan_attempts: crate::plan::MAX_ATTEMPTS,
            plan_push: true,
            push_hold: crate::plan_push::DEFAULT_HOLD,
        }
    }
}

/// Parse task ids (`forecast`, `contact`, `outcome`, `voe`, `plan-launch`, `plan-push`) into
/// the prediction tasks and whether `plan-launch` and `plan-push` are asked for.
pub fn parse_tasks<S: AsRef<str>>(ids: &[S]) -> Result<(Vec<TaskKind>, bool, bool)> {
    let mut kinds = Vec::new();
    let (mut launch, mut push) = (false, false);
    for id in ids {
        let id = id.as_ref();
        if id == crate::plan::LAUNCH_TASK {
            launch = true;
            continue;
        }
        if id == crate::plan_push::PUSH_TASK {
            push = true;
            continue;
        }
        match TaskKind::ALL.into_iter().find(|k| k.as_str() == id) {
            Some(k) => kinds.push(k),
            None => {
                let names: Vec<&str> = TaskKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .chain([crate::plan::LAUNCH_TASK, crate::plan_push::PUSH_TASK])
                    .collect();
                return Err(BenchError::invalid(
                    "task",
                    id,
                    format!("{}{}", names.join(", "), physworld_sim::suggest::did_you_mean(id, names.iter().copied())),
                ));
            }
        }
    }
    Ok((kinds, launch, push))
}

/// Keep the first `n` of `items` (all when `None`), counting the rest under `--limit` in
/// `dropped`.
fn limit<T>(items: &mut Vec<T>, dropped: &mut BTreeMap<String, u64>, n: Option<usize>) {
    if let Some(n) = n {
        let cut = items.len().saturating_sub(n) as u64;
        items.truncate(n);
        if cut > 0 {
            *dropped.entry("--limit".into()).or_default() += cut;
        }
    }
}

/// A suite ready to be scored: items of every task over the scored and readout splits.
pub struct Prepared {
    /// The dataset.
    pub ds: Dataset,
    /// Options.
    pub opts: BenchOptions,
    /// Frames of the scored split.
    pub frames: Frames,
    /// Frames of the readout split.
    pub readout_frames: Frames,
    /// Scored items per task.
    pub items: BTreeMap<TaskKind, TaskItems>,
    /// Readout items per task.
    pub readout: BTreeMap<TaskKind, TaskItems>,
    /// `plan-launch` items of the scored split (empty when not asked for or without
    /// `launch` episodes).
    pub launch: crate::plan::LaunchItems,
    /// `plan-push` items of the scored split (empty when not asked for or without `push`
    /// episodes).
    pub push: crate::plan_push::PushItems,
}

impl Prepared {
    /// Open the dataset at `dir` and build the items.
    pub fn new(dir: &Path, opts: BenchOptions) -> Result<Prepared> {
        opts.items.validate()?;
        if opts.split == opts.readout_split {
            return Err(BenchError::invalid(
                "split",
                &opts.split,
                format!(
                    "a split other than `{}`, which probes and k-shot examples are fit on (scoring there would grade a model on its own training labels)",
                    opts.readout_split
                ),
            ));
        }
        let ds = Dataset::open(dir)?;
        for (flag, s) in [("split", &opts.split), ("readout split", &opts.readout_split)] {
            if !ds.info.splits.contains_key(s) {
                let names: Vec<&str> = ds.info.splits.keys().map(String::as_str).collect();
                return Err(BenchError::invalid(
                    flag,
                    s,
                    format!("a split of {}: {}", dir.display(), names.join(", ")),
                ));
            }
        }
        let frames = Frames::load(&ds, &opts.split)?;
        let readout_frames = Frames::load(&ds, &opts.readout_split)?;
        let mut items = BTreeMap::new();
        let mut readout = BTreeMap::new();
        for &t in &opts.tasks {
            let mut built = tasks::build(&ds, &frames, &opts.split, t, &opts.items)?;
            limit(&mut built.items, &mut built.dropped, opts.limit);
            items.insert(t, built);
            readout.insert(t, tasks::build(&ds, &readout_frames, &opts.readout_split, t, &opts.items)?);
        }
        let mut launch = crate::plan::LaunchItems::default();
        if opts.plan_launch {
            if opts.plan_attempts == 0 || opts.plan_attempts > crate::plan::MAX_ATTEMPTS {
                return Err(BenchError::invalid(
                    "plan_attempts",
                    opts.plan_attempts,
                    format!("1..={}", crate::plan::MAX_ATTEMPTS),
                ));
            }
            launch = crate::plan::launch_items(&ds, &opts.split, opts.plan_attempts)?;
            limit(&mut launch.items, &mut launch.dropped, opts.limit);
        }
        let mut push = crate::plan_push::PushItems::default();
        if opts.plan_push {
            push = crate::plan_push::push_items(&ds, &opts.split, opts.push_hold)?;
            limit(&mut push.items, &mut push.dropped, opts.limit);
        }
        Ok(Prepared { ds, opts, frames, readout_frames, items, readout, launch, push })
    }

    /// What adapters may look at when answering these items.
    pub fn context(&self) -> Context<'_> {
        Context {
            ds: &self.ds,
            split: &self.opts.split,
            frames: &self.frames,
            readout: &self.readout,
            readout_frames: &self.readout_frames,
            opts: &self.opts.items,
        }
    }

    /// Hash over every task's item hashes (tasks in order, then `plan-launch` and
    /// `plan-push`).
    pub fn content_hash(&self) -> String {
        tasks::content_hash(
            self.items
                .values()
                .flat_map(|t| t.items.iter().map(|i| i.hash.as_str()))
                .chain(self.launch.items.iter().map(|i| i.hash.as_str()))
                .chain(self.push.items.iter().map(|i| i.hash.as_str())),
        )
    }

    /// Items to score in all.
    pub fn total_items(&self) -> u64 {
        self.items.values().map(|t| t.items.len() as u64).sum::<u64>()
            + self.launch.items.len() as u64
            + self.push.items.len() as u64
    }

    /// Items `adapter` will answer (the tasks it supports, and the planning tasks it plans).
    pub fn items_for(&self, adapter: &dyn Adapter) -> u64 {
        self.items_for_shard(adapter, WorkerShard::ALL)
    }

    /// Items `adapter` will answer in `shard` ([`Prepared::items_for`] restricted to it).
    pub fn items_for_shard(&self, adapter: &dyn Adapter, shard: WorkerShard) -> u64 {
        let mine = |n: usize| shard_len(shard, n);
        let planning = if adapter.launch_planner().is_some() { mine(self.launch.items.len()) } else { 0 }
            + if adapter.push_planner().is_some() { mine(self.push.items.len()) } else { 0 };
        self.items.iter().filter(|(k, _)| adapter.supports(**k)).map(|(_, t)| mine(t.items.len())).sum::<u64>()
            + planning
    }

    /// The suite reference of result files scored on these items.
    pub fn suite_ref(&self) -> SuiteRef {
        SuiteRef {
            name: self.ds.suite.suite.name.clone(),
            dataset_hash: self.ds.info.suite_hash.clone(),
            split: self.opts.split.clone(),
            content_hash: self.content_hash(),
            generator: self.ds.info.generator_version.clone(),
            observation: format!("{} {}", crate::observe::OBSERVATION_VERSION, self.ds.suite.observation.name()),
            fold: self.ds.suite.fold().map(|(name, group)| crate::results::FoldRef { name, group }),
        }
    }
}

/// Progress of a run.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Starting the task with this id for the model (with its item count).
    Task(&'a str, &'a str, usize),
    /// One item answered.
    Item,
}

/// Items of a task are dealt to the shards of a sharded run (`bench --shard I/N`) in blocks
/// of this many consecutive items, round robin: block `b` goes to shard `b mod N`. Whole
/// blocks keep every batch an adapter forms (the learned adapters batch 32 items) the same
/// as in an unsharded run, so a merged run is byte-identical to it.
pub const SHARD_BLOCK: usize = 32;

/// Whether item `index` of a task (or its planning items) is `shard`'s ([`SHARD_BLOCK`]).
pub fn in_shard(shard: WorkerShard, index: usize) -> bool {
    shard.owns(index / SHARD_BLOCK)
}

/// The indices, in order, of `shard`'s items among `n`.
pub fn shard_indices(shard: WorkerShard, n: usize) -> Vec<usize> {
    (0..n).filter(|&i| in_shard(shard, i)).collect()
}

/// How many of `n` items are `shard`'s.
pub fn shard_len(shard: WorkerShard, n: usize) -> u64 {
    (0..n).filter(|&i| in_shard(shard, i)).count() as u64
}

/// Let `adapter` answer `task`'s items as [`Presentation`] shows them under `seed`, once per
/// readout protocol it scores the task under (the first is primary); returns the
/// presentation and the answers mapped back to the original items. Calls `tick` once per
/// original item answered.
#[allow(clippy::type_complexity)]
pub fn answer_shown(
    adapter: &mut dyn Adapter,
    ctx: &Context<'_>,
    task: &TaskItems,
    seed: u64,
    tick: &(dyn Fn() + Sync),
) -> Result<(Presentation, Vec<(Option<&'static str>, Vec<Answer>)>)> {
    let (shown, _, answers) = answer_part(adapter, ctx, task, seed, WorkerShard::ALL, tick)?;
    Ok((shown, answers))
}

/// [`answer_shown`] for the items of `shard` only: the whole task is presented (the
/// presentation balances answer positions over all items), and the adapter is shown the
/// presented items behind `shard`'s original items, in presented order. Returns the
/// presentation, the indices of the original items answered, and per protocol their
/// answers in that order.
#[allow(clippy::type_complexity)]
pub fn answer_part(
    adapter: &mut dyn Adapter,
    ctx: &Context<'_>,
    task: &TaskItems,
    seed: u64,
    shard: WorkerShard,
    tick: &(dyn Fn() + Sync),
) -> Result<(Presentation, Vec<usize>, Vec<(Option<&'static str>, Vec<Answer>)>)> {
    let kind = task.kind;
    let shown = Presentation::new(task, seed, ctx.ds.slots());
    let selected = shard_indices(shard, task.items.len());
    let mut places: Vec<usize> = selected.iter().flat_map(|&i| shown.places(i)).collect();
    places.sort_unstable();
    let whole = places.len() == shown.shown.len();
    let part: Vec<Item> = if whole { Vec::new() } else { places.iter().map(|&k| shown.shown[k].clone()).collect() };
    let asked: &[Item] = if whole { &shown.shown } else { &part };
    // VoE shows four movies per item: tick once per item, not per movie.
    let per_item = (places.len() / selected.len().max(1)).max(1);
    let count = AtomicUsize::new(0);
    let tick_shown = || {
        if (count.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(per_item) {
            tick();
        }
    };
    let quiet = || {};
    let protocols = adapter.protocols(kind);
    let protocols: Vec<Option<&'static str>> =
        if protocols.is_empty() { vec![None] } else { protocols.into_iter().map(Some).collect() };
    let mut answers = Vec::with_capacity(protocols.len());
    // The adapter answers even when the shard holds none of the task's items, so that it
    // fits (and describes) the same readouts in every shard.
    for (i, p) in protocols.into_iter().enumerate() {
        let t: &(dyn Fn() + Sync) = if i == 0 { &tick_shown } else { &quiet };
        let a = adapter.answer(ctx, kind, asked, p, t)?;
        if a.len() != asked.len() {
            return Err(BenchError::Mismatch {
                what: format!("model `{}` on task {}", adapter.id(), kind.as_str()),
                reason: format!("{} answers for {} items", a.len(), asked.len()),
            });
        }
        let all = if whole {
            a
        } else {
            let mut all = vec![Answer::Invalid("not in this shard".into()); shown.shown.len()];
            for (k, x) in places.iter().zip(a) {
                all[*k] = x;
            }
            all
        };
        let gathered = shown.gather(&all);
        answers.push((p, selected.iter().map(|&i| gathered[i].clone()).collect()));
    }
    Ok((shown, selected, answers))
}

/// One item's answers, as a run or one shard of it produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnsweredItem {
    /// Index of the item in its task.
    pub index: usize,
    /// The item's hash (checked against the dataset's when shards are merged).
    pub hash: String,
    /// One answer per readout protocol, the primary first.
    pub answers: Vec<Answer>,
    /// How the item was shown ([`Presentation::record`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation: Option<serde_json::Value>,
    /// The raw exchange behind the answer (LLM requests and responses, without keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// A prediction task's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnsweredTask {
    /// The task.
    pub task: TaskKind,
    /// The readout protocols answered under, the primary first (one `null` for models
    /// without probes).
    pub protocols: Vec<Option<String>>,
    /// The items answered, by index.
    pub items: Vec<AnsweredItem>,
}

/// One planning item played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayedItem<T> {
    /// Index of the item among the task's items.
    pub index: usize,
    /// The item's hash.
    pub hash: String,
    /// How it went.
    pub outcome: T,
}

/// Everything a model answered on a suite (or on one shard of it), before scoring: what
/// [`score_answers`] turns into a result file, and what a shard file carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answers {
    /// Prediction tasks, in task order.
    pub tasks: Vec<AnsweredTask>,
    /// `plan-launch` items played, where the model plans it and there are items.
    pub launch: Option<Vec<PlayedItem<crate::plan::LaunchOutcome>>>,
    /// `plan-push` items played, likewise.
    pub push: Option<Vec<PlayedItem<crate::plan_push::PushOutcome>>>,
    /// Tasks asked for that the model does not answer.
    pub unsupported: Vec<String>,
    /// Tasks asked for that have no items in the scored split.
    pub no_items: Vec<String>,
}

/// Let `adapter` answer the items of `shard` ([`WorkerShard::ALL`] for all) of every task
/// of `prep`, and play its planning items.
pub fn answer(
    prep: &Prepared,
    adapter: &mut dyn Adapter,
    shard: WorkerShard,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Answers> {
    let ctx = prep.context();
    let seed = prep.opts.bootstrap_seed;
    let mut out = Answers::default();
    let id = adapter.id().to_string();
    // The launch planner learns first (a checkpoint's success classifier), so that a
    // readout split it cannot learn from fails the run before any task is answered.
    let mut launch_planner = None;
    if prep.opts.plan_launch
        && !prep.launch.items.is_empty()
        && let Some(mut planner) = adapter.launch_planner()
    {
        adapter.check_scored(&prep.ds, &prep.opts.split)?;
        planner.fit(&prep.ds, &prep.opts.readout_split, &prep.opts.split)?;
        launch_planner = Some(planner);
    }
    for (&kind, items) in &prep.items {
        if !adapter.supports(kind) {
            out.unsupported.push(kind.as_str().to_string());
            continue;
        }
        if items.items.is_empty() {
            out.no_items.push(kind.as_str().to_string());
            continue;
        }
        progress(Event::Task(&id, kind.as_str(), shard_len(shard, items.items.len()) as usize));
        let tick = || progress(Event::Item);
        let (shown, selected, answers) = answer_part(adapter, &ctx, items, seed, shard, &tick)?;
        let mut answered = Vec::with_capacity(selected.len());
        for (j, &i) in selected.iter().enumerate() {
            let record = shown.record(i);
            let raw: Vec<serde_json::Value> =
                shown.shown_ids(i).into_iter().filter_map(|s| adapter.raw_log(s)).collect();
            // One item's exchanges: a VoE quadruplet's are its movies', in member order.
            let raw = match raw.len() {
                0 => None,
                1 => raw.into_iter().next(),
                _ => Some(serde_json::Value::Array(
                    raw.into_iter()
                        .flat_map(|v| match v {
                            serde_json::Value::Array(a) => a,
                            other => vec![other],
                        })
                        .collect(),
                )),
            };
            answered.push(AnsweredItem {
                index: i,
                hash: items.items[i].hash.clone(),
                answers: answers.iter().map(|(_, a)| a[j].clone()).collect(),
                presentation: (!record.is_null()).then_some(record),
                raw,
            });
        }
        let protocols = answers.iter().map(|(p, _)| p.map(str::to_string)).collect();
        out.tasks.push(AnsweredTask { task: kind, protocols, items: answered });
    }
    if prep.opts.plan_launch {
        let task = crate::plan::LAUNCH_TASK.to_string();
        match launch_planner {
            _ if prep.launch.items.is_empty() => out.no_items.push(task),
            None => out.unsupported.push(task),
            Some(mut planner) => {
                out.launch = Some(play_part(
                    &prep.launch.items,
                    |i| &i.hash,
                    shard,
                    |items| {
                        progress(Event::Task(&id, crate::plan::LAUNCH_TASK, items.len()));
                        let mut tick = |_: &crate::plan::LaunchOutcome, _| progress(Event::Item);
                        let o = &prep.opts;
                        Ok(crate::plan::run_launch(
                            items,
                            planner.as_mut(),
                            &o.split,
                            seed,
                            o.plan_attempts,
                            o.resamples,
                            &mut tick,
                        )?
                        .items)
                    },
                )?);
            }
        }
    }
    if prep.opts.plan_push {
        let task = crate::plan_push::PUSH_TASK.to_string();
        match adapter.push_planner() {
            _ if prep.push.items.is_empty() => out.no_items.push(task),
            None => out.unsupported.push(task),
            Some(mut planner) => {
                adapter.check_scored(&prep.ds, &prep.opts.split)?;
                out.push = Some(play_part(
                    &prep.push.items,
                    |i| &i.hash,
                    shard,
                    |items| {
                        progress(Event::Task(&id, crate::plan_push::PUSH_TASK, items.len()));
                        let mut tick = |_: &crate::plan_push::PushOutcome, _| progress(Event::Item);
                        let o = &prep.opts;
                        Ok(crate::plan_push::run_push(
                            items,
                            planner.as_mut(),
                            &o.split,
                            seed,
                            o.push_hold,
                            o.resamples,
                            &mut tick,
                        )?
                        .items)
                    },
                )?);
            }
        }
    }
    Ok(out)
}

/// Play `shard`'s share of the planning `items` with `play` (one outcome per item given, in
/// order), each outcome labelled with its item's index and hash.
fn play_part<I: Clone, O>(
    items: &[I],
    hash: fn(&I) -> &String,
    shard: WorkerShard,
    play: impl FnOnce(&[I]) -> Result<Vec<O>>,
) -> Result<Vec<PlayedItem<O>>> {
    let chosen = shard_indices(shard, items.len());
    // A whole run plays the items as they are; a shard, copies of its own.
    let outcomes = if chosen.len() == items.len() {
        play(items)?
    } else {
        play(&chosen.iter().map(|&i| items[i].clone()).collect::<Vec<I>>())?
    };
    Ok(chosen
        .into_iter()
        .zip(outcomes)
        .map(|(index, outcome)| PlayedItem { index, hash: hash(&items[index]).clone(), outcome })
        .collect())
}

/// The outcomes of `played`, after checking that they cover `task`'s items `want` (their
/// hashes) exactly, in order.
fn outcomes<'a, O: Clone>(
    task: &str,
    want: impl ExactSizeIterator<Item = &'a str>,
    played: &[PlayedItem<O>],
) -> Result<Vec<O>> {
    let got: Vec<(usize, &str)> = played.iter().map(|p| (p.index, p.hash.as_str())).collect();
    check_cover(task, want, &got)?;
    Ok(played.iter().map(|p| p.outcome.clone()).collect())
}

/// Check that `got` holds each of `want`'s items exactly once, in order, with its hash.
fn check_cover<'a>(task: &str, want: impl ExactSizeIterator<Item = &'a str>, got: &[(usize, &str)]) -> Result<()> {
    let mismatch = |reason: String| BenchError::Mismatch { what: format!("answers to task {task}"), reason };
    if got.len() != want.len() {
        return Err(mismatch(format!("{} answers for {} items", got.len(), want.len())));
    }
    for (k, (h, (i, g))) in want.zip(got).enumerate() {
        if *i != k {
            return Err(mismatch(format!("item {k} answered as item {i}")));
        }
        if h != *g {
            return Err(mismatch(format!(
                "item {k} has hash {g} in the answers but {h} in the dataset: they were answered on other items"
            )));
        }
    }
    Ok(())
}

/// Score `answers` (to every item of `prep`, in order) into the result file's tasks and the
/// item log.
///
/// # Errors
/// [`BenchError::Mismatch`] when the answers do not cover `prep`'s items exactly.
pub fn score_answers(prep: &Prepared, model: &str, answers: &Answers) -> Result<(Vec<TaskResult>, Vec<ItemLog>)> {
    let b = Bootstrap { seed: prep.opts.bootstrap_seed, resamples: prep.opts.resamples };
    let mut tasks_out = Vec::new();
    let mut logs: Vec<ItemLog> = Vec::new();
    for t in &answers.tasks {
        let name = t.task.as_str();
        let items = prep.items.get(&t.task).ok_or_else(|| BenchError::Mismatch {
            what: format!("answers to task {name}"),
            reason: "the task was not asked for".into(),
        })?;
        let got: Vec<(usize, &str)> = t.items.iter().map(|a| (a.index, a.hash.as_str())).collect();
        check_cover(name, items.items.iter().map(|i| i.hash.as_str()), &got)?;
        if let Some(a) = t.items.iter().find(|a| a.answers.len() != t.protocols.len()) {
            return Err(BenchError::Mismatch {
                what: format!("answers to task {name}"),
                reason: format!("item {} has {} answers for {} protocols", a.index, a.answers.len(), t.protocols.len()),
            });
        }
        let per_protocol: Vec<(Option<&str>, Vec<Answer>)> = t
            .protocols
            .iter()
            .enumerate()
            .map(|(k, p)| (p.as_deref(), t.items.iter().map(|a| a.answers[k].clone()).collect()))
            .collect();
        let (r, mut l) = score(items, &per_protocol, &prep.frames, &prep.opts.items, b);
        for (log, a) in l.iter_mut().zip(&t.items) {
            log.presentation = a.presentation.clone();
            log.raw = a.raw.clone();
        }
        tasks_out.push(r);
        logs.extend(l);
    }
    let (split, seed, resamples) = (&prep.opts.split, b.seed, b.resamples);
    if let Some(played) = &answers.launch {
        let os = outcomes(crate::plan::LAUNCH_TASK, prep.launch.items.iter().map(|i| i.hash.as_str()), played)?;
        let run = crate::plan::LaunchRun::new(model, split, seed, prep.opts.plan_attempts, resamples, os);
        let (r, l) = crate::plan::score_launch(&prep.launch.items, &run, b);
        tasks_out.push(r);
        logs.extend(l);
    }
    if let Some(played) = &answers.push {
        let os = outcomes(crate::plan_push::PUSH_TASK, prep.push.items.iter().map(|i| i.hash.as_str()), played)?;
        let run = crate::plan_push::PushRun::new(model, split, seed, prep.opts.push_hold, resamples, os);
        let (r, l) = crate::plan_push::score_push(&prep.push.items, &run, b);
        tasks_out.push(r);
        logs.extend(l);
    }
    Ok((tasks_out, logs))
}

/// The result file of `model` on `prep` from its scored `tasks` ([`score_answers`]), with
/// no item log name yet ([`results::write`] sets it).
pub fn result_file(
    prep: &Prepared,
    model: ModelRef,
    answers: &Answers,
    tasks: Vec<TaskResult>,
    wall_time_s: f64,
) -> ResultFile {
    ResultFile {
        schema: RESULTS_SCHEMA.into(),
        physworld_version: env!("CARGO_PKG_VERSION").into(),
        git_hash: (!GIT_HASH.is_empty()).then(|| GIT_HASH.to_string()),
        suite: prep.suite_ref(),
        model,
        bootstrap_seed: prep.opts.bootstrap_seed,
        bootstrap_resamples: prep.opts.resamples,
        tasks,
        unsupported: answers.unsupported.clone(),
        no_items: answers.no_items.clone(),
        items_file: String::new(),
        wall_time_s,
    }
}

/// Score `adapter` on `prep` and write its result file and item log into `out`.
pub fn run(
    prep: &Prepared,
    adapter: &mut dyn Adapter,
    out: &Path,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<PathBuf> {
    let start = Instant::now();
    let answers = answer(prep, adapter, WorkerShard::ALL, progress)?;
    let (tasks, logs) = score_answers(prep, adapter.id(), &answers)?;
    let mut file = result_file(prep, adapter.describe(), &answers, tasks, start.elapsed().as_secs_f64());
    results::write(out, &mut file, &logs)
}
