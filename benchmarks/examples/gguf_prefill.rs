//! How fast `gguf:` reads a prompt: a scene-like user message of ROWS state lines through
//! the model's chat template, then 8 greedy tokens.
//!
//! ```sh
//! cargo run --release -p physworld-benchmarks --example gguf_prefill -- MODEL.gguf [ROWS] [--quantized]
//! ```
//! `--quantized` keeps candle's quantized weights instead of dequantizing them to f32.

use std::path::Path;
use std::time::Instant;

use physworld_benchmarks::llm::gguf::Gguf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: gguf_prefill MODEL.gguf [ROWS] [--quantized]")?;
    let rows: usize = args.get(1).filter(|a| !a.starts_with("--")).map_or(Ok(20), |r| r.parse())?;
    let quantized = args.iter().any(|a| a == "--quantized");
    let t = Instant::now();
    let mut m = Gguf::load_with(Path::new(path), !quantized)?;
    let load = t.elapsed().as_secs_f64();
    let text =
        "t=0.333s: object 2 (0.25, -1.07, 3.00); (0.00, -9.81, 0.00) | object 5 (12.50, 0.10, -0.04)\n".repeat(rows);
    let tokens = m.encode_prompt(&m.chat_prompt(&[("user", &text)])?);
    let t = Instant::now();
    let g = m.generate(&tokens, 8, None)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} weights: load {load:.2} s; {} prompt tokens + {} generated in {secs:.2} s ({:.0} prompt tokens/s)",
        if quantized { "quantized" } else { "f32" },
        tokens.len(),
        g.tokens.len(),
        tokens.len() as f64 / secs
    );
    Ok(())
}
