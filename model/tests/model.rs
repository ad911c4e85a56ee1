//! Correctness of the model pieces: gradients reach every variable, EMA follows its
//! formula, checkpoints round-trip, config errors name the field.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use physworld_model::{
    Batch, LossConfig, ModelConfig, Normalizer, Objective, ShapeInput, TrainConfig, WorldModel, add_vec, attention,
    attention_composed, gelu, layer_norm_composed, layer_norm_plain, linalg, mul_vec, softmax_composed, softmax_last,
};
use physworld_pipeline::{EpisodeFrames, SceneBox};

fn tiny(objective: Objective) -> ModelConfig {
    // With scene tokens: the batch has scenes, so every test covers that path too.
    ModelConfig { objective, scene: true, scene_encoder: true, ..ModelConfig::preset("tiny").expect("preset") }
}

/// A synthetic batch: 3 windows of 6 frames, 4 slots, one slot absent, one invisible.
fn batch() -> Batch {
    let (windows, norm) = windows();
    Batch::new(&windows, &norm, &Device::Cpu).expect("batch")
}

/// The windows of [`batch`] and their normaliser.
fn windows() -> (Vec<EpisodeFrames>, Normalizer) {
    let (t, s) = (6usize, 4usize);
    let mut windows = Vec::new();
    for w in 0..3u64 {
        let mut f = EpisodeFrames {
            episode_index: w,
            start: 0,
            frames: t,
            slots: s,
            present: vec![true; t * s],
            visible: vec![true; t * s],
            position: Vec::new(),
            rotation: Vec::new(),
            linvel: Vec::new(),
            angvel: Vec::new(),
            size: vec![0.1; t * s * 3],
            shape: vec![1; t * s],
            action: vec![0.5; t * 3],
            has_action: vec![true; t],
            scene: Vec::new(),
        };
        for k in 0..t * s {
            let x = (k as f32 * 0.37 + w as f32).sin();
            f.position.extend([x, 0.2 + 0.1 * x, -x]);
            f.rotation.extend([0.0, 0.0, 0.0, 1.0]);
            f.linvel.extend([x * 0.5, -0.1, 0.0]);
            f.angvel.extend([0.0, x, 0.0]);
        }
        for fr in 0..t {
            f.present[fr * s + 3] = false;
            f.visible[fr * s + 2] = fr % 2 == 0;
        }
        // Scenes of two boxes, one box and none: padded to two.
        let floor = SceneBox {
            kind: 0,
            position: [0.0, -0.05, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            half_extents: [5.0, 0.05, 5.0],
        };
        let wall = SceneBox {
            kind: 1,
            position: [1.0, 0.5, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            half_extents: [0.05, 0.5, 1.0],
        };
        f.scene = match w {
            0 => vec![floor, wall],
            1 => vec![wall],
            _ => Vec::new(),
        };
        windows.push(f);
    }
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    (windows, norm)
}

/// With `scene_encoder = false` only the predictor reads the scene: the representations
/// (and so the targets) are the objects' alone, exactly as without a scene, while the
/// prediction of a window with boxes changes with them.
#[test]
fn a_predictor_only_scene_leaves_the_representations_alone_and_reaches_the_prediction() {
    let cfg = ModelConfig { scene: true, scene_encoder: false, ..ModelConfig::preset("tiny").expect("preset") };
    let model = WorldModel::new(&cfg, 3, &Device::Cpu).expect("model");
    let b = batch();
    let mut blind = b.clone();
    blind.scene = None;
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b).expect("sub").abs().expect("abs").max_all().expect("max").to_scalar().expect("scalar")
    };
    assert_eq!(diff(&model.encode(&b).expect("encode"), &model.encode(&blind).expect("encode")), 0.0);
    let (tc, tf) = (4, 2);
    let valid = b.valid.narrow(1, 0, tc).expect("valid");
    let ctx = model.encoder.forward(&b.obs.narrow(1, 0, tc).expect("obs"), &valid, b.scene.as_ref(), 0).expect("ctx");
    let with = model.predictor.forward(&ctx, &valid, &b.actions, b.scene.as_ref(), tf).expect("predict");
    let without = model.predictor.forward(&ctx, &valid, &b.actions, None, tf).expect("predict");
    assert!(
        diff(&with.get(0).expect("w0"), &without.get(0).expect("w0")) > 1e-3,
        "the scene does not reach the predictor"
    );
    assert!(diff(&with.get(2).expect("w2"), &without.get(2).expect("w2")) < 1e-5, "window 2 has no box");
}

#[test]
fn the_scene_reaches_the_object_tokens_and_its_padding_does_not() {
    let cfg = ModelConfig { scene: true, scene_encoder: true, ..ModelConfig::preset("tiny").expect("preset") };
    let model = WorldModel::new(&cfg, 3, &Device::Cpu).expect("model");
    let (wins, norm) = windows();
    let b = Batch::new(&wins, &norm, &Device::Cpu).expect("batch");
    let scene = b.scene.as_ref().expect("scene tokens");
    assert_eq!(scene.tokens.dims(), &[3, 2, physworld_model::SCENE_DIM]);
    let rows = |t: &Tensor, i: usize| -> Vec<f32> {
        t.get(i).expect("row").flatten_all().expect("flat").to_vec1().expect("vec")
    };
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let with = model.encode(&b).expect("encode");
    let mut blind = b.clone();
    blind.scene = None;
    let without = model.encode(&blind).expect("encode");
    // Window 0 has a floor and a wall: its objects' representations depend on them.
    assert!(max_diff(&rows(&with, 0), &rows(&without, 0)) > 1e-3, "the scene does not reach the objects");
    // Window 2 has no box (two padded slots): as if the batch had no scene.
    assert!(max_diff(&rows(&with, 2), &rows(&without, 2)) < 1e-5, "padded boxes are attended to");
    // Window 1's one box padded to two equals window 1 alone, unpadded.
    let alone = Batch::new(&wins[1..2], &norm, &Device::Cpu).expect("batch");
    assert_eq!(alone.scene.as_ref().map(|s| s.tokens.dims()[1]), Some(1));
    let alone = model.encode(&alone).expect("encode");
    assert!(max_diff(&rows(&with, 1), &rows(&alone, 0)) < 1e-5, "padding changed a window's representation");
    // The predictor reads the scene too, with the same context: a window with boxes
    // predicts differently with and without them, a window without is unchanged.
    let (tc, tf) = (4, 2);
    let ctx = model
        .encoder
        .forward(&b.obs.narrow(1, 0, tc).expect("obs"), &b.valid.narrow(1, 0, tc).expect("valid"), b.scene.as_ref(), 0)
        .expect("ctx");
    let predict = |scene| {
        model
            .predictor
            .forward(&ctx, &b.valid.narrow(1, 0, tc).expect("valid"), &b.actions, scene, tf)
            .expect("predict")
    };
    let (p_with, p_without) = (predict(b.scene.as_ref()), predict(None));
    assert!(max_diff(&rows(&p_with, 0), &rows(&p_without, 0)) > 1e-3, "the scene does not reach the predictor");
    assert!(max_diff(&rows(&p_with, 2), &rows(&p_without, 2)) < 1e-5, "the predictor attends to padded boxes");
    assert!(model.vars.predictor.keys().any(|k| k.starts_with("scene_input")));
    // A config written before scenes existed loads without them and ignores a batch's scene.
    // Every preset observes it, in the predictor only.
    for name in ["tiny", "small", "base"] {
        let p = ModelConfig::preset(name).expect("preset");
        assert!(p.scene && !p.scene_encoder, "{name}");
    }
    let mut old: serde_json::Value = serde_json::to_value(&cfg).expect("json");
    old.as_object_mut().expect("object").remove("scene");
    let old: ModelConfig = serde_json::from_value(old).expect("an older config still parses");
    assert!(!old.scene);
    let old_model = WorldModel::new(&old, 3, &Device::Cpu).expect("model");
    assert!(!old_model.vars.online.keys().any(|k| k.starts_with("scene_embed")));
    let a = old_model.encode(&b).expect("encode");
    let c = old_model.encode(&blind).expect("encode");
    assert!(max_diff(&rows(&a, 0), &rows(&c, 0)) == 0.0);
}

/// `model.shape = "none"`: the four shape-kind features are zero for every object, the
/// continuous ones are untouched, and the setting survives the JSON round trip of
/// `config.json` and the checkpoint's normalizer, while `kind` stays unwritten in both.
#[test]
fn the_shape_kind_can_be_left_out_of_the_inputs() {
    let (wins, norm) = windows();
    let off = Normalizer { shape_kind: false, ..norm.clone() };
    let with = Batch::new(&wins, &norm, &Device::Cpu).expect("batch");
    let without = Batch::new(&wins, &off, &Device::Cpu).expect("batch");
    let d = physworld_model::OBS_DIM;
    let (a, b): (Vec<f32>, Vec<f32>) = (
        with.obs.flatten_all().expect("flat").to_vec1().expect("vec"),
        without.obs.flatten_all().expect("flat").to_vec1().expect("vec"),
    );
    let kind_hot: f32 = a.chunks(d).map(|x| x[d - 4..].iter().sum::<f32>()).sum();
    let valid: f32 = with.valid.sum_all().expect("sum").to_scalar().expect("scalar");
    assert_eq!(kind_hot, valid, "one kind per valid object");
    for (x, y) in a.chunks(d).zip(b.chunks(d)) {
        assert_eq!(x[..d - 4], y[..d - 4]);
        assert!(y[d - 4..].iter().all(|v| *v == 0.0));
    }
    // The model reads a different input, so its representations differ.
    let model = WorldModel::new(&tiny(Objective::Jepa), 3, &Device::Cpu).expect("model");
    let diff = (model.encode(&with).expect("encode") - model.encode(&without).expect("encode"))
        .and_then(|t| t.abs())
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("diff");
    assert!(diff > 1e-3, "{diff}");
    // Serialisation: `kind` is not written (older files read as before), `none` is.
    let tiny_cfg = ModelConfig::preset("tiny").expect("preset");
    assert_eq!(tiny_cfg.shape, ShapeInput::Kind);
    let j = serde_json::to_value(&tiny_cfg).expect("json");
    assert!(j.get("shape").is_none(), "{j}");
    let none = ModelConfig { shape: ShapeInput::None, ..tiny_cfg };
    let j = serde_json::to_value(&none).expect("json");
    assert_eq!(j["shape"], "none");
    assert_eq!(serde_json::from_value::<ModelConfig>(j).expect("parse").shape, ShapeInput::None);
    assert!(serde_json::to_value(&norm).expect("json").get("shape_kind").is_none());
    let j = serde_json::to_value(&off).expect("json");
    assert_eq!(j["shape_kind"], false);
    assert!(!serde_json::from_value::<Normalizer>(j).expect("parse").shape_kind);
}

#[test]
fn every_trainable_variable_receives_a_nonzero_gradient() {
    for objective in [Objective::Jepa, Objective::StateMse] {
        let model = WorldModel::new(&tiny(objective), 1, &Device::Cpu).expect("model");
        // Break the initial online = target symmetry so the JEPA loss is not trivially 0-grad.
        model.ema_update(0.0).expect("ema");
        let parts = model.loss(&batch(), 3, &LossConfig::default()).expect("loss");
        let grads = parts.total.backward().expect("backward");
        for (name, var) in model.trainable() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{objective:?}: no gradient for {name}"));
            let norm: f32 = g.sqr().and_then(|x| x.sum_all()).and_then(|x| x.to_scalar()).expect("norm");
            assert!(norm > 0.0 && norm.is_finite(), "{objective:?}: zero or non-finite gradient for {name}: {norm}");
        }
        // The target encoder is under stop-gradient.
        for (name, var) in &model.vars.target {
            assert!(grads.get(var.as_tensor()).is_none(), "target {name} got a gradient");
        }
    }
}

#[test]
fn the_inverse_dynamics_head_trains_and_feeds_the_encoder() {
    let cfg = ModelConfig { inverse_dynamics: true, ..tiny(Objective::Jepa) };
    let model = WorldModel::new(&cfg, 1, &Device::Cpu).expect("model");
    assert!(model.vars.predictor.keys().any(|k| k.starts_with("inverse.")));
    model.ema_update(0.0).expect("ema");
    let w = LossConfig { inv_weight: 1.0, ..LossConfig::default() };
    let parts = model.loss(&batch(), 3, &w).expect("loss");
    assert!(parts.inverse > 0.0 && parts.inverse.is_finite(), "{}", parts.inverse);
    let grads = parts.total.backward().expect("backward");
    for (name, var) in model.trainable() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().and_then(|x| x.sum_all()).and_then(|x| x.to_scalar()).expect("norm");
        assert!(norm > 0.0, "zero gradient for {name}");
    }
    // Without the head the same model (same seed) has the same encoder and predictor: the
    // head is drawn after everything else.
    let plain = WorldModel::new(&tiny(Objective::Jepa), 1, &Device::Cpu).expect("model");
    for (k, v) in &plain.vars.predictor {
        let a: Vec<f32> = v.as_tensor().flatten_all().and_then(|x| x.to_vec1()).expect("v");
        let b: Vec<f32> = model.vars.predictor[k].as_tensor().flatten_all().and_then(|x| x.to_vec1()).expect("v");
        assert_eq!(a, b, "{k}");
    }
    // The weight without the head is a configuration error naming the field.
    let mut tc = TrainConfig::preset("tiny").expect("preset");
    tc.loss.inv_weight = 0.5;
    let e = tc.validate().expect_err("no head").to_string();
    assert!(e.contains("loss.inv_weight") && e.contains("model.inverse_dynamics"), "{e}");
}

#[test]
fn the_rollout_loss_scores_the_rollout_path_and_its_gradient_flows_through_it() {
    // 6 frames: 2 context, a first chunk of 2, one rollout chunk of 2.
    let b = batch();
    let w = LossConfig { rollout_chunks: 1, ..LossConfig::default() };
    for objective in [Objective::Jepa, Objective::StateMse] {
        let model = WorldModel::new(&tiny(objective), 3, &Device::Cpu).expect("model");
        model.ema_update(0.0).expect("ema");
        let parts = model.loss(&b, 2, &w).expect("loss");
        // The term is the prediction error of frames 4..6 as `rollout` predicts them from
        // the first 2 frames in chunks of 2 (context 2).
        let roll = model.rollout(&b, 2, 4, 2, 2).expect("rollout").narrow(1, 2, 2).expect("later");
        let target = match objective {
            Objective::Jepa => {
                layer_norm_plain(&model.target.forward(&b.obs, &b.valid, b.scene.as_ref(), 0).expect("target"))
                    .expect("ln")
                    .narrow(1, 4, 2)
                    .expect("narrow")
            }
            Objective::StateMse => b.obs.narrow(1, 4, 2).expect("narrow"),
        };
        let valid: Vec<f32> =
            b.valid.narrow(1, 4, 2).and_then(|v| v.flatten_all()).and_then(|v| v.to_vec1()).expect("v");
        let width = roll.dim(3).expect("dim");
        let err: Vec<f32> = (roll - target).and_then(|d| d.flatten_all()).and_then(|d| d.to_vec1()).expect("v");
        let per: f32 = err
            .chunks(width)
            .zip(&valid)
            .map(|(e, v)| v * e.iter().map(|x| if objective == Objective::Jepa { x.abs() } else { x * x }).sum::<f32>())
            .sum();
        let want = per / width as f32 / (valid.iter().sum::<f32>() + 1.0);
        assert!(
            (parts.rollout - want).abs() < 1e-5 * want.max(1.0),
            "{objective:?}: rollout term {} vs {want}",
            parts.rollout
        );
        assert!(parts.rollout > 0.0);
        // The first chunk's term is that of a batch without the rollout frames.
        let short = model.loss(&b, 2, &LossConfig::default()).expect("loss");
        assert!(short.rollout == 0.0);
        let weighted = model.loss(&b, 2, &LossConfig { rollout_weight: 3.0, ..w.clone() }).expect("loss");
        let total = |p: &physworld_model::LossParts| p.total.to_scalar::<f32>().expect("scalar");
        assert!((total(&weighted) - total(&parts) - 2.0 * parts.rollout).abs() < 1e-5, "weight scales the term");
        // The rollout term alone (the difference of the two totals) moves every variable:
        // its gradient flows back through the fed-back first chunk to the encoder.
        let term = (weighted.total - &parts.total).expect("difference");
        let grads = term.backward().expect("backward");
        for (name, var) in model.trainable() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{objective:?}: no gradient for {name}"));
            let norm: f32 = g.sqr().and_then(|x| x.sum_all()).and_then(|x| x.to_scalar()).expect("norm");
            assert!(norm > 0.0 && norm.is_finite(), "{objective:?}: zero gradient for {name}");
        }
    }
    // A window too short for the chunks is an error naming what it needs.
    let model = WorldModel::new(&tiny(Objective::Jepa), 3, &Device::Cpu).expect("model");
    let Err(e) = model.loss(&b, 3, &w) else { panic!("6 frames cannot hold 3 + 3 + 3") };
    let e = e.to_string();
    assert!(e.contains("rollout chunks") && e.contains("6 frames"), "{e}");
    let mut tc = TrainConfig::preset("tiny").expect("preset");
    tc.loss.rollout_weight = -1.0;
    let e = tc.validate().expect_err("negative").to_string();
    assert!(e.contains("loss.rollout_weight"), "{e}");
}

/// A stand-in for another encoder kind (a pixel ViT would be one): a per-token projection
/// without attention or time encoding.
struct PerToken(physworld_model::Linear, usize);

impl physworld_model::FrameEncoder for PerToken {
    fn forward(
        &self,
        obs: &Tensor,
        _valid: &Tensor,
        _scene: Option<&physworld_model::SceneTokens>,
        _t0: usize,
    ) -> physworld_model::Result<Tensor> {
        self.0.forward(obs)
    }
    fn width(&self) -> usize {
        self.1
    }
}

#[test]
fn another_encoder_slots_in_behind_the_frame_encoder_trait() {
    let cfg = tiny(Objective::Jepa);
    let build = |p: &mut physworld_model::Params,
                 c: &ModelConfig|
     -> physworld_model::Result<Box<dyn physworld_model::FrameEncoder>> {
        Ok(Box::new(PerToken(physworld_model::Linear::new(p, "proj", physworld_model::OBS_DIM, c.dim, true)?, c.dim)))
    };
    let model = WorldModel::with_encoder(&cfg, 4, &Device::Cpu, &build).expect("model");
    // Its variables are the encoder's, in both copies, equal at the start.
    let names: Vec<&String> = model.vars.online.keys().collect();
    assert_eq!(names, ["proj.bias", "proj.weight"]);
    let flat = |v: &candle_core::Var| -> Vec<f32> { v.as_tensor().flatten_all().and_then(|x| x.to_vec1()).expect("v") };
    assert_eq!(flat(&model.vars.online["proj.weight"]), flat(&model.vars.target["proj.weight"]));
    // Loss, gradients, EMA and rollout work through it.
    model.ema_update(0.0).expect("ema");
    let parts = model.loss(&batch(), 3, &LossConfig::default()).expect("loss");
    let grads = parts.total.backward().expect("backward");
    for (name, var) in model.trainable() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(g.abs().and_then(|x| x.sum_all()).and_then(|x| x.to_scalar::<f32>()).expect("sum") > 0.0, "{name}");
    }
    let roll = model.rollout(&batch(), 3, 5, 3, 3).expect("rollout");
    assert_eq!(roll.dims(), [3, 5, 4, cfg.dim]);
    // A width other than model.dim is refused, naming it.
    let narrow = |p: &mut physworld_model::Params,
                  _: &ModelConfig|
     -> physworld_model::Result<Box<dyn physworld_model::FrameEncoder>> {
        Ok(Box::new(PerToken(physworld_model::Linear::new(p, "proj", physworld_model::OBS_DIM, 8, true)?, 8)))
    };
    let Err(e) = WorldModel::with_encoder(&cfg, 4, &Device::Cpu, &narrow) else { panic!("width 8 accepted") };
    let e = e.to_string();
    assert!(e.contains("encoder width") && e.contains("model.dim"), "{e}");
    // An encoder whose variables bypass Params would be neither trained nor EMA-updated.
    let hidden = |_: &mut physworld_model::Params,
                  c: &ModelConfig|
     -> physworld_model::Result<Box<dyn physworld_model::FrameEncoder>> {
        let mut own = physworld_model::Params::new(9, &Device::Cpu);
        Ok(Box::new(PerToken(
            physworld_model::Linear::new(&mut own, "proj", physworld_model::OBS_DIM, c.dim, true)?,
            c.dim,
        )))
    };
    let Err(e) = WorldModel::with_encoder(&cfg, 4, &Device::Cpu, &hidden) else { panic!("hidden variables accepted") };
    assert!(e.to_string().contains("encoder variables"), "{e}");
}

#[test]
fn differentiable_norm_and_softmax_match_their_formulas() {
    let x = Tensor::new(&[[1f32, 2.0, 4.0], [-1.0, 0.0, 1.0]], &Device::Cpu).expect("t");
    let s: Vec<Vec<f32>> = softmax_last(&x).expect("softmax").to_vec2().expect("v");
    // softmax([1, 2, 4]) = e^x / sum e^x (numpy: [0.04201007, 0.1141952, 0.84379473]).
    for (a, b) in s[0].iter().zip([0.042_010_07f32, 0.114_195_2, 0.843_794_7]) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let n: Vec<Vec<f32>> = layer_norm_plain(&x).expect("ln").to_vec2().expect("v");
    // [-1, 0, 1] has mean 0 and population std sqrt(2/3): [-1.2247, 0, 1.2247].
    for (a, b) in n[1].iter().zip([-1.224_744_9f32, 0.0, 1.224_744_9]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

/// The values of `y` and the gradient of `sum(y * up)` with respect to `x`, flattened.
fn values_and_gradient(y: &Tensor, x: &candle_core::Var, up: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let grads = (y * up).and_then(|p| p.sum_all()).and_then(|l| l.backward()).expect("backward");
    let g = grads.get(x.as_tensor()).expect("grad").flatten_all().and_then(|g| g.to_vec1()).expect("g");
    (y.flatten_all().and_then(|y| y.to_vec1()).expect("y"), g)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max)
}

/// The fused CPU kernels and the composed ops (the path of other devices; candle's own
/// `gelu_erf`) give the same values and the same gradients, on a non-contiguous input
/// (with masked -1e9 entries for the softmax).
#[test]
fn fused_norm_and_softmax_agree_with_the_composed_ops_values_and_gradients() {
    use candle_core::Var;
    let dev = Device::Cpu;
    // More rows than one parallel task takes (64), so chunk boundaries are exercised.
    let (rows, d) = (150usize, 13usize);
    let v: Vec<f32> = (0..rows * d).map(|i| ((i as f32 * 0.731).sin() * 3.0) + (i % 5) as f32).collect();
    let mut masked = v.clone();
    for r in 0..rows {
        masked[r * d + (r % d)] = -1e9;
    }
    // Upstream gradient: arbitrary, so the backward's every term matters.
    let up: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.377).cos()).collect();
    let up = Tensor::from_vec(up, (rows, d), &dev).expect("t");
    type Op = fn(&Tensor) -> physworld_model::Result<Tensor>;
    fn candle_gelu(x: &Tensor) -> physworld_model::Result<Tensor> {
        Ok(x.gelu_erf()?)
    }
    let centred: Vec<f32> = v.iter().map(|x| x - 2.0).collect();
    let cases: [(&str, &[f32], Op, Op); 3] = [
        ("layer norm", &v, layer_norm_plain, layer_norm_composed),
        ("softmax", &masked, softmax_last, softmax_composed),
        ("gelu", &centred, gelu, candle_gelu),
    ];
    for (name, data, fused, composed) in cases {
        // Stored transposed, read through `.t()`: a non-contiguous layout.
        let mut tr = vec![0f32; rows * d];
        for r in 0..rows {
            for c in 0..d {
                tr[c * rows + r] = data[r * d + c];
            }
        }
        let run = |op: Op| -> (Vec<f32>, Vec<f32>) {
            let x = Var::from_tensor(&Tensor::from_vec(tr.clone(), (d, rows), &dev).expect("t")).expect("var");
            values_and_gradient(&op(&x.as_tensor().t().expect("t")).expect("op"), &x, &up)
        };
        let ((yf, gf), (yc, gc)) = (run(fused), run(composed));
        for (what, a, b) in [("values", &yf, &yc), ("gradients", &gf, &gc)] {
            let err = max_abs_diff(a, b);
            assert!(err < 2e-5, "{name} {what} differ by {err}");
            assert!(a.iter().any(|x| x.abs() > 1e-3), "{name} {what} are all ~0");
        }
    }
}

/// The fused attention (one op, backward by recomputation) and the composed ops give the
/// same outputs and the same gradients for q, k and v, with a per-query mask (the
/// predictor's block-causal one), a key-padding mask (the encoder's) and none.
#[test]
fn fused_attention_agrees_with_the_composed_ops_values_and_gradients() {
    // Several key counts (a multiple of 8 neither, fewer than 8, a single token).
    for (b, n, heads, hd) in [(3usize, 11usize, 2usize, 5usize), (2, 5, 1, 3), (2, 1, 2, 4)] {
        attention_case(b, n, heads, hd);
    }
}

fn attention_case(b: usize, n: usize, heads: usize, hd: usize) {
    use candle_core::Var;
    let dev = Device::Cpu;
    let d = heads * hd;
    let data: Vec<f32> = (0..b * n * 3 * d).map(|i| ((i as f32) * 0.417).sin() * 1.5).collect();
    let up: Vec<f32> = (0..b * n * d).map(|i| ((i as f32) * 0.291).cos()).collect();
    let up = Tensor::from_vec(up, (b, n, d), &dev).expect("t");
    let causal: Vec<f32> =
        (0..b * n * n).map(|k| if (k % n) / 3 > ((k / n) % n) / 3 || k % 7 == 0 { -1e9 } else { 0.0 }).collect();
    let padding: Vec<f32> = (0..b * n).map(|k| if k % 4 == 1 { -1e9 } else { 0.0 }).collect();
    let masks = [
        ("per-query", Some(Tensor::from_vec(causal, (b, 1, n, n), &dev).expect("m"))),
        ("key padding", Some(Tensor::from_vec(padding, (b, 1, 1, n), &dev).expect("m"))),
        ("none", None),
    ];
    for (name, mask) in &masks {
        let run = |fused: bool| -> (Vec<f32>, Vec<f32>) {
            let x = Var::from_tensor(&Tensor::from_vec(data.clone(), (b, n, 3 * d), &dev).expect("t")).expect("var");
            let y = if fused {
                attention(x.as_tensor(), mask.as_ref(), heads).expect("fused")
            } else {
                attention_composed(x.as_tensor(), mask.as_ref(), heads).expect("composed")
            };
            values_and_gradient(&y, &x, &up)
        };
        let ((yf, gf), (yc, gc)) = (run(true), run(false));
        for (what, a, c) in [("outputs", &yf, &yc), ("gradients", &gf, &gc)] {
            let err = max_abs_diff(a, c);
            assert!(err < 1e-5, "{name}: {what} differ by {err}");
        }
        // q, k and v each receive gradient (with one token the weights are constant).
        for part in (0..3).filter(|p| n > 8 || *p == 2) {
            let norm: f32 = (0..b * n)
                .map(|r| gf[r * 3 * d + part * d..r * 3 * d + (part + 1) * d].iter().map(|g| g * g).sum::<f32>())
                .sum();
            assert!(norm > 1e-6, "{name}: part {part} has no gradient");
        }
    }
    // A mask that is itself trained (a learned bias) still receives its gradient.
    let bias = Var::from_tensor(&Tensor::zeros((b, 1, n, n), DType::F32, &dev).expect("t")).expect("var");
    let x = Tensor::from_vec(data.clone(), (b, n, 3 * d), &dev).expect("t");
    let y = attention(&x, Some(bias.as_tensor()), heads).expect("attention");
    let grads = (&y * &up).and_then(|p| p.sum_all()).and_then(|l| l.backward()).expect("backward");
    assert!(grads.get(bias.as_tensor()).is_some(), "a trained mask got no gradient");
}

/// Adding or multiplying a per-channel vector (biases, layer-norm gains) gives the same
/// values and gradients, for the input and the vector, fused as through candle's
/// broadcasting ops; the vector's gradient sums over more rows than one parallel task.
#[test]
fn fused_row_broadcasts_agree_with_candle_values_and_gradients() {
    use candle_core::Var;
    let dev = Device::Cpu;
    let (rows, d) = (3usize * 97, 7usize);
    let xs: Vec<f32> = (0..rows * d).map(|i| ((i as f32) * 0.53).sin()).collect();
    let vs: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.25).collect();
    let up: Vec<f32> = (0..rows * d).map(|i| ((i as f32) * 0.19).cos()).collect();
    let up = Tensor::from_vec(up, (3, 97, d), &dev).expect("t");
    type Op = fn(&Tensor, &Tensor) -> physworld_model::Result<Tensor>;
    fn badd(x: &Tensor, v: &Tensor) -> physworld_model::Result<Tensor> {
        Ok(x.broadcast_add(v)?)
    }
    fn bmul(x: &Tensor, v: &Tensor) -> physworld_model::Result<Tensor> {
        Ok(x.broadcast_mul(v)?)
    }
    let cases: [(&str, Op, Op); 2] = [("add", add_vec, badd), ("mul", mul_vec, bmul)];
    for (name, fused, plain) in cases {
        let run = |op: Op| -> Vec<Vec<f32>> {
            let x = Var::from_tensor(&Tensor::from_vec(xs.clone(), (3, 97, d), &dev).expect("t")).expect("var");
            let v = Var::from_tensor(&Tensor::from_vec(vs.clone(), d, &dev).expect("t")).expect("var");
            let y = op(x.as_tensor(), v.as_tensor()).expect("op");
            let grads = (&y * &up).and_then(|p| p.sum_all()).and_then(|l| l.backward()).expect("backward");
            let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("flat");
            vec![flat(&y), flat(grads.get(x.as_tensor()).expect("dx")), flat(grads.get(v.as_tensor()).expect("dv"))]
        };
        let (f, p) = (run(fused), run(plain));
        for (what, a, b) in
            [("values", &f[0], &p[0]), ("input gradients", &f[1], &p[1]), ("vector gradients", &f[2], &p[2])]
        {
            let err = max_abs_diff(a, b);
            assert!(err < 1e-4, "{name}: {what} differ by {err}");
            assert!(a.iter().any(|x| x.abs() > 1e-3), "{name}: {what} all ~0");
        }
    }
}

#[test]
fn ema_update_follows_its_formula() {
    let model = WorldModel::new(&tiny(Objective::Jepa), 2, &Device::Cpu).expect("model");
    let (name, online) = model.vars.online.iter().next().expect("var");
    let target = &model.vars.target[name];
    let o0 = online.as_tensor().copy().expect("copy");
    let t0 = (target.as_tensor() * 0.5).expect("t");
    target.set(&t0).expect("set");
    model.ema_update(0.9).expect("ema");
    let want = ((&t0 * 0.9).expect("m") + (&o0 * 0.1).expect("m")).expect("sum");
    let diff: f32 = (target.as_tensor() - want)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar())
        .expect("diff");
    assert!(diff < 1e-7, "ema off by {diff}");
}

#[test]
fn same_seed_same_init_and_targets_start_as_copies() {
    let a = WorldModel::new(&tiny(Objective::Jepa), 7, &Device::Cpu).expect("model");
    let b = WorldModel::new(&tiny(Objective::Jepa), 7, &Device::Cpu).expect("model");
    let c = WorldModel::new(&tiny(Objective::Jepa), 8, &Device::Cpu).expect("model");
    let vals = |m: &WorldModel| -> BTreeMap<String, Vec<f32>> {
        m.all_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().flatten_all().and_then(|t| t.to_vec1()).expect("v")))
            .collect()
    };
    let (va, vb, vc) = (vals(&a), vals(&b), vals(&c));
    assert_eq!(va, vb);
    assert_ne!(va, vc);
    for (k, v) in &va {
        if let Some(rest) = k.strip_prefix("online.") {
            assert_eq!(v, &va[&format!("target.{rest}")], "{k}");
        }
    }
}

#[test]
fn config_errors_name_the_field() {
    let mut c = TrainConfig::preset("tiny").expect("preset");
    c.model.dim = 63;
    let e = c.validate().expect_err("odd dim").to_string();
    assert!(e.contains("model.dim") && e.contains("63"), "{e}");
    let mut c = TrainConfig::preset("tiny").expect("preset");
    c.optim.beta2 = 1.5;
    assert!(c.validate().expect_err("beta").to_string().contains("optim.beta2"));
    assert!(ModelConfig::preset("huge").expect_err("preset").to_string().contains("tiny, small or base"));
    let e =
        serde_json::from_str::<TrainConfig>(r#"{"model": {"objective": "jepa", "dim": 8}, "lr": 1}"#).expect_err("bad");
    assert!(e.to_string().contains("lr") || e.to_string().contains("missing field"), "{e}");
}

#[test]
fn effective_rank_and_ridge_match_closed_forms() {
    // Isotropic 2-D data has effective rank 2; a line has 1.
    let iso: Vec<f32> = vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
    assert!((linalg::effective_rank(&iso, 4, 2) - 2.0).abs() < 1e-9);
    let line: Vec<f32> = vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
    assert!((linalg::effective_rank(&line, 3, 2) - 1.0).abs() < 1e-6);
    // y = 2 x0 - 3 x1 + 0.5 exactly; a tiny ridge recovers it.
    let x: Vec<f32> = vec![0.0, 1.0, 1.0, 0.0, 2.0, 1.0, 3.0, 5.0, -1.0, 2.0];
    let y: Vec<f32> = x.chunks(2).map(|r| 2.0 * r[0] - 3.0 * r[1] + 0.5).collect();
    let w = linalg::ridge(&x, &y, 5, 2, 1, 1e-9);
    for (a, b) in w.iter().zip([2.0, -3.0, 0.5]) {
        assert!((a - b).abs() < 1e-5, "{w:?}");
    }
    let _ = DType::F32;
}

/// `surprise` encodes only the future frames: that is the same as encoding the whole
/// window and keeping its end only while the encoder reads each frame alone.
#[test]
fn the_encoder_reads_each_frame_alone() {
    let model = WorldModel::new(&tiny(Objective::Jepa), 4, &Device::Cpu).expect("model");
    let b = batch();
    let all = model.encoder.forward(&b.obs, &b.valid, b.scene.as_ref(), 0).expect("all").narrow(1, 2, 3).expect("end");
    let end = model
        .encoder
        .forward(&b.obs.narrow(1, 2, 3).expect("obs"), &b.valid.narrow(1, 2, 3).expect("valid"), b.scene.as_ref(), 2)
        .expect("end alone");
    let diff: f32 = (all - end).expect("diff").abs().expect("abs").max_all().expect("max").to_scalar().expect("scalar");
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn surprise_is_per_frame_and_zero_where_nothing_is_valid() {
    let model = WorldModel::new(&tiny(Objective::Jepa), 4, &Device::Cpu).expect("model");
    let b = batch();
    let s = model.surprise(&b, 3).expect("surprise");
    assert_eq!((s.len(), s[0].len()), (3, 3));
    assert!(s.iter().flatten().all(|x| x.is_finite() && *x > 0.0), "{s:?}");
    // The same prediction error averaged the way the loss does it (all frames valid
    // counts differ per frame, so compare orders of magnitude only).
    let l = model
        .loss(
            &b,
            3,
            &LossConfig {
                var_weight: 0.0,
                cov_weight: 0.0,
                smooth_weight: 0.0,
                inv_weight: 0.0,
                ..LossConfig::default()
            },
        )
        .expect("loss");
    let mean: f32 = s.iter().flatten().sum::<f32>() / 9.0;
    assert!((mean - l.prediction).abs() < 0.5 * l.prediction, "{mean} vs {}", l.prediction);
}

#[test]
fn ridge_probe_recovers_a_linear_map() {
    // y0 = 3 a - b + 1, y1 = 0.5 b, on 50 rows.
    let x: Vec<f32> = (0..100).map(|i| ((i * 37 % 17) as f32 - 8.0) / 3.0).collect();
    let y: Vec<f32> = x.chunks(2).flat_map(|r| [3.0 * r[0] - r[1] + 1.0, 0.5 * r[1]]).collect();
    let p = physworld_model::RidgeProbe::fit(&x, &y, 2, 2, 1e-6).expect("fits");
    let pred = p.predict(&x);
    let err = pred.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 1e-3, "max error {err}");
    assert!(physworld_model::RidgeProbe::fit(&x, &y[..10], 2, 2, 1.0).is_err());
}

#[test]
fn the_predictor_context_state_reads_the_whole_context_and_nothing_after_it() {
    let b = batch();
    let values = |t: &Tensor| -> Vec<f32> { t.flatten_all().and_then(|x| x.to_vec1()).expect("values") };
    // Add 1 to every observed feature of one frame.
    let shifted = |b: &Batch, f: usize| -> Batch {
        let mut c = b.clone();
        let one = Tensor::ones(b.obs.narrow(1, f, 1).expect("frame").dims(), DType::F32, &Device::Cpu).expect("ones");
        let parts: Vec<Tensor> = (0..b.frames)
            .map(|k| {
                let x = b.obs.narrow(1, k, 1).expect("frame");
                if k == f { (x + &one).expect("add") } else { x }
            })
            .collect();
        c.obs = Tensor::cat(&parts, 1).expect("cat");
        c
    };
    for objective in [Objective::Jepa, Objective::StateMse] {
        let cfg = tiny(objective);
        let model = WorldModel::new(&cfg, 5, &Device::Cpu).expect("model");
        let (tc, ctx) = (4, 3);
        let s = model.context_state(&b, tc, ctx).expect("state");
        assert_eq!(s.dims(), [3, 4, cfg.pred_dim]);
        let base = values(&s);
        assert!(base.iter().all(|x| x.is_finite()));
        // Frames after the context and before its window change nothing; every context
        // frame, not only the last, changes the state (block-causal attention reads them).
        for (f, changes) in [(0, false), (1, true), (2, true), (3, true), (4, false), (5, false)] {
            let other = values(&model.context_state(&shifted(&b, f), tc, ctx).expect("state"));
            assert_eq!(other != base, changes, "{objective:?}: frame {f}");
        }
        assert!(model.context_state(&b, 0, ctx).is_err() && model.context_state(&b, 7, ctx).is_err());
        // The rollout hands back the same state from its first chunk, whatever its length.
        for steps in [0, 1, 2, 5] {
            let (_, st) = model.rollout_with_state(&b, tc, steps, ctx, 2).expect("rollout");
            let worst = values(&st).iter().zip(&base).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "{objective:?}, {steps} steps: state differs by {worst}");
        }
    }
}

#[test]
fn rollout_of_one_chunk_is_the_prediction_and_longer_rollouts_chain_chunks() {
    let b = batch();
    for objective in [Objective::Jepa, Objective::StateMse] {
        let model = WorldModel::new(&tiny(objective), 5, &Device::Cpu).expect("model");
        let (tc, tf) = (4, 2);
        let pred = model.predict(&b, tf).expect("predict");
        let roll = model.rollout(&b, tc, tf, tc, tf).expect("rollout");
        // Predicted frames keep the last observed frame's validity mask.
        let mask = b.valid.narrow(1, tc - 1, 1).and_then(|m| m.unsqueeze(3)).expect("mask");
        let want = pred.broadcast_mul(&mask).expect("mul");
        let diff: f32 = (roll.clone() - want)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar())
            .expect("diff");
        assert!(diff < 1e-5, "{objective:?}: rollout differs from predict by {diff}");
        // Ten frames in chunks of 3: the first chunk is the one-shot prediction of 3 frames,
        // later frames exist, are finite and differ from the first chunk's.
        let long = model.rollout(&b, tc, 10, tc, 3).expect("long rollout");
        assert_eq!(long.dims4().expect("dims").1, 10);
        let first = model.rollout(&b, tc, 3, tc, 3).expect("rollout");
        let head: Vec<f32> = long.narrow(1, 0, 3).and_then(|x| x.flatten_all()).and_then(|x| x.to_vec1()).expect("v");
        assert_eq!(head, first.flatten_all().and_then(|x| x.to_vec1::<f32>()).expect("v"));
        let all: Vec<f32> = long.flatten_all().and_then(|x| x.to_vec1()).expect("v");
        assert!(all.iter().all(|x| x.is_finite()));
        assert!(model.rollout(&b, 0, 3, tc, 3).is_err(), "an empty context is refused");
    }
}

#[test]
fn the_attentive_probe_finds_the_token_that_matters_where_mean_pooling_cannot() {
    use physworld_model::{AttentiveConfig, AttentiveProbe, ProbeTarget, RidgeProbe};
    // Each sample: 5 tokens of 4 features; one token is flagged (feature 0 = 1) and the
    // target is its feature 1; the other tokens carry distractor values there.
    let (s, d) = (5usize, 4usize);
    let sample = |i: usize| -> (Vec<f32>, f32) {
        let flagged = i % s;
        let mut t = Vec::new();
        let mut y = 0.0;
        for k in 0..s {
            let v = ((i * 31 + k * 17) % 23) as f32 / 11.0 - 1.0;
            let w = ((i * 7 + k * 13) % 19) as f32 / 9.0 - 1.0;
            t.extend([if k == flagged { 1.0 } else { 0.0 }, v, w, 0.5]);
            if k == flagged {
                y = v;
            }
        }
        (t, y)
    };
    let build = |r: std::ops::Range<usize>| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in r {
            let (t, v) = sample(i);
            x.extend(t);
            y.push(v);
        }
        (x, y)
    };
    let (xf, yf) = build(0..240);
    let (xt, yt) = build(1000..1100);
    let mask_f = vec![1.0f32; 240 * s];
    let mask_t = vec![1.0f32; 100 * s];
    let cfg = AttentiveConfig { steps: 300, ..AttentiveConfig::default() };
    let probe = AttentiveProbe::fit(&xf, &mask_f, &yf, (240, s, d), 1, ProbeTarget::Regression, &cfg).expect("fit");
    let pred = probe.predict(&xt, &mask_t, 100).expect("predict");
    let mse = |p: &[f32]| p.iter().zip(&yt).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / yt.len() as f32;
    let attentive = mse(&pred);
    // The same readout with mean pooling: a ridge probe on the token average.
    let pool = |x: &[f32], n: usize| -> Vec<f32> {
        (0..n)
            .flat_map(|i| (0..d).map(move |c| (0..s).map(|k| x[(i * s + k) * d + c]).sum::<f32>() / s as f32))
            .collect()
    };
    let ridge = RidgeProbe::fit(&pool(&xf, 240), &yf, d, 1, 1e-3).expect("ridge");
    let pooled = mse(&ridge.predict(&pool(&xt, 100)));
    assert!(attentive < 0.25 * pooled, "attentive {attentive} vs mean-pooled ridge {pooled}");
    // Deterministic: the same seed gives the same probe.
    let again = AttentiveProbe::fit(&xf, &mask_f, &yf, (240, s, d), 1, ProbeTarget::Regression, &cfg).expect("fit");
    assert_eq!(again.predict(&xt, &mask_t, 100).expect("predict"), pred);
    // Binary targets: the sign of the flagged value.
    let yb: Vec<f32> = yf.iter().map(|v| (*v > 0.0) as u8 as f32).collect();
    let probe = AttentiveProbe::fit(&xf, &mask_f, &yb, (240, s, d), 1, ProbeTarget::Binary, &cfg).expect("fit");
    let p = probe.predict(&xt, &mask_t, 100).expect("predict");
    let acc = p.iter().zip(&yt).filter(|(p, y)| (**p > 0.5) == (**y > 0.0)).count();
    assert!(acc >= 85, "binary accuracy {acc}/100");
    // Feature 3 is constant in the fit set, so it is dropped: a value never seen there
    // changes no prediction (a 1e-6 std floor would scale it to 1e6 and saturate the probe).
    let shifted: Vec<f32> = xt.iter().enumerate().map(|(i, v)| if i % d == 3 { 1.5 } else { *v }).collect();
    assert_eq!(probe.predict(&shifted, &mask_t, 100).expect("predict"), p);
    // Masked tokens are ignored: hiding the distractors changes nothing important.
    assert!(AttentiveProbe::fit(&xf, &mask_f[1..], &yf, (240, s, d), 1, ProbeTarget::Regression, &cfg).is_err());
}

/// A relation between two named tokens (are their values within 0.5 of each other?): one
/// head without the MLP block, whose output is linear in one weighted average of the
/// tokens, reads it poorly; heads pool the two tokens apart and the MLP compares them.
#[test]
fn the_attentive_probe_with_heads_and_an_mlp_reads_a_relation_between_named_tokens() {
    use physworld_model::{AttentiveConfig, AttentiveProbe, ProbeTarget};
    let (s, d) = (5usize, 5usize);
    let mut state = 12345u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let mut build = |n: usize| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (a, b) = (i % s, (i / s + i + 1) % s);
            let b = if a == b { (b + 1) % s } else { b };
            let (mut va, mut vb) = (0.0, 0.0);
            for k in 0..s {
                let v = uniform();
                x.extend([f32::from(k == a), f32::from(k == b), v, uniform(), 0.5]);
                if k == a {
                    va = v;
                }
                if k == b {
                    vb = v;
                }
            }
            y.push(f32::from((va - vb).abs() < 0.5));
        }
        (x, y)
    };
    let (xf, yf) = build(800);
    let (xt, yt) = build(300);
    let accuracy = |cfg: &AttentiveConfig| {
        let probe =
            AttentiveProbe::fit(&xf, &vec![1.0; 800 * s], &yf, (800, s, d), 1, ProbeTarget::Binary, cfg).expect("fit");
        let p = probe.predict(&xt, &vec![1.0; 300 * s], 300).expect("predict");
        p.iter().zip(&yt).filter(|(p, y)| (**p > 0.5) == (**y > 0.5)).count() as f64 / 300.0
    };
    let base = yt.iter().filter(|y| **y > 0.5).count() as f64 / 300.0;
    let majority = base.max(1.0 - base);
    let linear = accuracy(&AttentiveConfig::default());
    let pooler = AttentiveConfig { heads: 4, mlp: true, ..AttentiveConfig::default() };
    let relational = accuracy(&pooler);
    eprintln!("majority {majority:.3}, one head {linear:.3}, 4 heads + MLP {relational:.3}");
    assert!(relational > 0.9 && relational > linear + 0.1, "4 heads + MLP {relational}, one head {linear}");
    let probe =
        AttentiveProbe::fit(&xf, &vec![1.0; 800 * s], &yf, (800, s, d), 1, ProbeTarget::Binary, &pooler).expect("fit");
    assert!(probe.predict(&xt[1..], &vec![1.0; 300 * s], 300).is_err(), "tokens one short");
    let bad = AttentiveConfig { heads: 3, ..AttentiveConfig::default() };
    let err = AttentiveProbe::fit(&xf, &vec![1.0; 800 * s], &yf, (800, s, d), 1, ProbeTarget::Binary, &bad)
        .err()
        .expect("32 is not split into 3 heads")
        .to_string();
    assert!(err.contains("heads") && err.contains("32/3"), "{err}");
}

#[test]
fn cross_validated_ridge_picks_a_small_penalty_for_signal_and_a_large_one_for_noise() {
    use physworld_model::RidgeProbe;
    // 200 rows of 10 features; y = x0 - 2 x3 exactly, and pure noise.
    let x: Vec<f32> = (0..2000).map(|i| (((i * 7919) % 1009) as f32 / 504.5) - 1.0).collect();
    let clean: Vec<f32> = x.chunks(10).map(|r| r[0] - 2.0 * r[3]).collect();
    let noise: Vec<f32> = (0..200).map(|i| (((i * 104_729) % 997) as f32 / 498.5) - 1.0).collect();
    let p = RidgeProbe::fit_cv(&x, &clean, 10, 1, &RidgeProbe::LAMBDAS, 5).expect("fit");
    assert_eq!(p.lambda, 0.1);
    let q = RidgeProbe::fit_cv(&x, &noise, 10, 1, &RidgeProbe::LAMBDAS, 5).expect("fit");
    assert!(q.lambda >= 100.0, "noise chose {}", q.lambda);
    // Too few rows for the folds: plain fit with the first penalty.
    let r = RidgeProbe::fit_cv(&x[..60], &clean[..6], 10, 1, &[3.0, 5.0], 5).expect("fit");
    assert_eq!(r.lambda, 3.0);
}

#[test]
fn ridge_from_fold_statistics_matches_refitting_each_fold_on_standardised_rows() {
    use physworld_model::RidgeProbe;
    // 300 rows of 6 features: one constant, one with a large offset, two informative.
    let (n, d) = (300usize, 6usize);
    let u = |i: usize, m: usize| (((i * m) % 1009) as f32 / 504.5) - 1.0;
    let mut x = Vec::new();
    for r in 0..n {
        x.extend([u(r, 7919), 2.5, 1000.0 + 0.01 * u(r, 104_729), u(r, 15_485_863), u(r, 3571), u(r, 6007)]);
    }
    let y: Vec<f32> = x.chunks(d).flat_map(|r| [r[0] - 2.0 * r[3] + 0.3 * (7.0 * r[5]).sin(), 0.5 * r[4]]).collect();
    // The reference: standardise with two passes in f64, then the closed form.
    let reference = |rows: &[usize], lambda: f64| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let m = rows.len() as f64;
        let mean: Vec<f64> = (0..d).map(|c| rows.iter().map(|r| x[r * d + c] as f64).sum::<f64>() / m).collect();
        let std: Vec<f64> = (0..d)
            .map(|c| (rows.iter().map(|r| (x[r * d + c] as f64 - mean[c]).powi(2)).sum::<f64>() / m).sqrt().max(1e-6))
            .collect();
        let mut xs = Vec::new();
        for r in rows {
            xs.extend((0..d).map(|c| ((x[r * d + c] as f64 - mean[c]) / std[c]) as f32));
        }
        let ys: Vec<f32> = rows.iter().flat_map(|r| [y[r * 2], y[r * 2 + 1]]).collect();
        (linalg::ridge(&xs, &ys, rows.len(), d, 2, lambda), mean, std)
    };
    let all: Vec<usize> = (0..n).collect();
    let p = RidgeProbe::fit(&x, &y, d, 2, 1.0).expect("fit");
    let (w, mean, _) = reference(&all, 1.0);
    for (c, (a, b)) in p.weights.iter().zip(&w).enumerate() {
        // The constant feature (1) gets no weight either way.
        let tol = if c / 2 == 1 { 1e-3 } else { 1e-4 * b.abs().max(1.0) };
        assert!((a - b).abs() < tol, "weight {c}: {a} vs {b}");
    }
    assert!((p.mean[2] - mean[2]).abs() < 1e-9);
    // Cross-validation: the penalty refitting every fold from scratch picks, and its weights.
    let lambdas = [1e-3, 0.1, 10.0, 1000.0];
    let sse = |lambda: f64| -> f64 {
        (0..5)
            .map(|k| {
                let (lo, hi) = (k * n / 5, (k + 1) * n / 5);
                let kept: Vec<usize> = (0..n).filter(|r| *r < lo || *r >= hi).collect();
                let xk: Vec<f32> = kept.iter().flat_map(|r| x[r * d..(r + 1) * d].to_vec()).collect();
                let yk: Vec<f32> = kept.iter().flat_map(|r| [y[r * 2], y[r * 2 + 1]]).collect();
                let q = RidgeProbe::fit(&xk, &yk, d, 2, lambda).expect("fold fit");
                q.predict(&x[lo * d..hi * d])
                    .iter()
                    .zip(&y[lo * 2..hi * 2])
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum()
    };
    let best = lambdas.iter().copied().min_by(|a, b| sse(*a).total_cmp(&sse(*b))).expect("best");
    let cv = RidgeProbe::fit_cv(&x, &y, d, 2, &lambdas, 5).expect("cv");
    assert_eq!(cv.lambda, best);
    let plain = RidgeProbe::fit(&x, &y, d, 2, best).expect("fit");
    for (a, b) in cv.weights.iter().zip(&plain.weights) {
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn absent_and_hidden_objects_do_not_change_the_representation_of_the_others() {
    let b = batch();
    let model = WorldModel::new(&tiny(Objective::Jepa), 3, &Device::Cpu).expect("model");
    let base = model.encode(&b).expect("encode");
    // Scribble over every token that is not valid (slot 3 absent, slot 2 hidden every
    // other frame); the valid tokens must not notice.
    let (bs, t, s, f) = b.obs.dims4().expect("dims");
    let valid: Vec<f32> = b.valid.flatten_all().expect("flat").to_vec1().expect("vec");
    let mut obs: Vec<f32> = b.obs.flatten_all().expect("flat").to_vec1().expect("vec");
    for (k, v) in valid.iter().enumerate() {
        if *v == 0.0 {
            for (j, x) in obs[k * f..(k + 1) * f].iter_mut().enumerate() {
                *x = 5.0 + j as f32;
            }
        }
    }
    assert!(valid.contains(&0.0) && valid.contains(&1.0));
    let scribbled = Batch { obs: Tensor::from_vec(obs, (bs, t, s, f), &Device::Cpu).expect("obs"), ..b.clone() };
    let after = model.encode(&scribbled).expect("encode");
    let diff: Vec<f32> = (after - &base)
        .expect("diff")
        .abs()
        .expect("abs")
        .max_keepdim(3)
        .expect("max")
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec");
    for (k, (d, v)) in diff.iter().zip(&valid).enumerate() {
        if *v == 1.0 {
            assert!(*d < 1e-5, "valid token {k} moved by {d} when invalid tokens changed");
        }
    }
}

/// Latent planning's batched imagination is the rollout: for each candidate action
/// sequence, [`WorldModel::imagine`] from one encoded context gives what
/// [`WorldModel::rollout`] gives on that window with those actions (JEPA and state-mse,
/// over several chunks), and different actions give different futures.
#[test]
fn imagining_candidates_in_one_batch_matches_each_rollout() {
    let (windows, norm) = windows();
    let (tc, steps, context, chunk) = (3usize, 5usize, 3usize, 2usize);
    for objective in [Objective::Jepa, Objective::StateMse] {
        let model = WorldModel::new(&tiny(objective), 7, &Device::Cpu).expect("model");
        let base = windows[0].clone();
        // Three candidates: the window's own actions, and two others after the context.
        let mut cands = Vec::new();
        for k in 0..3 {
            let mut w = base.clone();
            w.frames = tc + steps;
            for f in 0..w.frames {
                for c in 0..3 {
                    let a = if f + 1 >= tc && k > 0 { (k as f32) * (f as f32 * 0.7 + c as f32).cos() } else { 0.5 };
                    w.action.resize(w.frames * 3, 0.5);
                    w.action[f * 3 + c] = a;
                }
            }
            w.has_action = vec![true; w.frames];
            // Observed part only matters: repeat the last context frame after it.
            let mut full = base.slice(0, tc);
            for _ in 0..steps {
                full.append(&base.slice(tc - 1, 1));
            }
            full.action = w.action.clone();
            full.has_action = w.has_action.clone();
            cands.push(full);
        }
        let ctx = Batch::new(&[base.slice(0, tc)], &norm, &Device::Cpu).expect("ctx");
        let acts: Vec<f32> = cands.iter().flat_map(|w| w.action.iter().map(|a| a / norm.action_std[0])).collect();
        let actions = Tensor::from_vec(acts, (3, tc + steps, 3), &Device::Cpu).expect("actions");
        let imagined = model.imagine(&ctx, &actions, steps, context, chunk).expect("imagine");
        assert_eq!(imagined.dims()[..2], [3, steps]);
        let mut outs = Vec::new();
        for (k, w) in cands.iter().enumerate() {
            let b = Batch::new(std::slice::from_ref(w), &norm, &Device::Cpu).expect("batch");
            let r = model.rollout(&b, tc, steps, context, chunk).expect("rollout");
            let got: Vec<f32> =
                imagined.narrow(0, k, 1).and_then(|x| x.flatten_all()).and_then(|x| x.to_vec1()).expect("v");
            let want: Vec<f32> = r.flatten_all().and_then(|x| x.to_vec1()).expect("v");
            assert!(max_abs_diff(&got, &want) < 1e-6, "{objective:?} candidate {k}: {}", max_abs_diff(&got, &want));
            outs.push(got);
        }
        let d = max_abs_diff(&outs[0], &outs[1]);
        // An untrained model's action embedding is small (measured: 2e-4 and 1.4e-4), but
        // far above the 1e-7 the two paths differ by.
        assert!(d > 1e-5, "{objective:?}: actions change the imagined future ({d})");
        // Bad shapes are refused, naming the call.
        let err = model.imagine(&ctx, &actions, steps + 1, context, chunk).expect_err("mismatch").to_string();
        assert!(err.contains("imagine"), "{err}");
    }
}
