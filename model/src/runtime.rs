//! Process-level policy for the CPU runtime, all of it opt-in: the library never changes
//! the process on its own; a program chooses what it wants (the `physworld` binary takes
//! all of it for the commands that run models).
//!
//! - [`exec_with_runtime_env`]: re-execute with [`RUNTIME_ENV`] set ([`exec_with_env`]
//!   for another set, e.g. the renderer's).
//! - [`set_warm_workers`]: keep rayon's workers spinning during training steps and
//!   inference ([`with_warm_workers`]); off unless a program turns it on.
//!
//! The environment settings are read from the environment once, at
//! start-up (mimalloc's before the first allocation, Candle's at its first parallel op),
//! and the workspace forbids the `unsafe` that setting an environment variable from a
//! running Rust program takes; so a program that wants them re-executes itself with them
//! set ([`exec_with_runtime_env`]): the `physworld` binary does for the commands that run
//! models (`train`, `probe`, `bench`, `demo`), as do the model benches and the
//! `step_phases` example.

/// The settings, each applied only where the environment does not already set it:
/// - `CANDLE_NUM_THREADS=1`: Candle's elementwise ops over 64 Ki elements (residual adds,
///   the sum into every gradient buffer during backward) hand their work to Candle's own
///   thread pool, whose workers then spin for about a millisecond waiting for the next op,
///   on the same cores as the rayon threads that run the matrix products and our fused
///   kernels. With one thread those ops run on the calling thread and nothing spins.
/// - `MIMALLOC_PURGE_DELAY=-1`: mimalloc keeps the pages a step freed for the next step
///   instead of returning them to the kernel after its purge delay (1 s), which would then
///   zero them again on first touch. The resident set stays at its peak.
///
/// Measured in BENCHMARKS.md ("Runtime settings and allocator"): on 2 cores the pool setting takes 8% off a
/// tiny training step, and the two together 23-27% off a small one.
pub const RUNTIME_ENV: [(&str, &str); 2] = [("CANDLE_NUM_THREADS", "1"), ("MIMALLOC_PURGE_DELAY", "-1")];

/// Names the re-execution set (comma-separated), so that programs this one starts can be
/// given the environment the user gave it ([`remove_injected_env`]).
pub const INJECTED_VAR: &str = "PHYSWORLD_RUNTIME_ENV";

/// The [`RUNTIME_ENV`] variables the environment does not set.
pub fn missing_runtime_env() -> Vec<(&'static str, &'static str)> {
    missing(&RUNTIME_ENV)
}

fn missing(vars: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    vars.iter().copied().filter(|(k, _)| std::env::var_os(k).is_none()).collect()
}

/// Replace this process by the same program, arguments and environment plus the
/// [`RUNTIME_ENV`] variables it lacks (Unix `exec`: same process id, stdio, exit status
/// and signals), recording their names in [`INJECTED_VAR`]. Returns only when nothing
/// was missing, on other platforms, or when the `exec` failed (the program then runs on
/// as it is: slower, not wrong). Call it before any work.
pub fn exec_with_runtime_env() {
    exec_with_env(&RUNTIME_ENV)
}

/// [`exec_with_runtime_env`] for another set of variables: re-execute with those of `vars`
/// the environment does not set (recorded in [`INJECTED_VAR`]), or return when none is
/// missing. The `physworld` binary passes the renderer's settings
/// (`physworld_sim::render::RUNTIME_ENV`) for the commands that render.
pub fn exec_with_env(vars: &[(&'static str, &'static str)]) {
    let missing = missing(vars);
    if missing.is_empty() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else { return };
        let names: Vec<&str> = missing.iter().map(|(k, _)| *k).collect();
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        cmd.args(args).envs(missing).env(INJECTED_VAR, names.join(","));
        // Returns only on failure.
        let _ = cmd.exec();
    }
}

/// Give a child process the environment the user gave this one: remove the variables
/// [`exec_with_runtime_env`] added (and its record of them), so that a model run as a
/// subprocess (`physworld bench` with `process:`) is measured under its own settings.
pub fn remove_injected_env(cmd: &mut std::process::Command) {
    let Some(names) = std::env::var_os(INJECTED_VAR) else { return };
    for name in names.to_string_lossy().split(',').filter(|n| !n.is_empty()) {
        cmd.env_remove(name);
    }
    cmd.env_remove(INJECTED_VAR);
}

/// Whether the model's training steps and inference keep rayon's workers warm
/// ([`set_warm_workers`]).
static WARM_WORKERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn on (or off) warm workers for this process's training steps and inference: each
/// step and inference call then runs under [`with_warm_workers`]. Off by default, so that
/// a program embedding the library keeps its thread pool to itself; the `physworld`
/// binary turns it on for the commands that run models. Results are the same either way.
pub fn set_warm_workers(on: bool) {
    WARM_WORKERS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// [`with_warm_workers`] when [`set_warm_workers`] turned it on, else `f()`.
pub fn warm_if_enabled<R>(f: impl FnOnce() -> R) -> R {
    if WARM_WORKERS.load(std::sync::atomic::Ordering::Relaxed) { with_warm_workers(f) } else { f() }
}

/// Run `f` on the calling thread while rayon's worker threads wait for its parallel work
/// spinning rather than asleep.
///
/// Between two parallel operations of a training step the calling thread runs Candle's
/// serial work (allocations, residual adds, graph bookkeeping). Rayon's idle workers
/// yield 32 times and then sleep, and waking a sleeping thread costs 20-90 µs on a VM
/// (BENCHMARKS.md, "Warm workers"), at each of the step's hundreds of fork-joins. Here
/// one job per worker ([`rayon::spawn_broadcast`]) takes the pool's work as it comes
/// ([`rayon::yield_now`]) and yields the core to the operating system when there is
/// none, until `f` returns (or unwinds). Nothing about the results changes: the work
/// is split the same way, only picked up sooner.
///
/// From inside the pool `f` just runs: a spinner queued behind the caller's own work
/// could be taken by the caller and never let it resume. So it does when the calling
/// thread is already inside `with_warm_workers` (the model's inference methods use it
/// when [`set_warm_workers`] is on, and call one another): the workers are already
/// spinning for it.
///
/// A spinner never spins inside another one. A spinner whose scope has just ended can,
/// before it sees its flag, take a job of the next scope's work from the pool; that job
/// may wait on a join and, while waiting, take the next scope's spinner from the same
/// worker's queue. Spinning there would hold the join under it until the next scope ends,
/// which waits on that join: a deadlock at 100% CPU (seen twice in about twenty `train`
/// runs on 2 cores, at a random step: a worker's stack held a spinner inside a join inside
/// a spinner). A nested spinner returns at once.
pub fn with_warm_workers<R>(f: impl FnOnce() -> R) -> R {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    thread_local! {
        static WARM: Cell<bool> = const { Cell::new(false) };
        static SPINNING: Cell<bool> = const { Cell::new(false) };
    }
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
            WARM.with(|w| w.set(false));
        }
    }
    if WARM.with(Cell::get) || rayon::current_thread_index().is_some() || rayon::current_num_threads() < 2 {
        return f();
    }
    WARM.with(|w| w.set(true));
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let flag = Arc::clone(&stop.0);
    rayon::spawn_broadcast(move |_| {
        if SPINNING.with(Cell::get) {
            return;
        }
        SPINNING.with(|s| s.set(true));
        while !flag.load(Ordering::Acquire) {
            if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                std::thread::yield_now();
            }
        }
        SPINNING.with(|s| s.set(false));
    });
    f()
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::{set_warm_workers, warm_if_enabled, with_warm_workers};

    fn par_sum(n: u64) -> u64 {
        (0..n).into_par_iter().map(|i| i * i).sum()
    }

    /// The parallel work inside runs and gives the plain result, from outside the pool,
    /// again right after (the previous spinners stopping), and from inside the pool,
    /// where it must not wait on a spinner queued behind the caller.
    #[test]
    fn warm_workers_run_the_work_from_outside_and_inside_the_pool() {
        let want = par_sum(100_000);
        for _ in 0..3 {
            assert_eq!(with_warm_workers(|| par_sum(100_000)), want);
        }
        let inside: Vec<u64> = (0..4u64).into_par_iter().map(|_| with_warm_workers(|| par_sum(100_000))).collect();
        assert_eq!(inside, vec![want; 4]);
        // Nested on the calling thread: the inner call runs under the outer one's spinners.
        assert_eq!(with_warm_workers(|| with_warm_workers(|| par_sum(100_000)) + par_sum(10)), want + par_sum(10));
    }

    /// The opt-in switch changes how work is waited for, never what it computes.
    #[test]
    fn warm_if_enabled_gives_the_same_result_on_and_off() {
        let want = par_sum(50_000);
        for on in [true, false] {
            set_warm_workers(on);
            assert_eq!(warm_if_enabled(|| par_sum(50_000)), want);
        }
    }

    /// A panic in the step reaches the caller, and the pool still serves work after it.
    #[test]
    fn warm_workers_let_a_panic_through() {
        let caught = std::panic::catch_unwind(|| with_warm_workers(|| -> u64 { panic!("step failed") }));
        assert!(caught.is_err());
        assert_eq!(with_warm_workers(|| par_sum(1000)), par_sum(1000));
    }
}
