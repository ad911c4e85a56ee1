//! The LLM client against a scripted local server: timeouts, 429 with Retry-After, 500,
//! malformed and truncated bodies. Retries as specified, invalid answers where nothing
//! usable came back, never a crash, and only real answers cached.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use physworld_benchmarks::llm::{Client, LlmConfig, Provider, Turn};

/// One scripted reply: raw bytes to write (or `None` to hang until the client gives up).
type Script = Vec<Option<String>>;

fn http(status: &str, extra: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    ))
}

fn ok_answer(answer: &str) -> Option<String> {
    let content = serde_json::json!({ "answer": answer }).to_string();
    let body =
        serde_json::json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] }).to_string();
    http("200 OK", "", &body)
}

/// Serve `script` in order, one connection per reply; returns the base URL and a log of
/// request bodies.
fn server(script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for reply in script {
            let Ok((mut s, _)) = listener.accept() else { return };
            let mut buf = vec![0u8; 65536];
            let mut req = Vec::new();
            // Read headers and the body (content-length).
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= h + 4 + len {
                        break;
                    }
                }
            }
            if let Ok(mut l) = log.lock() {
                l.push(String::from_utf8_lossy(&req).to_string());
            }
            match reply {
                Some(r) => {
                    let _ = s.write_all(r.as_bytes());
                }
                None => std::thread::sleep(Duration::from_secs(3)),
            }
        }
    });
    (url, seen)
}

fn client(url: &str, cache: &std::path::Path) -> Client {
    let mut cfg = LlmConfig::from_spec(Provider::OpenAi, &format!("m@{url}"));
    cfg.cache_dir = cache.to_path_buf();
    cfg.timeout = Duration::from_millis(1500);
    cfg.retries = 3;
    cfg.offline = false;
    Client::new(cfg)
}

fn choices() -> Vec<String> {
    vec!["yes".into(), "no".into()]
}

#[test]
fn retries_on_429_500_and_timeouts_then_answers_and_caches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (url, seen) = server(vec![
        http("429 Too Many Requests", "retry-after: 0\r\n", "{\"error\": \"slow down\"}"),
        http("500 Internal Server Error", "", "{\"error\": \"oops\"}"),
        None, // hangs: the client times out
        ok_answer("no"),
    ]);
    let c = client(&url, tmp.path());
    let r = c.ask("sys", &[Turn::user("Will it touch?")], &choices()).expect("answers after retries");
    assert!(r.text.contains("no"), "{}", r.text);
    assert!(r.structured);
    let st = c.stats();
    assert_eq!((st.requests, st.retries, st.cache_hits), (4, 3, 0), "{st:?}");
    assert_eq!(seen.lock().map(|l| l.len()).unwrap_or(0), 4);
    // Asked again: from the cache, no request.
    let again = c.ask("sys", &[Turn::user("Will it touch?")], &choices()).expect("cached");
    assert_eq!(again.text, r.text);
    assert_eq!(c.stats().cache_hits, 1);
    assert_eq!(c.stats().requests, 4);
}

#[test]
fn malformed_and_truncated_bodies_are_unusable_answers_not_crashes_and_are_not_cached() {
    let tmp = tempfile::tempdir().expect("tmp");
    let truncated = Some("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{\"choices\": [".to_string());
    let (url, _) = server(vec![
        http("200 OK", "", "this is not json"),
        truncated.clone(),
        truncated.clone(),
        truncated.clone(),
        truncated,
    ]);
    let c = client(&url, tmp.path());
    // Malformed: a complete response that is not JSON: no retry, no text, not structured.
    let r = c.ask("sys", &[Turn::user("q1")], &choices()).expect("a reply");
    assert!(r.text.is_empty() && !r.structured, "{r:?}");
    // Truncated every time: retried, then a clear error (the adapter counts it invalid).
    let e = c.ask("sys", &[Turn::user("q2")], &choices()).expect_err("truncated bodies");
    assert!(e.to_string().contains("after 4 attempts"), "{e}");
    // Nothing but real answers reaches the cache.
    let cached = walk(tmp.path());
    assert_eq!(cached, 0, "error responses were cached");
}

#[test]
fn a_spent_budget_stops_cleanly_and_offline_replays_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (url, _) = server(vec![ok_answer("yes")]);
    let mut cfg = LlmConfig::from_spec(Provider::OpenAi, &format!("m@{url}"));
    cfg.cache_dir = tmp.path().to_path_buf();
    cfg.max_requests = Some(1);
    cfg.offline = false;
    let c = Client::new(cfg.clone());
    c.ask("sys", &[Turn::user("q1")], &choices()).expect("first answer");
    let e = c.ask("sys", &[Turn::user("q2")], &choices()).expect_err("budget");
    assert!(e.to_string().contains("budget of 1"), "{e}");
    // Offline: the cached answer replays, anything else is a clear error.
    let off = Client::new(LlmConfig { offline: true, max_requests: None, ..cfg });
    assert!(off.ask("sys", &[Turn::user("q1")], &choices()).expect("replay").text.contains("yes"));
    assert!(off.ask("sys", &[Turn::user("q2")], &choices()).expect_err("not cached").to_string().contains("--offline"));
    assert_eq!(off.stats().requests, 0);
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn the_rate_limit_spaces_requests_across_threads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (url, seen) = server((0..4).map(|_| ok_answer("yes")).collect());
    let mut cfg = LlmConfig::from_spec(Provider::OpenAi, &format!("m@{url}"));
    cfg.cache_dir = tmp.path().to_path_buf();
    cfg.offline = false;
    cfg.max_rps = Some(5.0);
    let c = Client::new(cfg);
    let t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for q in ["q1", "q2", "q3", "q4"] {
            let c = &c;
            s.spawn(move || c.ask("sys", &[Turn::user(q)], &choices()).expect("answer"));
        }
    });
    // Four requests at most 5 per second: the last starts at least 0.6 s after the first
    // (a lower bound, which a slow machine cannot break).
    assert!(t0.elapsed() >= Duration::from_millis(600), "{:?}", t0.elapsed());
    assert_eq!(seen.lock().map(|l| l.len()).unwrap_or(0), 4);
}

#[test]
fn a_401_stops_at_once_with_the_providers_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let body = r#"{"error": {"message": "Incorrect API key provided: sk-wr***", "type": "invalid_request_error"}}"#;
    let (url, seen) = server(vec![http("401 Unauthorized", "", body), ok_answer("yes")]);
    let c = client(&url, tmp.path());
    let e = c.ask("sys", &[Turn::user("q1")], &choices()).expect_err("401");
    assert!(matches!(e, physworld_benchmarks::BenchError::Halt { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("HTTP 401") && msg.contains("Incorrect API key"), "{msg}");
    // Neither retried nor asked again in the next structured-output mode.
    assert_eq!((c.stats().requests, c.stats().retries), (1, 0));
    assert_eq!(seen.lock().map(|l| l.len()).unwrap_or(0), 1);
    assert_eq!(walk(tmp.path()), 0, "an error was cached");
}

#[test]
fn token_and_cost_budgets_stop_cleanly_and_the_answering_snapshot_is_recorded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let answer = |a: &str| {
        let content = serde_json::json!({ "answer": a }).to_string();
        let body = serde_json::json!({
            "model": "m-2026-11-01",
            "system_fingerprint": "fp_1",
            "choices": [{ "message": { "role": "assistant", "content": content } }],
            "usage": { "prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000 },
        });
        http("200 OK", "", &body.to_string())
    };
    let (url, seen) = server(vec![answer("yes"), answer("no"), answer("yes")]);
    let mut c = client(&url, tmp.path());
    c.set_budget(Some(1500), None, None);
    let r = c.ask("sys", &[Turn::user("q1")], &choices()).expect("first answer");
    assert_eq!(r.resolved_model.as_deref(), Some("m-2026-11-01"));
    assert_eq!(r.fingerprint.as_deref(), Some("fp_1"));
    c.ask("sys", &[Turn::user("q2")], &choices()).expect("second answer: 1000 of 1500 used");
    let st = c.stats();
    assert_eq!((st.input_tokens, st.output_tokens), (1800, 200));
    let e = c.ask("sys", &[Turn::user("q3")], &choices()).expect_err("budget");
    assert!(matches!(e, physworld_benchmarks::BenchError::Halt { .. }), "{e:?}");
    assert!(e.to_string().contains("token budget of 1500 (2000 used)"), "{e}");
    assert_eq!(seen.lock().map(|l| l.len()).unwrap_or(0), 2);
    // Cached answers are free: asked again, no budget is touched.
    c.ask("sys", &[Turn::user("q1")], &choices()).expect("cached");
    // A cost budget at a price: 1800 input tokens at $1/M and 200 output at $10/M = $0.0038.
    let price = physworld_benchmarks::llm::Price::parse("1,10").expect("price");
    assert!((st.cost(&price) - 0.0038).abs() < 1e-12);
    let mut c2 = client(&url, tmp.path());
    c2.set_budget(None, Some(0.001), Some(price));
    c2.ask("sys", &[Turn::user("q4")], &choices()).expect("nothing spent yet");
    let e = c2.ask("sys", &[Turn::user("q5")], &choices()).expect_err("$0.0019 of $0.001 spent");
    assert!(e.to_string().contains("cost budget of $0.001"), "{e}");
    assert_eq!(seen.lock().map(|l| l.len()).unwrap_or(0), 3);
    let e = physworld_benchmarks::llm::Price::parse("1").expect_err("one number").to_string();
    assert!(e.contains("IN,OUT"), "{e}");
}

#[test]
fn the_run_grid_crosses_variants_and_seeds_and_names_a_bad_budget() {
    use physworld_benchmarks::llm::LlmRun;
    let base = LlmRun { shots: 2, temperature: 0.5, max_requests: Some(10), ..LlmRun::default() };
    let runs = LlmRun::grid(&base, &[0, 2], &[0, 7]).expect("grid");
    let ids: Vec<String> = runs.iter().map(LlmRun::suffix).collect();
    assert_eq!(ids, ["#2shot#t0.5", "#s7#2shot#t0.5", "#p2#2shot#t0.5", "#p2#s7#2shot#t0.5"]);
    assert!(runs.iter().all(|r| r.max_requests == Some(10)));
    for (bad, field) in [
        (LlmRun { max_requests: Some(0), ..LlmRun::default() }, "max_requests"),
        (LlmRun { max_tokens_total: Some(0), ..LlmRun::default() }, "max_tokens_total"),
        (LlmRun { max_cost_usd: Some(-1.0), ..LlmRun::default() }, "max_cost_usd"),
        (LlmRun { max_cost_usd: Some(f64::NAN), ..LlmRun::default() }, "max_cost_usd"),
    ] {
        let e = LlmRun::grid(&bad, &[0], &[0]).expect_err("refused").to_string();
        assert!(e.contains(field), "{e}");
    }
}
