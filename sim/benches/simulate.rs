//! Simulator throughput: episodes/s per family and physics steps/s.
//!
//! `cargo bench -p physworld-sim --bench simulate` (add `--no-default-features` for the
//! fast, non-`enhanced-determinism` mode). Results are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use physworld_sim::{Family, Split, generate, simulate};
use serde_json::{Map, Value};

fn episodes_per_family(c: &mut Criterion) {
    let mut g = c.benchmark_group("episode");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for &name in physworld_sim::families::NAMES {
        let Ok(family) = Family::by_name(name) else { continue };
        // VoE samples hold four episodes.
        let per_sample = if name.starts_with("voe-") { 4 } else { 1 };
        g.throughput(Throughput::Elements(per_sample));
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                black_box(generate(&family, 0, Split::Train, i).ok())
            })
        });
    }
    g.finish();
}

fn physics_steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("steps");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, key, n) in [("drop", "count", 8u32), ("dominoes", "count", 12)] {
        let mut o = Map::new();
        o.insert(key.into(), Value::from(n));
        let Ok(family) = Family::with_overrides(name, &o) else { continue };
        let Ok(sample) = generate(&family, 0, Split::Train, 0) else { continue };
        let steps = sample.episodes[0].physics_steps;
        g.throughput(Throughput::Elements(steps));
        // Re-simulate the same episode's scene through the public API: the families'
        // sampling cost is excluded by timing `generate` with a fixed index.
        g.bench_function(format!("{name}{n}"), |b| b.iter(|| black_box(generate(&family, 0, Split::Train, 0).ok())));
    }
    // A bare scene: one ball falling for 3 s (720 steps), visibility and contacts included.
    let mut scene = physworld_sim::Scene::new(physworld_sim::SimConfig::default());
    scene.statics.push(physworld_sim::families::common::floor(0.5, 0.2));
    scene.objects.push(physworld_sim::ObjectSpec::new(
        "ball",
        physworld_sim::Shape::Sphere { radius: 0.1 },
        physworld_sim::Mass::Kg(1.0),
        [0.0, 1.0, 0.0],
    ));
    g.throughput(Throughput::Elements(720));
    g.bench_function("single_ball", |b| b.iter(|| black_box(simulate(&scene).ok())));
    g.finish();
}

/// What a closed-loop planner pays to look ahead from the middle of a `push` episode: the
/// next 36 frames (1.2 s) from a fork of the simulation at frame 45, against re-simulating
/// the episode from its start to the same frame (what planning cost before forks).
fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let Ok(family) = Family::by_name("push") else { return };
    let Ok(Some(task)) = family.push_task(1, Split::Test) else { return };
    let force = [1.0, 0.0, 0.5];
    let Ok(Ok(mut at45)) = task.start() else { return };
    for _ in 0..45 {
        let _ = at45.advance(force);
    }
    g.bench_function("clone_at_45", |b| b.iter(|| black_box(at45.clone())));
    g.bench_function("fork_at_45_advance_36", |b| {
        b.iter(|| {
            let mut f = at45.clone();
            for _ in 0..36 {
                let _ = f.advance(force);
            }
            black_box(f.frames().len())
        })
    });
    g.bench_function("from_start_advance_81", |b| {
        b.iter(|| {
            let Ok(Ok(mut s)) = task.start() else { return 0 };
            for _ in 0..81 {
                let _ = s.advance(force);
            }
            black_box(s.frames().len())
        })
    });
    g.finish();
}

criterion_group!(benches, episodes_per_family, physics_steps, fork);
criterion_main!(benches);
