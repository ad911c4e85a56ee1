//! What a rayon fork-join costs after the calling thread has run serially for a while:
//! the wake-up latency that `runtime::with_warm_workers` avoids (BENCHMARKS.md, "Warm
//! workers"). For each gap, 300 joins of a trivial job (two chunks of 4096 square roots),
//! each after spinning the gap on the calling thread; median and 90th percentile.
//!
//! `cargo run --release -p physworld-model --example fork_join_latency`

use std::time::{Duration, Instant};

use rayon::prelude::*;

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() {
    let mut v = vec![1f32; 2 * 4096];
    for gap_us in [0u64, 20, 50, 100, 200, 500, 1000, 5000] {
        let mut lat: Vec<f64> = (0..300)
            .map(|_| {
                spin(Duration::from_micros(gap_us));
                let t = Instant::now();
                v.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|x| *x = x.sqrt()));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        println!("gap {gap_us:5} µs: fork-join median {:.1} µs, p90 {:.1} µs", lat[150], lat[270]);
    }
}
