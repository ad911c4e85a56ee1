//! The Python reference (`benchmarks/compare/jepa_reference.py`, NumPy backend) reproduces
//! the model's encoder, target encoder, predictor and loss from the checkpoint's weights,
//! and flags an output that is off. The interpreter is `$PHYSWORLD_PYTHON` (set by
//! `.ci/run` to a venv with NumPy).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use physworld_model::{Batch, LossConfig, ModelConfig, Normalizer, WorldModel, reference, synthetic_windows};

fn run_reference(dir: &Path) -> (bool, serde_json::Value, String) {
    let python = std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/compare/jepa_reference.py");
    let o = Command::new(&python).arg(&script).arg(dir).output().expect("python runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("a JSON report; stderr: {stderr}"));
    (o.status.success(), report, stderr)
}

#[test]
fn the_python_reference_reproduces_encoder_predictor_and_loss_from_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    // With scene tokens, so that the reference covers that path too.
    let cfg = ModelConfig { scene: true, scene_encoder: true, ..ModelConfig::preset("tiny").expect("preset") };
    let model = WorldModel::new(&cfg, 7, &Device::Cpu).expect("model");
    // Online and target encoders differ, as after training: one EMA step towards a
    // perturbed online encoder would do, but a different seed for the target is simpler.
    let other = WorldModel::new(&cfg, 8, &Device::Cpu).expect("model");
    for (k, t) in &model.vars.target {
        t.set(other.vars.online[k].as_tensor()).expect("set");
    }
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    // Windows with scenes of different sizes (padded), one without.
    let mut windows = synthetic_windows(4, 16, 12);
    for (i, w) in windows.iter_mut().enumerate() {
        w.scene = (0..i)
            .map(|k| physworld_pipeline::SceneBox {
                kind: (k * 3 % 7) as u8,
                position: [k as f32 * 0.4 - 0.5, 0.3, 0.2 * i as f32],
                rotation: [0.0, (0.1 * k as f32).sin(), 0.0, (0.1 * k as f32).cos()],
                half_extents: [0.05 + 0.3 * k as f32, 0.5, 0.2],
            })
            .collect();
    }
    let batch = Batch::new(&windows, &norm, &Device::Cpu).expect("batch");
    assert!(batch.scene.is_some());
    reference::export_reference(tmp.path(), &model, &cfg, &LossConfig::default(), &batch, 8).expect("export");
    let (ok, report, stderr) = run_reference(tmp.path());
    assert!(ok, "{report:#}\n{stderr}");
    for k in ["encoder", "target", "predict"] {
        let d = report["check"][k]["max_abs"].as_f64().expect("max_abs");
        assert!(d < 1e-5, "{k}: {d}");
        assert!(report["check"][k]["ref_max"].as_f64().expect("ref") > 0.1, "{k} is not trivially zero");
    }
    assert!(report["check"]["loss_total"]["rel"].as_f64().expect("rel") < 1e-5, "{report:#}");

    // An output off by 1e-3 in one place is caught.
    let path = tmp.path().join("batch.safetensors");
    let mut data: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu).expect("load");
    let enc = data["encoder"].clone();
    let mut delta = vec![0f32; enc.elem_count()];
    delta[5] = 1e-3;
    let bump = Tensor::from_vec(delta, enc.dims(), &Device::Cpu).expect("bump");
    data.insert("encoder".into(), (enc + bump).expect("add"));
    candle_core::safetensors::save(&data, &path).expect("save");
    let (ok, report, _) = run_reference(tmp.path());
    assert!(!ok, "a wrong encoder output passed: {report:#}");
    assert_eq!(report["matches"], false);
}
