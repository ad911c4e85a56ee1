//! Process-wide settings of the CPU runtime. Both are read from the environment once, at
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
/// Measured in BENCHMARKS.md ("Third round"): on 2 cores the pool setting takes 8% off a
/// tiny training step, and the two together 23-27% off a small one.
pub const RUNTIME_ENV: [(&str, &str); 2] = [("CANDLE_NUM_THREADS", "1"), ("MIMALLOC_PURGE_DELAY", "-1")];

/// Names the re-execution set (comma-separated), so that programs this one starts can be
/// given the environment the user gave it ([`remove_injected_env`]).
pub const INJECTED_VAR: &str = "PHYSWORLD_RUNTIME_ENV";

/// The [`RUNTIME_ENV`] variables the environment does not set.
pub fn missing_runtime_env() -> Vec<(&'static str, &'static str)> {
    RUNTIME_ENV.iter().copied().filter(|(k, _)| std::env::var_os(k).is_none()).collect()
}

/// Replace this process by the same program, arguments and environment plus the
/// [`RUNTIME_ENV`] variables it lacks (Unix `exec`: same process id, stdio, exit status
/// and signals), recording their names in [`INJECTED_VAR`]. Returns only when nothing
/// was missing, on other platforms, or when the `exec` failed (the program then runs on
/// as it is: slower, not wrong). Call it before any work.
pub fn exec_with_runtime_env() {
    let missing = missing_runtime_env();
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
