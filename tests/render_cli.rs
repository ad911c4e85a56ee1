//! `physworld render` (feature `render`): stills, whole episodes and contact sheets from a
//! dataset, identical bytes on reruns, and clear refusals. CI installs lavapipe, so these
//! run without a GPU and never skip.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bin, ok, snapshot, tiny_dataset};

/// `(width, height, bit depth, colour type)` from a PNG's IHDR chunk.
fn png_header(path: &Path) -> (u32, u32, u8, u8) {
    let b = std::fs::read(path).expect("png written");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20), b[24], b[25])
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn render_writes_stills_episodes_and_contact_sheets_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = tiny_dataset(tmp.path());
    let d = ds.to_str().expect("utf-8");

    // A still of all three passes side by side, 64 px high.
    let still = tmp.path().join("out/still.png");
    let o = ok(bin()
        .args([
            "render",
            "--data",
            d,
            "--episode",
            "0",
            "--frame",
            "5",
            "--pass",
            "all",
            "--size",
            "64",
            "--json",
            "--out",
        ])
        .arg(&still)
        .output()
        .expect("runs"));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["width"], 64);
    assert!(j["renderer"]["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{j}");
    assert_eq!(png_header(&still), (3 * 64 + 4, 64, 8, 2));

    // The whole episode: one PNG per frame and pass, lossless masks and depth.
    let ep = tmp.path().join("ep");
    ok(bin().args(["render", "--data", d, "--episode", "0", "--size", "48", "--out"]).arg(&ep).output().expect("runs"));
    let frames = j["frames"].as_u64().expect("frames") as usize;
    for (pass, depth, color) in [("rgb", 8, 2), ("segmentation", 8, 0), ("depth", 16, 0)] {
        let n = std::fs::read_dir(ep.join(pass)).expect(pass).count();
        assert_eq!(n, frames, "{pass}");
        assert_eq!(png_header(&ep.join(pass).join("000000.png")), (48, 48, depth, color), "{pass}");
    }
    let cam: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ep.join("camera.json")).expect("camera.json")).expect("json");
    let k = &cam["intrinsics"];
    assert_eq!(k[0][2], 24.0);
    assert!(k[0][0].as_f64().expect("fx") > 0.0);
    let (w, h, _, _) = png_header(&ep.join("contact_sheet.png"));
    assert_eq!(h, 3 * (48 + 2));
    assert_eq!(w, 8 * (48 + 2));

    // The same command again, elsewhere: the same bytes.
    let again = tmp.path().join("again");
    ok(bin()
        .args(["render", "--data", d, "--episode", "0", "--size", "48", "--out"])
        .arg(&again)
        .output()
        .expect("runs"));
    let (a, b) = (snapshot(&ep), snapshot(&again));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{} differs between runs", name.display());
    }

    // Refusals name the flag, the value and what is allowed, and leave the output alone.
    let before = snapshot(&ep);
    let cases: [(&[&str], &str); 5] = [
        (&["--episode", "0", "--pass", "normals", "--out", "x.png"], "allowed: rgb, segmentation, depth, all"),
        (&["--episode", "0", "--frame", "9999", "--out", "x.png"], "frame 9999 is out of range"),
        (&["--episode", "999999", "--out", "x.png"], "episode_index"),
        (&["--episode", "0", "--size", "8", "--out", "x.png"], "16..=1024"),
        (&["--episode", "0", "--frame", "1", "--out", "dir"], "only a still"),
    ];
    for (args, want) in cases {
        let o = bin().current_dir(tmp.path()).args(["render", "--data", d]).args(args).output().expect("runs");
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
        assert!(!err(&o).contains("panicked"), "{}", err(&o));
    }
    let o =
        bin().args(["render", "--data", d, "--episode", "1", "--size", "48", "--out"]).arg(&ep).output().expect("runs");
    assert!(err(&o).contains("--force"), "{}", err(&o));
    assert_eq!(snapshot(&ep), before, "a refused render changed its --out");
    ok(bin()
        .args(["render", "--data", d, "--episode", "1", "--size", "48", "--force", "--out"])
        .arg(&ep)
        .output()
        .expect("runs"));
    assert_ne!(snapshot(&ep), before);

    // No Vulkan driver at all: a clear error saying what to install, not a panic.
    let o = bin()
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .args(["render", "--data", d, "--episode", "0", "--out"])
        .arg(tmp.path().join("none.png"))
        .output()
        .expect("runs");
    assert!(!o.status.success());
    assert!(err(&o).contains("mesa-vulkan-drivers") && err(&o).contains("--modality state"), "{}", err(&o));
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
}

/// A small suite with an occluded VoE family and a drop family, few samples.
const PIXEL_SUITE: &str = "[suite]\nname = \"pixels\"\nseed = 3\nsamples_per_file = 2\nmax_objects = 6\n\n\
[splits]\ntrain = 2\nval = 0\nreadout = 0\ntest = 1\n\n\
[[family]]\nname = \"drop\"\nparams = { count = [2, 3], duration_s = 1.0 }\n\n\
[[family]]\nname = \"voe-permanence\"\nparams = { duration_s = 2.0 }\n";

#[test]
fn generate_with_pixels_writes_frames_that_datasets_decodes_and_never_mixes_renderers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let suite = tmp.path().join("pixels.toml");
    std::fs::write(&suite, PIXEL_SUITE).expect("suite");
    let generate = |out: &Path, extra: &[&str]| {
        bin()
            .args(["generate", "--json", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .expect("runs")
    };
    let a = tmp.path().join("a");
    let o = ok(generate(&a, &["--modality", "pixels", "--resolution", "32"]));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("meta/info.json")).expect("info")).expect("json");
    let px = &info["pixels"];
    assert_eq!(px["resolution"], 32);
    assert!(px["renderer"].as_str().is_some_and(|r| r.contains("bevy-0.19.1")), "{px}");
    // One pixels row per frame, listed with its hash like every other file.
    let pixel_files: Vec<&serde_json::Value> = info["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["path"].as_str().is_some_and(|p| p.starts_with("pixels/")))
        .collect();
    assert!(!pixel_files.is_empty());
    let rows: u64 = pixel_files.iter().map(|f| f["rows"].as_u64().expect("rows")).sum();
    assert_eq!(rows, report["frames"].as_u64().expect("frames"));
    let t = &report["stage_seconds"];
    assert!(["simulate", "render", "write"].iter().all(|k| t[k].as_f64().is_some_and(|s| s > 0.0)), "{report}");
    let card = std::fs::read_to_string(a.join("README.md")).expect("card");
    assert!(card.contains("config_name: pixels") && card.contains("dtype: image"), "{card}");

    // The same suite again, on one thread: the same bytes.
    let b = tmp.path().join("b");
    ok(generate(&b, &["--modality", "pixels", "--resolution", "32", "--threads", "1"]));
    assert!(snapshot(&a) == snapshot(&b), "pixel datasets differ between runs");

    // Hugging Face `datasets` decodes the images; pyarrow reads the PNGs.
    let python = std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_pixels.py");
    let o = std::process::Command::new(&python).arg(&script).arg(&a).arg("32").output().expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{python} {}: {out}\n{}", script.display(), err(&o));
    assert!(out.contains("all checks passed"), "{out}");

    // A states-only dataset resumed with pixels renders every shard (none is kept as
    // finished), and matches one generated with pixels from the start.
    let c = tmp.path().join("c");
    ok(generate(&c, &[]));
    assert!(!c.join("pixels").exists());
    let o = ok(generate(&c, &["--modality", "pixels", "--resolution", "32", "--resume"]));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["shards_skipped"], 0);
    assert!(snapshot(&c) == snapshot(&a), "resumed with pixels differs from pixels from the start");

    // Shards drawn by two renderers (or modalities) never finalise into one dataset.
    let manifest =
        std::fs::read_dir(a.join("meta/shards")).expect("shards").next().expect("a shard").expect("entry").path();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    m["pixels"]["renderer"] = "NVIDIA H200 / nvidia 560 / Vulkan / bevy-0.19.1".into();
    std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("write");
    let before = snapshot(&a);
    let o = bin().args(["finalize", "--data"]).arg(&a).output().expect("runs");
    assert!(!o.status.success());
    assert!(
        err(&o).contains("NVIDIA H200") && err(&o).contains("one modality, resolution and renderer"),
        "{}",
        err(&o)
    );
    assert!(snapshot(&a) == before, "a refused finalize wrote");

    // Bad resolutions are refused by name.
    let o = generate(&tmp.path().join("d"), &["--modality", "pixels", "--resolution", "4"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("--resolution") && err(&o).contains("16..=256"), "{}", err(&o));
}

#[test]
fn a_signal_stops_pixel_generation_between_episodes_and_resume_gives_the_same_bytes() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().expect("tmp");
    let suite = tmp.path().join("long.toml");
    // One shard of 40 samples: minutes of rendering if a signal waited for the shard.
    std::fs::write(
        &suite,
        "[suite]\nname = \"long\"\nseed = 4\nsamples_per_file = 40\n\n[splits]\ntrain = 40\nval = 0\n\
         readout = 0\ntest = 0\n\n[[family]]\nname = \"drop\"\nparams = { count = [2, 3], duration_s = 1.0 }\n",
    )
    .expect("suite");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let args = |out: &Path| {
        [
            "generate",
            "--threads",
            "1",
            "--modality",
            "pixels",
            "--resolution",
            "16",
            "--suite",
            &s(&suite),
            "--out",
            &s(out),
        ]
        .map(String::from)
    };
    let staged = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d.join("pixels"))
            .map(|r| r.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    // The uninterrupted run, and how long its rendering took.
    let whole = tmp.path().join("whole");
    let o = ok(bin().args(args(&whole)).arg("--json").output().expect("runs"));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let render = Duration::from_secs_f64(report["stage_seconds"]["render"].as_f64().expect("render seconds"));

    let cut = tmp.path().join("cut");
    let child = bin().args(args(&cut)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawns");
    // The pixels file is staged as rendering starts; a few episodes later, the signal.
    let start = Instant::now();
    while staged(&cut).is_empty() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = staged(&cut);
    assert!(!seen.is_empty() && seen.iter().all(|f| f.starts_with(".tmp-train-00000")), "{seen:?}");
    std::thread::sleep(render / 10);
    let signalled = Instant::now();
    let o = Command::new("kill").args(["-TERM", &child.id().to_string()]).output().expect("kill runs");
    assert!(o.status.success());
    let o = child.wait_with_output().expect("ends");
    let stopped_in = signalled.elapsed();
    let e = err(&o);
    assert_eq!(o.status.code(), Some(130), "{e}");
    assert!(e.contains("--resume") && !e.contains("panicked"), "{e}");
    // Stopped within an episode's rendering, not the rest of the shard's (9/10 of `render`);
    // no staged file or manifest left.
    assert!(stopped_in < render / 2, "stopped {stopped_in:?} after the signal; the shard renders in {render:?}");
    assert_eq!(staged(&cut), Vec::<String>::new());
    assert!(!cut.join("meta/shards/train-00000-of-00001.json").exists());

    ok(bin().args(args(&cut)).arg("--resume").output().expect("runs"));
    assert!(snapshot(&cut) == snapshot(&whole), "the resumed pixel dataset differs from an uninterrupted one");
}
