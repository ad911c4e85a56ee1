//! Reading back: episodes by index match the simulator, windows are seeded, stats are
//! train-only.

mod common;

use common::{run, small_suite};
use physworld_pipeline::{Dataset, Layout, WindowSpec, WorkerShard};
use physworld_sim::generate;

#[test]
fn episodes_read_back_exactly_as_simulated() {
    let suite = small_suite();
    let d = tempfile::tempdir().expect("tmp");
    run(&suite, d.path(), WorkerShard::ALL, false, 2).expect("generates");
    let ds = Dataset::open(d.path()).expect("opens");
    // The folder holds this suite, not another one, and a missing folder holds none.
    assert!(Dataset::holds(d.path(), &suite));
    let mut other = suite.clone();
    other.suite.seed += 1;
    assert!(!Dataset::holds(d.path(), &other));
    assert!(!Dataset::holds(&d.path().join("none"), &suite));
    let layout = Layout::new(&suite).expect("layout");
    assert_eq!(ds.episodes().len() as u64, layout.splits.iter().map(|s| s.episodes).sum::<u64>());
    // Indices are 0..N in order, with no gaps.
    for (i, e) in ds.episodes().iter().enumerate() {
        assert_eq!(e.episode_index, i as u64);
    }
    // Val sample 2 is a VoE quadruplet (family 2 of 3): four consecutive episodes.
    let val: Vec<_> = ds.split("val").collect();
    let quad: Vec<_> = val.iter().filter(|e| e.sample_index == 2).collect();
    assert_eq!(quad.len(), 4);
    assert!(quad.iter().all(|e| e.family == "voe-permanence"));
    assert_eq!(quad.iter().map(|e| e.possible).collect::<Vec<_>>(), [Some(true), Some(true), Some(false), Some(false)]);
    // Compare one episode's frames with a fresh simulation.
    let e = val.iter().find(|e| e.sample_index == 0).expect("sample 0");
    let sim = generate(layout.family_of(0), 5, physworld_sim::Split::Val, 0).expect("simulates");
    let frames = ds.episode(e.episode_index).expect("reads");
    let want = &sim.episodes[0];
    assert_eq!(frames.frames, want.frames.len());
    let s = ds.slots();
    for (t, f) in want.frames.iter().enumerate() {
        for (o, st) in f.objects.iter().enumerate() {
            assert_eq!(&frames.position[(t * s + o) * 3..(t * s + o) * 3 + 3], &st.position);
            assert_eq!(frames.present[t * s + o], st.present);
            assert_eq!(frames.visible[t * s + o], st.visible);
        }
        assert!(!frames.present[t * s + f.objects.len()], "padding slots are absent");
    }
    assert_eq!(e.contact, want.labels.contact.map(|c| c.occurred));
    assert_eq!(e.mass[0], want.objects[0].mass);
    // Push episodes carry actions.
    let push = ds.split("train").find(|e| e.family == "push").expect("push");
    let f = ds.episode(push.episode_index).expect("reads");
    assert!(f.has_action[..f.frames - 1].iter().all(|a| *a) && !f.has_action[f.frames - 1]);
}

#[test]
fn windows_are_seeded_complete_and_bounded() {
    let d = tempfile::tempdir().expect("tmp");
    run(&small_suite(), d.path(), WorkerShard::ALL, false, 2).expect("generates");
    let ds = Dataset::open(d.path()).expect("opens");
    let spec = WindowSpec { context: 4, future: 4, stride: 5, shuffle_buffer: 16, prefetch: 4, lead_in: false };
    let ids = |seed| -> Vec<(u64, usize)> {
        ds.windows("train", spec, seed).map(|w| w.map(|w| (w.episode_index, w.start)).expect("window")).collect()
    };
    let (a, b, c) = (ids(1), ids(1), ids(2));
    assert_eq!(a, b, "same seed, same order");
    assert_ne!(a, c, "another seed, another order");
    let expected: usize = ds.split("train").map(|e| (e.num_frames as usize - 8) / 5 + 1).sum();
    assert_eq!(a.len(), expected, "every window exactly once");
    let mut sorted = a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), a.len());
    // A window holds context + future frames of its episode.
    let w = ds.windows("train", spec, 3).next().expect("one").expect("ok");
    let full = ds.episode(w.episode_index).expect("episode");
    assert_eq!(w, full.slice(w.start, 8));
    // With lead-in, each episode also gives windows that start before it, its first frame
    // held still for context - 1, context - 1 - stride, ... frames: here 3 (context 4,
    // stride 5), so one more window per episode, whose context is frame 0 four times.
    let lead = WindowSpec { lead_in: true, ..spec };
    let windows: Vec<_> = ds.windows("train", lead, 1).map(|w| w.expect("window")).collect();
    assert_eq!(windows.len(), expected + ds.split("train").count());
    // Each episode's windows that start at its frame 0: the plain one and the lead-in.
    let mut first: std::collections::BTreeMap<u64, Vec<_>> = std::collections::BTreeMap::new();
    for w in windows.iter().filter(|w| w.start == 0) {
        first.entry(w.episode_index).or_default().push(w);
    }
    assert_eq!(first.len(), ds.split("train").count());
    for (ep, ws) in first {
        let full = ds.episode(ep).expect("episode");
        let (plain, lead) = (full.slice(0, 8), full.lead_in(3, 8));
        assert_eq!(ws.len(), 2, "episode {ep}");
        assert!(ws.contains(&&plain) && ws.contains(&&lead), "episode {ep}");
        let s = lead.slots;
        for t in 0..4 {
            assert_eq!(lead.position[t * s * 3..(t + 1) * s * 3], full.position[..s * 3], "frame {t} holds frame 0");
        }
        assert_eq!(lead.position[4 * s * 3..], full.position[s * 3..5 * s * 3], "then the episode runs");
        assert!(lead.has_action[..3].iter().all(|a| !a), "held frames carry no action");
        let still = |v: &[f32]| v[..3 * s * 3].iter().all(|x| *x == 0.0);
        assert!(still(&lead.linvel) && still(&lead.angvel), "held frames are at rest");
    }
    // Dropping a stream early does not hang.
    let mut s = ds.windows("train", spec, 4);
    let _ = s.next();
    drop(s);
}

#[test]
fn stats_come_from_train_only() {
    let d = tempfile::tempdir().expect("tmp");
    run(&small_suite(), d.path(), WorkerShard::ALL, false, 2).expect("generates");
    let ds = Dataset::open(d.path()).expect("opens");
    // Count present object-frames in train by reading it back.
    let mut present = 0u64;
    let mut ys = Vec::new();
    for e in ds.split("train") {
        let f = ds.episode(e.episode_index).expect("reads");
        for (k, p) in f.present.iter().enumerate() {
            if *p {
                present += 1;
                ys.push(f.position[k * 3 + 1] as f64);
            }
        }
    }
    let pos = &ds.stats["object.position"];
    assert_eq!(pos.count, vec![present; 3]);
    let mean_y = ys.iter().sum::<f64>() / ys.len() as f64;
    assert!((pos.mean[1] - mean_y).abs() < 1e-9, "{} vs {mean_y}", pos.mean[1]);
    let max_y = ys.iter().cloned().fold(f64::MIN, f64::max) as f32;
    assert_eq!(pos.max[1], max_y);
    // q01 <= mean <= q99, within half a histogram bin of the data's range.
    assert!(pos.q01[1] <= pos.mean[1] as f32 && pos.mean[1] as f32 <= pos.q99[1]);
    assert!(ds.info.splits["train"].episodes > 0 && ds.info.total_episodes > ds.info.splits["train"].episodes);
    // The hidden test seed is redacted from info.json.
    let hidden = ds.info.suite["splits"]
        .as_array()
        .expect("splits")
        .iter()
        .find(|s| s["name"] == "hidden_test")
        .expect("hidden");
    assert_eq!(hidden["seed"], "redacted");
}
