//! Rendering throughput (feature `render`): frames/s of RGB + segmentation + depth at 64 and
//! 128 px, and a renderer's start-up.
//!
//! `cargo bench -p physworld-sim --features render --bench render`. On a machine without a
//! GPU this measures Mesa's lavapipe. The bench re-executes itself with the renderer's
//! settings (`render::RUNTIME_ENV`, as the `physworld` binary does) unless the environment
//! sets them: `LP_NUM_THREADS=2 cargo bench ...` measures lavapipe's own rasteriser threads.
//! Results are recorded in BENCHMARKS.md ("Rendering").

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use physworld_sim::render::Renderer;
use physworld_sim::{Family, Split, generate};

fn frames(c: &mut Criterion) {
    // A Kubric-like drop: several objects falling onto the floor, 2 s at 30 fps.
    let family = Family::by_name("drop").expect("drop family");
    let episode = generate(&family, 0, Split::Train, 0).expect("episode").episodes.remove(0);
    let mut g = c.benchmark_group("render");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(episode.frames.len() as u64));
    for px in [64u32, 128] {
        let mut r = Renderer::new(px, px).expect("a Vulkan adapter (lavapipe without a GPU)");
        eprintln!("renderer: {}", r.info().id());
        g.bench_function(format!("episode/{px}px"), |b| {
            b.iter(|| black_box(r.render_episode(&episode).expect("renders")))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("render-startup");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("new/64px", |b| b.iter(|| black_box(Renderer::new(64, 64).expect("renderer"))));
    g.finish();
}

criterion_group!(benches, frames);

/// `criterion_main!`, after re-executing with the settings `physworld render` and
/// `generate --modality pixels` run with.
fn main() {
    let missing: Vec<_> =
        physworld_sim::render::RUNTIME_ENV.iter().filter(|(k, _)| std::env::var_os(k).is_none()).collect();
    #[cfg(unix)]
    if !missing.is_empty() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            // Returns only on failure; the bench then runs with the environment it has.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .envs(missing.iter().map(|(k, v)| (*k, *v)))
                .exec();
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
