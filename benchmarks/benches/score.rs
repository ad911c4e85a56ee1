//! Items scored per second for each adapter kind, on the tiny suite's test split.
//!
//! `cargo bench -p physworld-benchmarks --bench score`. Setup generates the tiny suite and
//! trains a 2-step tiny JEPA in a temporary folder (the JEPA's speed does not depend on how
//! well it is trained); each measurement answers every item of one task.

use std::path::Path;
use std::time::Duration;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group};
use physworld_benchmarks::adapters::{self, Adapter};
use physworld_benchmarks::bench::{BenchOptions, Prepared};
use physworld_benchmarks::tasks::TaskKind;
use physworld_model::{TrainConfig, TrainOptions, train};
use physworld_pipeline::{GenerateOptions, LocalStorage, Suite, generate};

/// The allocator the `physworld` binary uses (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("tiny");
    let suite = Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tiny.toml")).expect("suite");
    generate(&suite, &LocalStorage::new(&data), &GenerateOptions::default()).expect("generates");
    let run = tmp.path().join("run");
    let mut cfg = TrainConfig::preset("tiny").expect("preset");
    cfg.schedule.steps = 2;
    cfg.schedule.warmup_steps = 0;
    train(&TrainOptions {
        data: data.clone(),
        out: run.clone(),
        config: cfg,
        device: Device::Cpu,
        resume: false,
        force: false,
        stop_after: None,
        stop: None,
        on_step: &|_| {},
        on_checkpoint: None,
    })
    .expect("trains");
    let prep = Prepared::new(&data, BenchOptions::default()).expect("prepares");
    let ctx = prep.context();
    let jepa = format!("jepa:{}", run.display());
    let specs =
        ["oracle", "constant-velocity", "chance", "majority", "raw-state", "heuristic:largest-jump", jepa.as_str()];
    let mut g = c.benchmark_group("score");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for spec in specs {
        for task in TaskKind::ALL {
            let probe = adapters::parse(spec).expect("spec");
            if !probe.supports(task) {
                continue;
            }
            let items = &prep.items[&task].items;
            g.throughput(Throughput::Elements(items.len() as u64));
            let name = if spec.starts_with("jepa:") { "jepa" } else { spec };
            g.bench_function(format!("{name}/{}", task.as_str()), |b| {
                b.iter(|| {
                    // A fresh adapter each time: probe adapters cache their features.
                    let mut a: Box<dyn Adapter> = adapters::parse(spec).expect("spec");
                    let p = a.protocols(task);
                    a.answer(&ctx, task, items, p.first().copied(), &|| {}).expect("answers")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);

/// `criterion_main!` under the runtime policy the `physworld` binary's `bench` runs with
/// (`physworld_model::runtime`), so that the figures are the binary's.
fn main() {
    physworld_model::runtime::exec_with_runtime_env();
    physworld_model::runtime::set_warm_workers(true);
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
