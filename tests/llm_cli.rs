//! LLM baselines against a real LLM: SmolLM2-135M-Instruct served by llama.cpp
//! (`.ci/run` starts it and sets `PHYSWORLD_LLM_BASE_URL`).

use std::path::Path;
use std::process::{Command, Output};

fn base_url() -> String {
    std::env::var("PHYSWORLD_LLM_BASE_URL").unwrap_or_else(|_| {
        panic!("PHYSWORLD_LLM_BASE_URL is not set: run the tests with `bash .ci/run`, which starts the local llama.cpp server")
    })
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn bench(data: &Path, model: &str, out: &Path, cache: &Path, tasks: &str, limit: &str) -> Output {
    bench_with(data, model, out, cache, tasks, limit, "1")
}

fn bench_with(data: &Path, model: &str, out: &Path, cache: &Path, tasks: &str, limit: &str, conc: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["bench", "--suite", s(data), "--model", model, "--out", s(out), "--tasks", tasks, "--limit", limit])
        .env("PHYSWORLD_LLM_CACHE", cache)
        .env("PHYSWORLD_LLM_CONCURRENCY", conc)
        .env("OPENAI_API_KEY", "sk-physworld-test-secret")
        .env("ANTHROPIC_API_KEY", "sk-ant-physworld-test-secret")
        .output()
        .expect("runs")
}

fn items(out: &Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(out).expect("out").filter_map(|e| e.ok()) {
        if e.file_name().to_string_lossy().ends_with(".items.jsonl") {
            let t = std::fs::read_to_string(e.path()).expect("read");
            v.extend(t.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")));
        }
    }
    v
}

fn without_wall_time(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| {
            let t = std::fs::read_to_string(e.path()).expect("read");
            let t = t.lines().filter(|l| !l.contains("\"wall_time_s\"")).collect::<Vec<_>>().join("\n");
            (e.file_name().to_string_lossy().into_owned(), t)
        })
        .collect();
    files.sort();
    files
}

/// The built-in tiny suite generated under `dir`.
fn tiny_dataset(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("tiny");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["generate", "--suite", s(&tiny), "--out", s(&data)])
        .output()
        .expect("generates");
    assert!(o.status.success(), "{}", text(&o));
    data
}

fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").filter_map(|e| e.ok()) {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).expect("read")));
            }
        }
    }
    out
}

#[test]
fn openai_and_anthropic_adapters_answer_real_items_through_a_local_llama_cpp_server() {
    let url = base_url();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tiny_dataset(tmp.path());

    // OpenAI-compatible Chat Completions with json_schema structured output.
    let spec = format!("openai:smol@{url}");
    let (out1, cache1) = (tmp.path().join("r1"), tmp.path().join("c1"));
    let o = bench(&data, &spec, &out1, &cache1, "contact,outcome", "4");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("8 requests, 0 cache hits"), "{}", text(&o));
    let logs = items(&out1);
    assert_eq!(logs.len(), 8);
    let valid = logs.iter().filter(|l| l["invalid"] == false).count();
    // Measured: every answer valid (16 of 16 at 8 items a task; the server honours
    // json_schema); the floor leaves room.
    assert!(valid >= 7, "{valid} of 8 answers valid");
    for l in &logs {
        let ex = &l["raw"][0];
        assert_eq!(ex["exchange"]["request"]["response_format"]["type"], "json_schema", "{l}");
        assert_eq!(ex["structured"], true, "{l}");
        let content = ex["exchange"]["response"]["choices"][0]["message"]["content"].as_str().expect("content");
        let v: serde_json::Value = serde_json::from_str(content.trim()).expect("json_schema honoured: JSON content");
        assert!(v["answer"].is_string(), "{content}");
    }

    // A rerun is served from the cache: no request, identical results.
    let out2 = tmp.path().join("r2");
    let o = bench(&data, &spec, &out2, &cache1, "contact,outcome", "4");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 requests, 8 cache hits"), "{}", text(&o));
    assert_eq!(without_wall_time(&out1), without_wall_time(&out2));

    // The same seed gives the same answers from the server itself (fresh cache).
    let (out3, cache3) = (tmp.path().join("r3"), tmp.path().join("c3"));
    let o = bench(&data, &spec, &out3, &cache3, "contact,outcome", "4");
    assert!(o.status.success(), "{}", text(&o));
    let answers = |v: &[serde_json::Value]| v.iter().map(|l| l["prediction"].clone()).collect::<Vec<_>>();
    assert_eq!(answers(&logs), answers(&items(&out3)));

    // Four requests in flight: every item answered, in item order.
    let (out5, cache5) = (tmp.path().join("r5"), tmp.path().join("c5"));
    let o = bench_with(&data, &format!("openai:smol@{url}"), &out5, &cache5, "contact,outcome", "4", "4");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("8 requests, 0 cache hits"), "{}", text(&o));
    let logs5 = items(&out5);
    let ids = |v: &[serde_json::Value]| v.iter().map(|l| l["item"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&logs5), ids(&logs));
    assert!(logs5.iter().filter(|l| l["invalid"] == false).count() >= 7);

    // Anthropic Messages with a forced tool call (the answer schema as input_schema).
    let spec = format!("anthropic:smol@{url}");
    let (out4, cache4) = (tmp.path().join("r4"), tmp.path().join("c4"));
    let o = bench(&data, &spec, &out4, &cache4, "contact", "4");
    // SmolLM2-135M behind llama.cpp's /v1/messages often ignores the forced tool call: a
    // run whose every answer is invalid fails, its result file written.
    assert!(o.status.success() || text(&o).contains("every answer was invalid"), "{}", text(&o));
    let logs4 = items(&out4);
    assert_eq!(logs4.len(), 4);
    for l in &logs4 {
        let req = &l["raw"][0]["exchange"]["request"];
        assert_eq!(req["tool_choice"]["name"], "answer", "{l}");
        assert!(req["max_tokens"].is_u64() && req["system"].is_string(), "{l}");
        assert!(l["raw"][0]["exchange"]["response"]["content"].is_array(), "{l}");
        // An answer the model did not give in a usable form is wrong and counted invalid.
        assert_eq!(l["invalid"], l["raw"][0]["parsed"].is_null(), "{l}");
    }

    // Keys come from the environment and are written nowhere.
    for dir in [&out1, &cache1, &out4, &cache4] {
        let all = all_text(dir);
        assert!(!all.contains("physworld-test-secret"), "a key leaked into {}", dir.display());
    }
}

#[test]
fn gguf_adapter_answers_in_process_and_replays_from_its_cache() {
    let gguf = std::env::var("PHYSWORLD_GGUF")
        .unwrap_or_else(|_| panic!("PHYSWORLD_GGUF is not set: run the tests with `bash .ci/run`"));
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tiny_dataset(tmp.path());

    let spec = format!("gguf:{gguf}");
    let (out1, cache) = (tmp.path().join("g1"), tmp.path().join("gc"));
    let o = bench(&data, &spec, &out1, &cache, "contact,outcome", "3");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 requests, 0 cache hits"), "{}", text(&o));
    let logs = items(&out1);
    assert_eq!(logs.len(), 6);
    for l in &logs {
        // Decoded under the answer grammar: every answer parses.
        assert_eq!(l["invalid"], false, "{l}");
        let ex = &l["raw"][0]["exchange"];
        assert!(ex["request"]["grammar"].is_array(), "{l}");
        let content = ex["response"]["content"].as_str().expect("content");
        let v: serde_json::Value = serde_json::from_str(content).expect("JSON answer");
        assert!(v["answer"].is_string(), "{content}");
        assert!(ex["response"]["usage"]["prompt_tokens"].as_u64().expect("usage") > 100, "{l}");
    }
    let sha = physworld_benchmarks::llm::gguf::sha256_hex(&std::fs::read(&gguf).expect("read"));
    assert!(all_text(&out1).contains(&sha), "the results name the model file by its hash");

    // A rerun generates nothing and writes identical results.
    let out2 = tmp.path().join("g2");
    let o = bench(&data, &spec, &out2, &cache, "contact,outcome", "3");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 requests, 6 cache hits"), "{}", text(&o));
    assert_eq!(without_wall_time(&out1), without_wall_time(&out2));

    // Forecasts: numbers under the positions grammar, every one valid.
    let out4 = tmp.path().join("g4");
    let o = bench(&data, &spec, &out4, &cache, "forecast", "2");
    assert!(o.status.success(), "{}", text(&o));
    let logs = items(&out4);
    assert_eq!(logs.len(), 2);
    for l in &logs {
        assert_eq!(l["invalid"], false, "{l}");
        assert!(l["raw"][0]["exchange"]["request"]["grammar"]["positions"].as_u64().expect("n") >= 2, "{l}");
    }

    // A file that is not a GGUF model is refused with a clear error.
    let junk = tmp.path().join("junk.gguf");
    std::fs::write(&junk, b"not a model").expect("write");
    let o = bench(&data, &format!("gguf:{}", s(&junk)), &tmp.path().join("g3"), &cache, "contact", "1");
    assert!(!o.status.success());
    assert!(text(&o).contains("junk.gguf") && text(&o).contains("GGUF"), "{}", text(&o));
}

fn bench_args(data: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["bench", "--suite", s(data), "--out", s(out)])
        .args(extra)
        .env("PHYSWORLD_LLM_CACHE", cache)
        .output()
        .expect("runs")
}

#[test]
fn prompt_variants_seeds_and_shots_are_runs_reported_as_mean_and_spread() {
    let url = base_url();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tiny_dataset(tmp.path());
    let spec = format!("openai:smol@{url}");
    let (out, cache) = (tmp.path().join("v"), tmp.path().join("vc"));

    // Three prompt variants x two seeds at temperature 0.7: six result files, one row.
    let o = bench_args(
        &data,
        &out,
        &cache,
        &[
            "--model",
            &spec,
            "--tasks",
            "contact",
            "--limit",
            "2",
            "--prompt-variants",
            "0,1,2",
            "--llm-seeds",
            "0,1",
            "--temperature",
            "0.7",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let logs = items(&out);
    assert_eq!(logs.len(), 12);
    let users: std::collections::BTreeSet<String> = logs
        .iter()
        .map(|l| l["raw"][0]["exchange"]["request"]["messages"][1]["content"].as_str().expect("user").to_string())
        .collect();
    assert_eq!(users.len(), 6, "2 items x 3 variants give 6 distinct prompts");
    for l in &logs {
        let req = &l["raw"][0]["exchange"]["request"];
        assert_eq!(req["temperature"], 0.7, "{l}");
        assert!(req["seed"] == 0 || req["seed"] == 1, "{l}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_physworld")).args(["leaderboard", s(&out)]).output().expect("runs");
    assert!(o.status.success(), "{}", text(&o));
    let board = text(&o);
    assert!(board.contains("llm ×6 runs (prompt variants × seeds)"), "{board}");
    assert!(board.contains("(6 seeds)"), "mean ± spread over the runs: {board}");

    // Two solved readout examples before each question, recorded as labels used.
    let (out2, cache2) = (tmp.path().join("k"), tmp.path().join("kc"));
    let o = bench_args(
        &data,
        &out2,
        &cache2,
        &["--model", &spec, "--tasks", "contact,outcome", "--limit", "2", "--shots", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    for l in items(&out2) {
        let msgs = l["raw"][0]["exchange"]["request"]["messages"].as_array().expect("messages").clone();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().expect("role")).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant", "user"], "{l}");
        let shot: serde_json::Value = serde_json::from_str(msgs[2]["content"].as_str().expect("a")).expect("json");
        assert!(shot["answer"].is_string(), "{shot}");
        // Examples come from the readout split, never the item itself.
        assert_ne!(msgs[1]["content"], msgs[5]["content"]);
        assert_ne!(msgs[3]["content"], msgs[5]["content"]);
    }
    let all = all_text(&out2);
    assert!(all.contains("readout split: 2 solved examples per question"), "labels_used recorded");
    assert!(all.contains("#2shot"), "the model id names the shots");

    // Forecasts through json_schema: an array of exactly n triples of numbers.
    let out3 = tmp.path().join("f");
    let o = bench_args(&data, &out3, &cache, &["--model", &spec, "--tasks", "forecast", "--limit", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    let logs = items(&out3);
    assert_eq!(logs.len(), 3);
    for l in &logs {
        let schema = &l["raw"][0]["exchange"]["request"]["response_format"]["json_schema"]["schema"];
        assert_eq!(schema["properties"]["positions"]["items"]["maxItems"], 3, "{l}");
    }
    // Measured: 3 of 3 valid.
    assert!(logs.iter().filter(|l| l["invalid"] == false).count() >= 2, "{logs:?}");

    // A request budget stops the run cleanly; a rerun continues from the cache; --offline
    // replays only. The key comes from the variable --api-key-env names, and leaks nowhere.
    let (out6, cache6) = (tmp.path().join("b"), tmp.path().join("bc"));
    let budget = |extra: &[&str]| {
        let mut args =
            vec!["--model", spec.as_str(), "--tasks", "contact", "--limit", "4", "--api-key-env", "PHYSWORLD_TEST_KEY"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_physworld"))
            .args(["bench", "--suite", s(&data), "--out", s(&out6)])
            .args(&args)
            .env("PHYSWORLD_LLM_CACHE", &cache6)
            .env("PHYSWORLD_TEST_KEY", "sk-physworld-budget-secret")
            .output()
            .expect("runs")
    };
    let o = budget(&["--max-requests", "2"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("budget of 2 spent") && text(&o).contains("rerun"), "{}", text(&o));
    let o = budget(&["--offline"]);
    assert!(!o.status.success() && text(&o).contains("offline"), "{}", text(&o));
    let o = budget(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 requests, 2 cache hits"), "{}", text(&o));
    // The finished run's result is not replaced silently; --force replays over it.
    let o = budget(&["--offline"]);
    assert!(!o.status.success() && text(&o).contains("--force"), "{}", text(&o));
    let o = budget(&["--offline", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 requests, 4 cache hits"), "{}", text(&o));
    for dir in [&out6, &cache6] {
        assert!(!all_text(dir).contains("budget-secret"), "a key leaked into {}", dir.display());
    }

    // The flags are refused for models that are not LLMs.
    let o = bench_args(&data, &tmp.path().join("x"), &cache, &["--model", "oracle", "--shots", "2"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("apply to LLM models"), "{}", text(&o));
    let o = bench_args(&data, &tmp.path().join("x"), &cache, &["--model", &spec, "--prompt-variants", "7"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("prompt variant") && text(&o).contains('7'), "{}", text(&o));
}

/// A small planning dataset: `launch` only, 3 test items from the held-out templates.
fn launch_dataset(dir: &Path) -> std::path::PathBuf {
    family_dataset(dir, "launch")
}

/// A small dataset of one `family`, 3 test items.
fn family_dataset(dir: &Path, family: &str) -> std::path::PathBuf {
    let suite = dir.join(format!("{family}.toml"));
    std::fs::write(
        &suite,
        format!("[suite]\nname = \"{family}-llm\"\nseed = 7\nsamples_per_file = 16\nmax_objects = 4\n\n[splits]\ntrain = 2\nval = 1\nreadout = 1\ntest = 3\n\n[[family]]\nname = \"{family}\"\n"),
    )
    .expect("suite");
    let data = dir.join(family);
    let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["generate", "--suite", s(&suite), "--out", s(&data)])
        .output()
        .expect("generates");
    assert!(o.status.success(), "{}", text(&o));
    data
}

/// SmolLM2 plays whole `plan-launch` items as dialogues, through the llama.cpp server
/// (json_schema) and in-process (a grammar): every reply is a placement or counted, every
/// outcome goes back as the next turn, the scene shows no hidden property, and a rerun (by
/// `bench` or by `plan`) replays the dialogues from the cache with identical results.
#[test]
fn llms_play_plan_launch_items_as_dialogues_through_the_server_and_in_process() {
    let url = base_url();
    let gguf = std::env::var("PHYSWORLD_GGUF")
        .unwrap_or_else(|_| panic!("PHYSWORLD_GGUF is not set: run the tests with `bash .ci/run`"));
    let tmp = tempfile::tempdir().expect("tmp");
    let data = launch_dataset(tmp.path());
    for (name, spec) in [("server", format!("openai:smol@{url}")), ("gguf", format!("gguf:{gguf}"))] {
        let (out, cache) = (tmp.path().join(name), tmp.path().join(format!("{name}-cache")));
        // One item, one attempt: SmolLM2-135M tends to repeat a refused placement, which
        // then costs eleven replies (the refusal streak rule) with a growing dialogue.
        let args = ["--model", &spec, "--tasks", "plan-launch", "--plan-attempts", "1", "--limit", "1"];
        let o = bench_args(&data, &out, &cache, &args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let logs = items(&out);
        assert_eq!(logs.len(), 1, "{name}");
        let mut replies = 0;
        for l in &logs {
            assert_eq!(l["task"], "plan-launch", "{l}");
            let p = &l["prediction"];
            let (attempts, invalid) =
                (p["attempts"].as_u64().expect("a"), p["invalid_placements"].as_u64().expect("i"));
            assert_eq!(attempts, 1, "{l}");
            let raw = &l["raw"];
            let turns = raw["dialogue"].as_array().expect("dialogue");
            // One reply per proposal: each attempt and each refused placement (a refusal past
            // the streak limit is both), user and assistant in turn; the last outcome is
            // never sent.
            let proposals = turns.len() as u64 / 2;
            assert!(turns.len() % 2 == 0 && proposals >= invalid.max(1) && proposals <= attempts + invalid, "{l}");
            for (k, t) in turns.iter().enumerate() {
                assert_eq!(t["role"], if k % 2 == 0 { "user" } else { "assistant" }, "{l}");
            }
            let first = turns[0]["content"].as_str().expect("scene");
            assert!(first.contains("Goal zone") && first.contains("Target: a ball"), "{first}");
            assert!(!first.contains("mass") && !first.contains("friction"), "no hidden property: {first}");
            // Each later user turn reports the previous reply's fate.
            for t in turns.iter().skip(2).step_by(2) {
                let c = t["content"].as_str().expect("outcome");
                assert!(
                    c.starts_with("Failed: the target ended at")
                        || c.starts_with("Refused, not simulated")
                        || c.starts_with("That was not a placement"),
                    "{c}"
                );
            }
            let responses = raw["responses"].as_array().expect("responses");
            assert_eq!(responses.len() as u64, proposals, "{l}");
            if name == "gguf" {
                // Decoded under the placement grammar: every reply parses.
                assert_eq!(raw["request"]["grammar"]["placement"], serde_json::json!(["x", "y", "radius"]), "{l}");
                assert!(responses.iter().all(|r| r["parsed"].is_string()), "{l}");
                assert_eq!(l["invalid"], false, "{l}");
            } else {
                let schema = &raw["request"]["response_format"]["json_schema"]["schema"];
                assert_eq!(schema["required"], serde_json::json!(["x", "y", "radius"]), "{l}");
                assert!(schema["properties"]["radius"]["minimum"].as_f64().expect("min") > 0.0, "{l}");
            }
            replies += proposals;
        }
        assert!(text(&o).contains(&format!("{replies} requests, 0 cache hits")), "{name}: {}", text(&o));

        // A rerun sends nothing and writes the same results.
        let again = tmp.path().join(format!("{name}-again"));
        let o = bench_args(&data, &again, &cache, &args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(text(&o).contains(&format!("0 requests, {replies} cache hits")), "{name}: {}", text(&o));
        assert_eq!(without_wall_time(&out), without_wall_time(&again), "{name}");

        // `plan` plays the same first item the same way, from the same cache.
        let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
            .args(["plan", "--model", &spec, "--data", s(&data), "--item", "0", "--attempts", "1", "--json"])
            .env("PHYSWORLD_LLM_CACHE", &cache)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("0 requests"), "{name}: {}", text(&o));
        let run: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let item = &run["items"][0];
        assert_eq!(item["attempts"], logs[0]["prediction"]["attempts"], "{name}");
        assert_eq!(item["first_success"], logs[0]["prediction"]["first_success"], "{name}");
        assert_eq!(item["raw"]["dialogue"], logs[0]["raw"]["dialogue"], "{name}");
    }
}

/// SmolLM2 pushes a puck in closed loop as a dialogue, through the llama.cpp server
/// (json_schema) and in-process (a grammar): one force per reply, the puck's new state back
/// as the next turn, no hidden property in the scene, and a rerun (by `bench` or by `plan`)
/// replays the dialogue from the cache with identical results.
#[test]
fn llms_push_as_dialogues_through_the_server_and_in_process() {
    let url = base_url();
    let gguf = std::env::var("PHYSWORLD_GGUF")
        .unwrap_or_else(|_| panic!("PHYSWORLD_GGUF is not set: run the tests with `bash .ci/run`"));
    let tmp = tempfile::tempdir().expect("tmp");
    let data = family_dataset(tmp.path(), "push");
    for (name, spec) in [("server", format!("openai:smol@{url}")), ("gguf", format!("gguf:{gguf}"))] {
        let (out, cache) = (tmp.path().join(name), tmp.path().join(format!("{name}-cache")));
        // A force held 1 s: three replies per 3 s episode.
        let args = ["--model", &spec, "--tasks", "plan-push", "--push-hold", "30", "--limit", "1"];
        let o = bench_args(&data, &out, &cache, &args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let logs = items(&out);
        assert_eq!(logs.len(), 1, "{name}");
        let l = &logs[0];
        assert_eq!(l["task"], "plan-push", "{l}");
        assert_eq!(l["prediction"]["actions"], 3, "{l}");
        let raw = &l["raw"];
        let turns = raw["dialogue"].as_array().expect("dialogue");
        assert_eq!(turns.len(), 6, "{l}");
        for (k, t) in turns.iter().enumerate() {
            assert_eq!(t["role"], if k % 2 == 0 { "user" } else { "assistant" }, "{l}");
        }
        let first = turns[0]["content"].as_str().expect("scene");
        assert!(first.contains("Goal zone") && first.contains("Puck: a cylinder"), "{first}");
        assert!(first.contains("At t = 0.00 s the puck is at"), "{first}");
        assert!(!first.contains("kg") && !first.contains("coefficient"), "no hidden property: {first}");
        for (t, secs) in turns.iter().skip(2).step_by(2).zip(["1.00", "2.00"]) {
            let c = t["content"].as_str().expect("state");
            assert!(c.contains(&format!("At t = {secs} s the puck")), "{c}");
        }
        let responses = raw["responses"].as_array().expect("responses");
        assert_eq!(responses.len(), 3, "{l}");
        let unusable = l["prediction"]["unusable"].as_u64().expect("unusable");
        assert_eq!(unusable as usize, responses.iter().filter(|r| r["parsed"].is_null()).count(), "{l}");
        if name == "gguf" {
            // Decoded under the force grammar: every reply parses.
            assert_eq!(raw["request"]["grammar"]["force"], serde_json::json!(["fx", "fz"]), "{l}");
            assert_eq!(unusable, 0, "{l}");
        } else {
            let schema = &raw["request"]["response_format"]["json_schema"]["schema"];
            assert_eq!(schema["required"], serde_json::json!(["fx", "fz"]), "{l}");
            assert!(schema["properties"]["fx"]["maximum"].as_f64().expect("max") > 0.0, "{l}");
        }
        assert!(text(&o).contains("3 requests, 0 cache hits"), "{name}: {}", text(&o));

        // A rerun sends nothing and writes the same results.
        let again = tmp.path().join(format!("{name}-again"));
        let o = bench_args(&data, &again, &cache, &args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(text(&o).contains("0 requests, 3 cache hits"), "{name}: {}", text(&o));
        assert_eq!(without_wall_time(&out), without_wall_time(&again), "{name}");

        // `plan` plays the same first item the same way, from the same cache.
        let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
            .args(["plan", "--task", "push", "--model", &spec, "--data", s(&data), "--item", "0", "--hold", "30"])
            .arg("--json")
            .env("PHYSWORLD_LLM_CACHE", &cache)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("0 requests"), "{name}: {}", text(&o));
        let run: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let item = &run["items"][0];
        assert_eq!(item["success"], l["prediction"]["success"], "{name}");
        assert_eq!(item["final_distance"], l["prediction"]["final_distance"], "{name}");
        assert_eq!(item["raw"]["dialogue"], raw["dialogue"], "{name}");
    }
}
