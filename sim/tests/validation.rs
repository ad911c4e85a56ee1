//! Bad input gives typed errors naming the field, the value and what is allowed; unhealthy
//! physics is rejected with its reason; visibility follows occluders and the frustum.

use physworld_sim::families::common::floor;
use physworld_sim::{
    Camera, Family, HealthConfig, Mass, ObjectSpec, RejectReason, Scene, Shape, SimConfig, SimError, StaticRole,
    StaticSpec, simulate, simulate_with,
};
use serde_json::{Map, Value, json};

fn ball(pos: [f32; 3]) -> ObjectSpec {
    ObjectSpec::new("ball", Shape::Sphere { radius: 0.1 }, Mass::Kg(1.0), pos)
}

fn scene_with(o: ObjectSpec) -> Scene {
    let mut s = Scene::new(SimConfig { duration_s: 0.5, ..SimConfig::default() });
    s.statics.push(floor(0.5, 0.2));
    s.objects.push(o);
    s
}

fn invalid(err: SimError) -> (String, String, String) {
    match err {
        SimError::InvalidParam { field, value, allowed } => (field, value, allowed),
        SimError::UnknownParam { field, value, known } => (field, value, known),
        other => panic!("expected InvalidParam or UnknownParam, got {other}"),
    }
}

fn overrides(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn unknown_family_lists_the_known_ones() {
    let err = Family::by_name("domino").expect_err("unknown");
    let msg = err.to_string();
    assert!(msg.contains("`domino`") && msg.contains("dominoes") && msg.contains("voe-gravity"), "{msg}");
}

#[test]
fn negative_mass_zero_size_and_nan_name_the_field() {
    let mut o = ball([0.0, 1.0, 0.0]);
    o.mass = Mass::Kg(-1.0);
    let (field, value, allowed) = invalid(simulate(&scene_with(o)).expect_err("negative mass"));
    assert_eq!(field, "objects[0].mass");
    assert!(value.contains("-1") && allowed.contains("positive"));

    let o = ObjectSpec::new("box", Shape::Box { half_extents: [0.1, 0.0, 0.1] }, Mass::Kg(1.0), [0.0, 1.0, 0.0]);
    let (field, value, _) = invalid(simulate(&scene_with(o)).expect_err("zero size"));
    assert_eq!((field.as_str(), value.as_str()), ("objects[0].shape.half_extents[1]", "0"));

    let mut o = ball([0.0, 1.0, 0.0]);
    o.linvel = [f32::NAN, 0.0, 0.0];
    let (field, _, allowed) = invalid(simulate(&scene_with(o)).expect_err("NaN"));
    assert_eq!(field, "objects[0].linvel");
    assert!(allowed.contains("finite"));

    let mut s = scene_with(ball([0.0, 1.0, 0.0]));
    s.sim.fps = 7;
    let (field, value, allowed) = invalid(simulate(&s).expect_err("fps"));
    assert_eq!((field.as_str(), value.as_str()), ("sim.fps", "7"));
    assert!(allowed.contains("divisor of physics_hz (240)"));

    let mut s = scene_with(ball([0.0, 1.0, 0.0]));
    s.joints.push(physworld_sim::JointSpec {
        kind: physworld_sim::JointKind::Spring { stiffness: -5.0, rest_length: 0.0 },
        a: physworld_sim::JointEnd::World { anchor: [0.0, 1.0, 0.0] },
        b: physworld_sim::JointEnd::Object { index: 0, anchor: [0.0; 3] },
    });
    let (field, value, allowed) = invalid(simulate(&s).expect_err("negative stiffness"));
    assert_eq!((field.as_str(), value.as_str()), ("joints[0].stiffness", "-5"));
    assert!(allowed.contains("[0, 1000000]"), "{allowed}");
}

#[test]
fn family_parameter_errors_name_family_key_value_and_allowed() {
    let (field, value, allowed) =
        invalid(Family::with_overrides("drop", &overrides(&[("height", json!([2.0, 1.0]))])).expect_err("inverted"));
    assert_eq!((field.as_str(), value.as_str()), ("drop.height", "[2, 1]"));
    assert!(allowed.contains("min <= max"));

    let (field, _, allowed) =
        invalid(Family::with_overrides("dominoes", &overrides(&[("cout", json!(3))])).expect_err("typo"));
    assert_eq!(field, "dominoes.cout");
    assert!(allowed.contains("count") && allowed.ends_with("did you mean `count`?"), "{allowed}");

    let (field, _, allowed) =
        invalid(Family::with_overrides("drop", &overrides(&[("mass", json!("heavy"))])).expect_err("wrong type"));
    assert_eq!(field, "drop.mass");
    assert!(allowed.contains("right type"), "{allowed}");

    let (field, value, _) =
        invalid(Family::with_overrides("drop", &overrides(&[("mass", json!([-1.0, 2.0]))])).expect_err("negative"));
    assert_eq!((field.as_str(), value.as_str()), ("drop.mass", "[-1, 2]"));

    let (field, _, _) = invalid(
        Family::with_overrides("launch", &overrides(&[("heldout_templates", json!([9]))])).expect_err("template"),
    );
    assert_eq!(field, "launch.heldout_templates[0]");

    let (field, _, allowed) =
        invalid(Family::with_overrides("spring", &overrides(&[("stiffness", json!(-60.0))])).expect_err("stiffness"));
    assert_eq!(field, "spring.stiffness");
    assert!(allowed.contains("[0.1, 10000]"), "{allowed}");

    let (field, _, allowed) = invalid(
        Family::with_overrides("spring", &overrides(&[("heldout_sector", json!([0.0, 360.0]))])).expect_err("sector"),
    );
    assert_eq!(field, "spring.heldout_sector");
    assert!(allowed.contains("narrower than 360"), "{allowed}");
}

#[test]
fn unhealthy_physics_is_rejected_with_its_reason() {
    let mut o = ball([0.0, 1.0, 0.0]);
    o.linvel = [0.0, 0.0, 40.0];
    let r = simulate(&scene_with(o)).expect("valid").expect_err("too fast");
    assert_eq!(r.reason, RejectReason::SpeedBound);

    // Two boxes created deeply overlapping.
    let mut s = scene_with(ObjectSpec::new("a", Shape::Box { half_extents: [0.2; 3] }, Mass::Kg(1.0), [0.0, 0.2, 0.0]));
    s.objects.push(ObjectSpec::new("b", Shape::Box { half_extents: [0.2; 3] }, Mass::Kg(1.0), [0.1, 0.2, 0.0]));
    let r = simulate(&s).expect("valid").expect_err("overlap");
    assert_eq!(r.reason, RejectReason::Interpenetration);

    // The same scene passes when the bound allows it: the check, not the engine, decides.
    let lax =
        HealthConfig { max_penetration: 1.0, energy_growth: 100.0, energy_slack_j: 1e4, ..HealthConfig::default() };
    assert!(simulate_with(&s, &lax, &[]).expect("valid").is_ok());

    // Energy: a strict bound rejects the energy the overlap resolution injects.
    let strict =
        HealthConfig { max_penetration: 1.0, energy_growth: 0.0, energy_slack_j: 0.0, ..HealthConfig::default() };
    let r = simulate_with(&s, &strict, &[]).expect("valid").expect_err("energy");
    assert_eq!(r.reason, RejectReason::EnergyBlowUp);
}

#[test]
fn visibility_follows_frustum_and_occluders() {
    let mut s = scene_with(ball([0.0, 0.1, 0.0]));
    s.camera = Camera { position: [0.0, 0.5, -3.0], look_at: [0.0, 0.1, 0.0], ..Camera::default() };
    s.objects.push(ball([1.0, 0.1, 0.0])); // behind the panel below
    s.objects.push(ball([8.0, 0.1, 0.0])); // outside the field of view
    let mut panel = StaticSpec::new("panel", StaticRole::Occluder, [0.4, 0.5, 0.01], [1.0, 0.5, -1.0]);
    panel.friction = 0.0;
    s.statics.push(panel);
    s.objects[0].present = true;
    let e = simulate(&s).expect("valid").expect("healthy");
    let f0 = &e.frames[0];
    assert!(f0.objects[0].visible, "in view, unobstructed");
    assert!(!f0.objects[1].visible, "behind the occluder");
    assert!(!f0.objects[2].visible, "outside the frustum");
    // Occluders block sight but not motion: nothing ever touches the panel.
    assert!(e.frames.iter().all(|f| f.contacts.iter().all(|c| c.b != physworld_sim::Body::Static(1))));
}

/// `launch`'s PHYRE protocols: a cross-template fold holds out its pair of templates from
/// every split but test; within-template draws every template in every split; the
/// defaults serialise as before (so existing suites keep their hashes); contradictions are
/// refused by field.
#[test]
fn launch_folds_and_protocols_choose_the_test_templates() {
    use physworld_sim::Split;
    let templates = |pairs: &[(&str, Value)], split: Split| -> std::collections::BTreeSet<u32> {
        let f = Family::with_overrides("launch", &overrides(pairs)).expect("valid");
        (0..48u64)
            .filter_map(|seed| f.sample(seed, split).expect("samples").ok())
            .filter_map(|s| s.episodes[0].template)
            .collect()
    };
    assert_eq!(templates(&[("fold", json!(2))], Split::Test), [2, 3].into());
    let train = templates(&[("fold", json!(2))], Split::Train);
    assert!(!train.contains(&2) && !train.contains(&3) && train.len() >= 5, "{train:?}");
    assert_eq!(templates(&[], Split::Test), [6, 7].into(), "fold 0 is the default");
    let within = templates(&[("protocol", json!("within"))], Split::Test);
    assert!(within.len() >= 7, "within-template test draws every template: {within:?}");

    let default = Family::with_overrides("launch", &overrides(&[])).expect("default");
    let params = default.params_json();
    assert!(params.get("fold").is_none() && params.get("protocol").is_none(), "{params}");

    for (pairs, field, says) in [
        (vec![("fold", json!(4))], "launch.fold", "0..4"),
        (vec![("fold", json!(1)), ("protocol", json!("within"))], "launch.fold", "within"),
        (vec![("fold", json!(1)), ("heldout_templates", json!([0, 1]))], "launch.heldout_templates", "either"),
        (vec![("protocol", json!("within")), ("heldout_templates", json!([1]))], "launch.heldout_templates", "within"),
    ] {
        let (f, _, allowed) = invalid(Family::with_overrides("launch", &overrides(&pairs)).expect_err("refused"));
        assert_eq!(f, field, "{pairs:?}");
        assert!(allowed.contains(says), "{pairs:?}: {allowed}");
    }
    // Naming the fold's own templates as well is consistent, not a contradiction.
    Family::with_overrides("launch", &overrides(&[("fold", json!(1)), ("heldout_templates", json!([4, 5]))]))
        .expect("consistent");
}

/// `launch.solvable`: the solver's placements really solve their tasks, a task whose goal
/// is out of reach is not solved, and with the filter on the generator rejects the tasks
/// the solver cannot solve (which the unfiltered family keeps).
#[test]
fn launch_keeps_only_solved_tasks_when_asked() {
    use physworld_sim::{Attempt, LaunchTask, RejectReason, Split, solve};
    let plain = Family::with_overrides("launch", &overrides(&[])).expect("plain");
    let filtered = Family::with_overrides("launch", &overrides(&[("solvable", json!(true))])).expect("filtered");
    let (mut solved, mut refused) = (0, 0);
    for seed in 0..40u64 {
        let task = plain.launch_task(seed, Split::Test).expect("task").expect("a launch task");
        match solve(&task, seed).expect("solves") {
            Some(pl) => {
                solved += 1;
                assert!(matches!(task.attempt(&pl).expect("attempt"), Attempt::Simulated { success: true, .. }));
                assert!(filtered.sample(seed, Split::Test).expect("samples").is_ok(), "seed {seed}");
            }
            None => {
                refused += 1;
                let r = filtered.sample(seed, Split::Test).expect("samples").expect_err("rejected");
                assert_eq!(r.reason, RejectReason::Family, "seed {seed}");
                assert!(plain.sample(seed, Split::Test).expect("samples").is_ok(), "seed {seed}");
            }
        }
    }
    eprintln!("solved {solved} of 40 test tasks");
    assert!(solved >= 30 && refused >= 1, "solved {solved}, refused {refused}");
    // A goal out of reach: no placement gets the target there.
    let mut far: LaunchTask = plain.launch_task(1, Split::Test).expect("task").expect("a launch task");
    far.scene.zones[0].center[0] += 20.0;
    assert_eq!(solve(&far, 1).expect("runs"), None);
}
