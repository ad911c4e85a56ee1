//! Running models over a suite: build the items once, let every adapter answer them, score
//! and write one result file per model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use physworld_pipeline::Dataset;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::adapters::{Adapter, Answer, Context};
use crate::error::{BenchError, Result};
use crate::metrics::DEFAULT_RESAMPLES;
use crate::present::Presentation;
use crate::results::{self, ItemLog, RESULTS_SCHEMA, ResultFile, SuiteRef};
use crate::score::{Bootstrap, score};
use crate::tasks::{self, Frames, TaskItems, TaskKind, TaskOptions};

/// The git commit physworld was built from (empty when unknown).
pub const GIT_HASH: &str = env!("PHYSWORLD_GIT_HASH");

/// What to score.
#[derive(Debug, Clone)]
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
        let planning = if adapter.launch_planner().is_some() { self.launch.items.len() as u64 } else { 0 }
            + if adapter.push_planner().is_some() { self.push.items.len() as u64 } else { 0 };
        self.items.iter().filter(|(k, _)| adapter.supports(**k)).map(|(_, t)| t.items.len() as u64).sum::<u64>()
            + planning
    }

    fn suite_ref(&self) -> SuiteRef {
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
    let kind = task.kind;
    let shown = Presentation::new(task, seed, ctx.ds.slots());
    // VoE shows four movies per item: tick once per item, not per movie.
    let per_item = (shown.shown.len() / task.items.len().max(1)).max(1);
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
    for (i, p) in protocols.into_iter().enumerate() {
        let t: &(dyn Fn() + Sync) = if i == 0 { &tick_shown } else { &quiet };
        let a = adapter.answer(ctx, kind, &shown.shown, p, t)?;
        if a.len() != shown.shown.len() {
            return Err(BenchError::Mismatch {
                what: format!("model `{}` on task {}", adapter.id(), kind.as_str()),
                reason: format!("{} answers for {} items", a.len(), shown.shown.len()),
            });
        }
        answers.push((p, shown.gather(&a)));
    }
    Ok((shown, answers))
}

/// Score `adapter` on `prep` and write its result file and item log into `out`.
pub fn run(
    prep: &Prepared,
    adapter: &mut dyn Adapter,
    out: &Path,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<PathBuf> {
    let start = Instant::now();
    let ctx = prep.context();
    let b = Bootstrap { seed: prep.opts.bootstrap_seed, resamples: prep.opts.resamples };
    let mut tasks_out = Vec::new();
    let mut unsupported = Vec::new();
    let mut logs: Vec<ItemLog> = Vec::new();
    let id = adapter.id().to_string();
    let mut no_items = Vec::new();
    for (&kind, items) in &prep.items {
        if !adapter.supports(kind) {
            unsupported.push(kind.as_str().to_string());
            continue;
        }
        if items.items.is_empty() {
            no_items.push(kind.as_str().to_string());
            continue;
        }
        progress(Event::Task(&id, kind.as_str(), items.items.len()));
        let tick = || progress(Event::Item);
        let (shown, answers) = answer_shown(adapter, &ctx, items, b.seed, &tick)?;
        let (r, mut l) = score(items, &answers, &prep.frames, &prep.opts.items, b);
        for (i, log) in l.iter_mut().enumerate() {
            let record = shown.record(i);
            log.presentation = (!record.is_null()).then_some(record);
            let raw: Vec<serde_json::Value> =
                shown.shown_ids(i).into_iter().filter_map(|s| adapter.raw_log(s)).collect();
            // One item's exchanges: a VoE quadruplet's are its movies', in member order.
            log.raw = match raw.len() {
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
        }
        tasks_out.push(r);
        logs.extend(l);
    }
    if prep.opts.plan_launch {
        let task = crate::plan::LAUNCH_TASK.to_string();
        match adapter.launch_planner() {
            _ if prep.launch.items.is_empty() => no_items.push(task),
            None => unsupported.push(task),
            Some(mut planner) => {
                progress(Event::Task(&id, crate::plan::LAUNCH_TASK, prep.launch.items.len()));
                let mut tick = |_: &crate::plan::LaunchOutcome, _| progress(Event::Item);
                let played = crate::plan::run_launch(
                    &prep.launch.items,
                    planner.as_mut(),
                    &prep.opts.split,
                    b.seed,
                    prep.opts.plan_attempts,
                    b.resamples,
                    &mut tick,
                )?;
                let (r, l) = crate::plan::score_launch(&prep.launch.items, &played, b);
                tasks_out.push(r);
                logs.extend(l);
            }
        }
    }
    if prep.opts.plan_push {
        let task = crate::plan_push::PUSH_TASK.to_string();
        match adapter.push_planner() {
            _ if prep.push.items.is_empty() => no_items.push(task),
            None => unsupported.push(task),
            Some(mut planner) => {
                progress(Event::Task(&id, crate::plan_push::PUSH_TASK, prep.push.items.len()));
                let mut tick = |_: &crate::plan_push::PushOutcome, _| progress(Event::Item);
                let played = crate::plan_push::run_push(
                    &prep.push.items,
                    planner.as_mut(),
                    &prep.opts.split,
                    b.seed,
                    prep.opts.push_hold,
                    b.resamples,
                    &mut tick,
                )?;
                let (r, l) = crate::plan_push::score_push(&prep.push.items, &played, b);
                tasks_out.push(r);
                logs.extend(l);
            }
        }
    }
    let mut file = ResultFile {
        schema: RESULTS_SCHEMA.into(),
        physworld_version: env!("CARGO_PKG_VERSION").into(),
        git_hash: (!GIT_HASH.is_empty()).then(|| GIT_HASH.to_string()),
        suite: prep.suite_ref(),
        model: adapter.describe(),
        bootstrap_seed: b.seed,
        bootstrap_resamples: b.resamples,
        tasks: tasks_out,
        unsupported,
        no_items,
        items_file: String::new(),
        wall_time_s: start.elapsed().as_secs_f64(),
    };
    results::write(out, &mut file, &logs)
}
