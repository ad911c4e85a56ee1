//! Suite files: bad input names the file, the key and the line.

use std::path::Path;

use physworld_pipeline::Suite;

fn err(src: &str) -> String {
    Suite::parse(src, Path::new("datasets/bad.toml")).expect_err("invalid").to_string()
}

const HEAD: &str = "[suite]\nname = \"x\"\nseed = 1\n\n[splits]\ntrain = 4\nval = 1\nreadout = 1\ntest = 1\n";

#[test]
fn unknown_keys_wrong_types_and_ranges_name_file_key_and_line() {
    let e = err(&format!("{HEAD}colour = 3\n[[family]]\nname = \"drop\"\n"));
    assert!(e.starts_with("datasets/bad.toml:") && e.contains("colour") && e.contains("line 10"), "{e}");

    let e = err(
        "[suite]\nname = \"x\"\nseed = \"one\"\n[splits]\ntrain = 4\nval = 1\nreadout = 1\ntest = 1\n[[family]]\nname = \"drop\"\n",
    );
    assert!(e.contains("line 3") && e.contains("seed"), "{e}");

    let e = err(&format!("{HEAD}[[family]]\nname = \"drop\"\nparams = {{ height = [2.0, 1.0] }}\n"));
    assert!(e.contains("drop.height") && e.contains("line 12") && e.contains("min <= max"), "{e}");

    let e = err(&format!("{HEAD}[[family]]\nname = \"drop\"\n[family.params]\ncount = 3\ncuont = 2\n"));
    assert!(e.contains("drop.cuont") && e.contains("line 14"), "{e}");

    let e = err(&format!("{HEAD}[[family]]\nname = \"dominos\"\n"));
    assert!(e.contains("unknown scenario family `dominos`") && e.contains("line 11"), "{e}");

    let e = err(
        "[suite]\nname = \"x\"\nseed = 1\nsamples_per_file = 0\n[splits]\ntrain = 4\nval = 1\nreadout = 1\ntest = 1\n[[family]]\nname = \"drop\"\n",
    );
    assert!(e.contains("suite.samples_per_file") && e.contains("line 4"), "{e}");

    let e = err(HEAD);
    assert!(e.contains("family"), "{e}");
}

#[test]
fn shipped_suites_load() {
    for name in ["tiny", "physion", "intphys", "planning"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets").join(format!("{name}.toml"));
        let s = Suite::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.suite.name, name);
    }
}

#[test]
fn the_hash_covers_every_parameter() {
    let a = Suite::parse(&format!("{HEAD}[[family]]\nname = \"drop\"\n"), Path::new("a")).expect("ok");
    let b = Suite::parse(&format!("{HEAD}[[family]]\nname = \"drop\"\nparams = {{ count = 3 }}\n"), Path::new("b"))
        .expect("ok");
    assert_ne!(a.content_hash(), b.content_hash());
    assert_eq!(a.content_hash(), a.clone().content_hash());
}

#[test]
fn what_models_observe_is_a_suite_setting_in_the_hash() {
    let parse = |extra: &str| {
        Suite::parse(&format!("{HEAD}{extra}[[family]]\nname = \"drop\"\n"), Path::new("o.toml")).expect("ok")
    };
    let default = parse("");
    assert!(!default.observation.hidden_properties);
    // Writing the default changes nothing, not even the hash.
    let explicit = parse("[observation]\nhidden_properties = false\n");
    assert_eq!(explicit.content_hash(), default.content_hash());
    let exposed = parse("[observation]\nhidden_properties = true\n");
    assert!(exposed.observation.hidden_properties);
    assert_ne!(exposed.content_hash(), default.content_hash());
    assert_eq!(exposed.observation.name(), "visible-state+hidden-properties");
    let e = err(&format!("{HEAD}[observation]\nmasses = true\n[[family]]\nname = \"drop\"\n"));
    assert!(e.contains("masses") && e.contains("hidden_properties"), "{e}");
}

/// The `[camera]` table sets every family's `fov_y_deg`; a family's own wins; the hash moves
/// only when it is set; bad values name `camera.fov_y_deg` and its line.
#[test]
fn the_camera_table_sets_every_family_s_field_of_view() {
    let parse = |extra: &str, families: &str| {
        Suite::parse(&format!("{HEAD}{extra}{families}"), Path::new("c.toml")).expect("ok")
    };
    let two = "[[family]]\nname = \"drop\"\n[[family]]\nname = \"push\"\nparams = { fov_y_deg = [20, 30] }\n";
    let plain = parse("", two);
    assert!(plain.families[0].params.get("fov_y_deg").is_none(), "absent unless set");
    let set = parse("[camera]\nfov_y_deg = [40, 60]\n", two);
    assert_eq!(set.families[0].params["fov_y_deg"], serde_json::json!([40.0, 60.0]));
    assert_eq!(set.families[1].params["fov_y_deg"], serde_json::json!([20.0, 30.0]), "the family's own wins");
    assert_ne!(set.content_hash(), plain.content_hash());
    assert_eq!(parse("[camera]\n", two).content_hash(), plain.content_hash());
    let e = err(&format!("{HEAD}[camera]\nfov_y_deg = [40, 400]\n[[family]]\nname = \"drop\"\n"));
    assert!(e.contains("camera.fov_y_deg") && e.contains("line 11") && e.contains("within [10, 120]"), "{e}");
    // A bad parameter of the family's own is named, not the camera's.
    let e = err(&format!(
        "{HEAD}[camera]\nfov_y_deg = [40, 60]\n[[family]]\nname = \"drop\"\nparams = {{ height = \"x\" }}\n"
    ));
    assert!(e.contains("drop.height") && !e.contains("camera.fov_y_deg"), "{e}");
    let e = err(&format!("{HEAD}[camera]\nfov = 40\n[[family]]\nname = \"drop\"\n"));
    assert!(e.contains("fov") && e.contains("fov_y_deg"), "{e}");
}
