//! The byte-level BPE tokenizer of a GGUF chat model, read from the file's own metadata
//! (`tokenizer.ggml.*`), tokenising the way llama.cpp does: special tokens are split out
//! first, then the pre-tokenizer named by `tokenizer.ggml.pre` cuts words, then each word's
//! bytes (in GPT-2's byte-to-unicode encoding) are merged by `tokenizer.ggml.merges` rank.
//!
//! Supported: `tokenizer.ggml.model = gpt2` with the pre-tokenizers whose rules are GPT-2's
//! word regex, alone (`gpt2`, `mpt`, `olmo`, `jais`) or after splitting every digit
//! (`smollm`, `starcoder`, `refact`, `command-r`, `codeshell`, `exaone`). Other tokenizers
//! (SentencePiece `llama`, the `llama3`/`qwen2` regexes) are refused with a clear error.
//! Character classes follow Rust's Unicode tables (`char::is_alphabetic`, `is_numeric`,
//! `is_whitespace`), which agree with llama.cpp's on everything outside rare scripts.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{BenchError, Result};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// Pre-tokenizers this tokenizer implements.
pub const PRE_TOKENIZERS: &str = "gpt2, mpt, olmo, jais, smollm, starcoder, refact, command-r, codeshell, exaone";

/// A GGUF byte-level BPE tokenizer.
pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    ranks: HashMap<String, u32>,
    /// Special tokens (control, user-defined, unknown), longest text first.
    special: Vec<(String, u32)>,
    split_digits: bool,
    byte_char: [char; 256],
    char_byte: HashMap<char, u8>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    add_bos: bool,
    /// `tokenizer.chat_template` (Jinja).
    pub chat_template: Option<String>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
}

fn bad(what: &str, reason: impl Into<String>) -> BenchError {
    BenchError::Mismatch { what: format!("GGUF tokenizer `{what}`"), reason: reason.into() }
}

fn strings(ct: &Content, key: &str) -> Result<Vec<String>> {
    let v = ct.metadata.get(key).ok_or_else(|| bad(key, "missing from the GGUF metadata"))?;
    v.to_vec()
        .map_err(|_| bad(key, "is not an array"))?
        .iter()
        .map(|s| s.to_string().cloned().map_err(|_| bad(key, "holds a non-string")))
        .collect()
}

fn opt_u32(ct: &Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok().or_else(|| v.to_i32().ok().map(|x| x as u32)))
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut n = 0;
    for b in 0..256u32 {
        map[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    map
}

impl Tokenizer {
    /// From a GGUF file's metadata.
    pub fn from_gguf(ct: &Content) -> Result<Tokenizer> {
        let model = ct.metadata.get("tokenizer.ggml.model").and_then(|v| v.to_string().ok()).cloned();
        if model.as_deref() != Some("gpt2") {
            return Err(bad(
                "tokenizer.ggml.model",
                format!("is {model:?}; only byte-level BPE (`gpt2`) tokenizers are supported"),
            ));
        }
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let split_digits = match pre.as_str() {
            "gpt2" | "mpt" | "olmo" | "jais" => false,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => true,
            other => {
                return Err(bad(
                    "tokenizer.ggml.pre",
                    format!("is `{other}`, which is not implemented (supported: {PRE_TOKENIZERS})"),
                ));
            }
        };
        let tokens = strings(ct, "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(bad(
                "tokenizer.ggml.token_type",
                format!("has {} entries for {} tokens", types.len(), tokens.len()),
            ));
        }
        let merges = strings(ct, "tokenizer.ggml.merges")?;
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i as u32)).collect();
        let ids = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let mut special: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, ty))| !t.is_empty() && matches!(**ty, TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN))
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        special.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let byte_char = byte_chars();
        let char_byte = byte_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let flag = |k: &str| ct.metadata.get(k).and_then(|v| v.to_bool().ok());
        Ok(Tokenizer {
            tokens,
            types,
            ids,
            ranks,
            special,
            split_digits,
            byte_char,
            char_byte,
            bos: opt_u32(ct, "tokenizer.ggml.bos_token_id"),
            eos: opt_u32(ct, "tokenizer.ggml.eos_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
            chat_template: ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned(),
            pre,
        })
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `id` is a control token (end of turn, end of text, ...).
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&TYPE_CONTROL)
    }

    /// Token ids of `text`. `add_special` prepends BOS where the model asks for it;
    /// `parse_special` recognises control tokens written in the text (as llama.cpp's
    /// `/tokenize` with `parse_special`); user-defined tokens are always recognised.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special
            && self.add_bos
            && let Some(b) = self.bos
        {
            out.push(b);
        }
        let mut rest = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            let hit = self.special.iter().find(|(s, id)| {
                (parse_special || self.types[*id as usize] == TYPE_USER_DEFINED) && bytes[i..].starts_with(s.as_bytes())
            });
            match hit {
                Some((s, id)) => {
                    self.encode_plain(&text[rest..i], &mut out);
                    out.push(*id);
                    i += s.len();
                    rest = i;
                }
                None => i += 1,
            }
        }
        self.encode_plain(&text[rest..], &mut out);
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        for word in self.words(text) {
            self.bpe(word, out);
        }
    }

    /// Words of `text`: digits alone first (where the pre-tokenizer says so), then GPT-2's
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` on
    /// each piece, as llama.cpp's custom GPT-2 splitter.
    pub fn words<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = Vec::new();
        if self.split_digits {
            let mut start = 0;
            for (i, c) in text.char_indices() {
                if c.is_numeric() {
                    if start < i {
                        pieces.push(&text[start..i]);
                    }
                    pieces.push(&text[i..i + c.len_utf8()]);
                    start = i + c.len_utf8();
                }
            }
            if start < text.len() {
                pieces.push(&text[start..]);
            }
        } else if !text.is_empty() {
            pieces.push(text);
        }
        let mut words = Vec::new();
        for p in pieces {
            gpt2_split(p, &mut words);
        }
        words
    }

    fn bpe(&self, word: &str, out: &mut Vec<u32>) {
        let encoded: String = word.bytes().map(|b| self.byte_char[b as usize]).collect();
        let mut syms: Vec<String> = encoded.chars().map(String::from).collect();
        loop {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                let key = format!("{} {}", syms[i], syms[i + 1]);
                if let Some(&r) = self.ranks.get(&key)
                    && best.is_none_or(|(b, _)| r < b)
                {
                    best = Some((r, i));
                }
            }
            let Some((_, i)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        for s in syms {
            match self.ids.get(&s) {
                Some(&id) => out.push(id),
                // A symbol missing from the vocabulary: its characters one by one.
                None => out.extend(s.chars().filter_map(|c| self.ids.get(&c.to_string()).copied())),
            }
        }
    }

    /// The bytes of one token (control tokens give their text only when `special`).
    pub fn token_bytes(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else { return Vec::new() };
        match self.types[id as usize] {
            TYPE_CONTROL | TYPE_UNKNOWN if !special => Vec::new(),
            TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN => t.as_bytes().to_vec(),
            _ => t.chars().map(|c| self.char_byte.get(&c).copied().unwrap_or(b'?')).collect(),
        }
    }

    /// Text of a token sequence (control tokens dropped).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i, false)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's word split of one piece, with llama.cpp's semantics: a whitespace run followed
/// by a non-space leaves its last character to the next word; anything unmatched is a word
/// of one character.
fn gpt2_split<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|c| c.1);
    let off = |k: usize| chars.get(k).map_or(text.len(), |c| c.0);
    let letter = |c: char| c.is_alphabetic();
    let number = |c: char| c.is_numeric();
    let other = |c: char| !c.is_whitespace() && !letter(c) && !number(c);
    let mut k = 0;
    while k < chars.len() {
        let start = k;
        let c = chars[k].1;
        // 's 't 're 've 'm 'll 'd
        if c == '\'' {
            let (n1, n2) = (at(k + 1), at(k + 2));
            let len = match (n1, n2) {
                (Some('s' | 't' | 'm' | 'd'), _) => 2,
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
                _ => 0,
            };
            if len > 0 {
                k += len;
                out.push(&text[off(start)..off(k)]);
                continue;
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let lead = usize::from(c == ' ');
        if let Some(n) = at(k + lead) {
            let class: Option<&dyn Fn(char) -> bool> = if letter(n) {
                Some(&letter)
            } else if number(n) {
                Some(&number)
            } else if other(n) {
                Some(&other)
            } else {
                None
            };
            if let Some(class) = class {
                k += lead;
                while at(k).is_some_and(class) {
                    k += 1;
                }
                out.push(&text[off(start)..off(k)]);
                continue;
            }
        }
        // `\s+(?!\S)|\s+`
        let mut n = 0;
        while at(k + n).is_some_and(char::is_whitespace) {
            n += 1;
        }
        if n > 1 && at(k + n).is_some() {
            k += n - 1;
        } else if n > 0 {
            k += n;
        } else {
            k += 1;
        }
        out.push(&text[off(start)..off(k)]);
    }
}

#[cfg(test)]
mod tests {
    use super::gpt2_split;

    fn split(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        gpt2_split(s, &mut v);
        v
    }

    #[test]
    fn gpt2_words_follow_the_regex() {
        assert_eq!(split("Hello world, it's"), ["Hello", " world", ",", " it", "'s"]);
        assert_eq!(split("a  b"), ["a", " ", " b"]);
        assert_eq!(split("x \n  y"), ["x", " \n ", " y"]);
        assert_eq!(split("end  "), ["end", "  "]);
        assert_eq!(split("(0.25, -1)"), ["(", "0", ".", "25", ",", " -", "1", ")"]);
        assert_eq!(split("they'll ' q"), ["they", "'ll", " '", " q"]);
    }
}
