//! The in-process GGUF model (`gguf:`) against llama.cpp running the same file:
//! tokenisation token-for-token (`/tokenize`), the chat template (`/apply-template`) and
//! greedy decoding (`/completion`). `.ci/run` starts the server and sets
//! `PHYSWORLD_LLM_BASE_URL` and `PHYSWORLD_GGUF`.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use physworld_benchmarks::llm::gguf::Gguf;
use physworld_benchmarks::llm::grammar::Grammar;
use physworld_benchmarks::llm::render::SYSTEM;
use serde_json::{Value, json};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with `bash .ci/run`, which starts llama.cpp"))
}

fn model() -> &'static Mutex<Gguf> {
    static M: OnceLock<Mutex<Gguf>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(Gguf::load(&PathBuf::from(env("PHYSWORLD_GGUF"))).expect("loads the GGUF")))
}

fn post(path: &str, body: Value) -> Value {
    let url = format!("{}{path}", env("PHYSWORLD_LLM_BASE_URL"));
    let mut r = ureq::post(&url)
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("llama.cpp answers");
    serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json")
}

fn llama_tokens(text: &str, add_special: bool) -> Vec<u32> {
    let v = post("/tokenize", json!({"content": text, "add_special": add_special, "parse_special": true}));
    v["tokens"].as_array().expect("tokens").iter().map(|t| t.as_u64().expect("id") as u32).collect()
}

/// Texts that exercise the pre-tokenizer: digit splitting, whitespace runs before words
/// and at the end, newlines, contractions, punctuation runs, non-ASCII letters, symbols,
/// emoji and special tokens written inline.
const TEXTS: &[&str] = &[
    "Hello world",
    "t=0.333s: object 2 (0.25, -1.07, 3.00); (0.00, -9.81, 0.00) | object 5 (12.50, 0.10, -0.04)",
    "  leading spaces,\ttabs\t\tand   runs of   spaces  ",
    "line one\n\nline two\n  indented\r\nwindows\n",
    "It's, they'll, we've, I'd, you're, I'm, 'tis, don't, ''quoted'' 'S",
    "Reply as JSON {\"answer\": \"...\"} or end with a line `Answer: <answer>`.",
    "9.81 m/s^2 along -y; 1234567890 + 3.14159 = ?!?! ... --- *** ###",
    "Naïve café, Ünïcödé, Straße, Ελληνικά, русский, 日本語のテキスト, 中文, 한국어",
    "emoji 🙂🚀 and symbols ± × ÷ ≤ ≥ ∞ √ ° µ €",
    "<|im_start|>user\nIs it possible?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more <|im_end|>",
    "Frames are 0.0333 s apart (30 per second).\nObjects (half extents along x, y, z):\n- object 0: box",
    "x",
    " ",
    "",
];

#[test]
fn tokenizer_matches_llama_cpp_token_for_token() {
    let m = model().lock().expect("model");
    for text in TEXTS {
        let ours = m.tokenizer.encode(text, false, true);
        assert_eq!(ours, llama_tokens(text, false), "tokens of {text:?}");
        assert_eq!(
            m.tokenizer.decode(&ours),
            text.replace("<|im_start|>", "").replace("<|im_end|>", "").replace("<|endoftext|>", "")
        );
    }
    // With BOS handling as the file asks (SmolLM2 adds none).
    assert_eq!(m.tokenizer.encode(TEXTS[0], true, true), llama_tokens(TEXTS[0], true));
}

#[test]
fn chat_template_matches_llama_cpp() {
    let m = model().lock().expect("model");
    let user = "Question: will object 1 touch object 3 at any time before t=2.00s?\nAllowed answers: yes, no.";
    let ours = m.chat_prompt(&[("system", SYSTEM), ("user", user)]).expect("renders");
    let theirs = post(
        "/apply-template",
        json!({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}),
    );
    assert_eq!(ours, theirs["prompt"].as_str().expect("prompt"));
    assert_eq!(m.encode_prompt(&ours), llama_tokens(&ours, true));
}

/// Our greedy tokens against llama.cpp's for `user`, compared until either side's top two
/// logits are within a near tie; returns how many were compared.
fn greedy_agreement(m: &mut Gguf, user: &str, n: usize) -> usize {
    const TIE: f64 = 0.05;
    let prompt = m.chat_prompt(&[("system", SYSTEM), ("user", user)]).expect("renders");
    let tokens = m.encode_prompt(&prompt);
    let ours = m.generate(&tokens, n, None).expect("generates");
    let theirs = post(
        "/completion",
        json!({"prompt": tokens, "n_predict": n, "temperature": 0.0, "n_probs": 2, "cache_prompt": false,
               "return_tokens": true, "samplers": ["top_k"], "top_k": 1}),
    );
    let probs = theirs["completion_probabilities"].as_array().expect("probabilities");
    let mut compared = 0;
    for (i, &a) in ours.tokens.iter().enumerate() {
        let Some(p) = probs.get(i) else { break };
        let b = p["id"].as_u64().expect("id") as u32;
        let top = p["top_logprobs"].as_array().expect("top");
        let their_margin = top[0]["logprob"].as_f64().unwrap_or(0.0) - top[1]["logprob"].as_f64().unwrap_or(f64::MIN);
        if f64::from(ours.margins[i]).min(their_margin) < TIE {
            // A near tie: either choice is greedy. The same choice keeps both on one path
            // (not counted); a different one ends the comparison.
            eprintln!(
                "near tie at token {i}: ours {a} (margin {:.3}), llama.cpp {b} (margin {their_margin:.3})",
                ours.margins[i]
            );
            if a == b {
                continue;
            }
            break;
        }
        assert_eq!(
            a,
            b,
            "token {i}: ours {a} ({:?}) vs llama.cpp {b}; ours so far {:?}",
            m.tokenizer.decode(&[a]),
            ours.text
        );
        compared += 1;
    }
    // Where every token agreed, both ended alike: at the end of turn (which llama.cpp lists
    // as a last token) or after `n` tokens.
    if ours.tokens.iter().zip(probs).all(|(&a, p)| p["id"].as_u64() == Some(u64::from(a))) {
        let extra: Vec<u64> =
            probs[ours.tokens.len().min(probs.len())..].iter().filter_map(|p| p["id"].as_u64()).collect();
        match ours.finish {
            "stop" => {
                assert_eq!(extra, [u64::from(m.tokenizer.eos.expect("eos"))], "llama.cpp did not end the turn with us")
            }
            _ => assert!(extra.is_empty(), "llama.cpp gave {} tokens, we {}", probs.len(), ours.tokens.len()),
        }
    }
    eprintln!("greedy: {compared} tokens identical to llama.cpp: {:?}", ours.text);
    compared
}

#[test]
fn greedy_decoding_matches_llama_cpp_until_a_near_tie() {
    let mut m = model().lock().expect("model");
    let short = greedy_agreement(&mut m, "Explain in two sentences why a ball thrown upwards comes back down.", 40);
    assert!(short >= 16, "only {short} tokens compared before a near tie");
    // A benchmark-sized prompt (~1000 tokens: the scene of a whole episode).
    let scene: String = (0..30)
        .map(|f| {
            format!(
                "t={:.3}s: object 0 (0.00, {:.2}, 0.00); (0.00, {:.2}, 0.00)\n",
                f as f64 / 15.0,
                2.0 - 0.0545 * (f * f) as f64,
                -1.635 * f as f64
            )
        })
        .collect();
    let long = greedy_agreement(&mut m, &format!("{scene}Describe the motion of object 0 in one sentence."), 24);
    assert!(long >= 12, "only {long} tokens compared before a near tie");
}

#[test]
fn constrained_answers_are_always_one_of_the_choices() {
    let mut m = model().lock().expect("model");
    let choices = vec!["possible".to_string(), "impossible".to_string()];
    let texts = physworld_benchmarks::llm::client::answer_texts(&choices);
    let prompt = m
        .chat_prompt(&[
            ("system", SYSTEM),
            ("user", "Can a box float in mid-air forever? Allowed answers: possible, impossible."),
        ])
        .expect("renders");
    let tokens = m.encode_prompt(&prompt);
    let g = m.generate(&tokens, 32, Some(&Grammar::Choices(texts.clone()))).expect("generates");
    assert_eq!(g.finish, "stop");
    assert!(texts.contains(&g.text), "{:?}", g.text);
    assert!(physworld_benchmarks::llm::render::parse_answer(&g.text, &choices).is_some());
}

#[test]
fn constrained_positions_are_exactly_n_triples() {
    let mut m = model().lock().expect("model");
    let user = "A ball is at (0.00, 2.00, 0.00) m at rest at t=0. Where is it at t=0.300s and at t=0.600s? \
                Reply as JSON {\"positions\": [[x, y, z], ...]} with exactly 2 positions.";
    let prompt = m.chat_prompt(&[("system", SYSTEM), ("user", user)]).expect("renders");
    let tokens = m.encode_prompt(&prompt);
    let g = m.generate(&tokens, 80, Some(&Grammar::Positions(2))).expect("generates");
    assert_eq!(g.finish, "stop", "{:?}", g.text);
    let p = physworld_benchmarks::llm::render::parse_positions(&g.text, 2);
    assert!(p.is_some(), "{:?}", g.text);
    eprintln!("positions: {}", g.text);
}
