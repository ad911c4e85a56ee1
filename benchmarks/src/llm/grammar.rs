//! The answer grammars of in-process decoding (`gguf:`): at each step only tokens that keep
//! the reply a prefix of a valid answer are eligible, as llama.cpp does for a `json_schema`
//! request.
//!
//! - [`Grammar::Choices`]: exactly one of a few texts (`{"answer": "yes"}`, ...).
//! - [`Grammar::Positions`]: `{"positions": [[x, y, z], ...]}` with exactly `n` triples,
//!   single spaces after separators, and numbers `-?d{1,3}(.d{1,3})?` (metres to the
//!   millimetre, within ±999 m).
//! - [`Grammar::Placement`]: `{"x": x, "y": y, "radius": r}` (a `plan-launch` placement, in
//!   metres), numbers as above.
//! - [`Grammar::Force`]: `{"fx": fx, "fz": fz}` (a `plan-push` force, in newtons), numbers
//!   as above.

/// What a constrained reply may be.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// One of these texts.
    Choices(Vec<String>),
    /// `n` positions.
    Positions(usize),
    /// A placement `{"x": .., "y": .., "radius": ..}`.
    Placement,
    /// A force `{"fx": .., "fz": ..}`.
    Force,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    Lit(&'static str),
    Num,
}

/// Where a parse of a positions reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct State {
    elem: usize,
    offset: usize,
    sign: bool,
    int: u8,
    dot: bool,
    frac: u8,
}

fn positions_elems(n: usize) -> Vec<Elem> {
    let mut e = vec![Elem::Lit("{\"positions\": [")];
    for t in 0..n {
        e.extend([Elem::Lit("["), Elem::Num, Elem::Lit(", "), Elem::Num, Elem::Lit(", "), Elem::Num, Elem::Lit("]")]);
        e.push(Elem::Lit(if t + 1 < n { ", " } else { "]}" }));
    }
    e
}

fn placement_elems() -> Vec<Elem> {
    vec![
        Elem::Lit("{\"x\": "),
        Elem::Num,
        Elem::Lit(", \"y\": "),
        Elem::Num,
        Elem::Lit(", \"radius\": "),
        Elem::Num,
        Elem::Lit("}"),
    ]
}

fn force_elems() -> Vec<Elem> {
    vec![Elem::Lit("{\"fx\": "), Elem::Num, Elem::Lit(", \"fz\": "), Elem::Num, Elem::Lit("}")]
}

fn step(elems: &[Elem], mut st: State, b: u8) -> Option<State> {
    loop {
        match elems.get(st.elem)? {
            Elem::Lit(lit) => {
                if lit.as_bytes().get(st.offset) != Some(&b) {
                    return None;
                }
                st.offset += 1;
                if st.offset == lit.len() {
                    st = State { elem: st.elem + 1, ..State::default() };
                }
                return Some(st);
            }
            Elem::Num => {
                let nothing = !st.sign && st.int == 0;
                match b {
                    b'-' if nothing => st.sign = true,
                    b'0'..=b'9' if !st.dot && st.int < 3 => st.int += 1,
                    b'0'..=b'9' if st.dot && st.frac < 3 => st.frac += 1,
                    b'.' if st.int > 0 && !st.dot => st.dot = true,
                    _ => {
                        // The number may end here; the byte then belongs to what follows.
                        if st.int > 0 && (!st.dot || st.frac > 0) {
                            st = State { elem: st.elem + 1, ..State::default() };
                            continue;
                        }
                        return None;
                    }
                }
                return Some(st);
            }
        }
    }
}

/// A grammar being followed, token by token.
pub struct Matcher<'a> {
    grammar: &'a Grammar,
    elems: Vec<Elem>,
    produced: Vec<u8>,
    state: State,
}

impl<'a> Matcher<'a> {
    /// At the start of the reply.
    pub fn new(grammar: &'a Grammar) -> Matcher<'a> {
        let elems = match grammar {
            Grammar::Positions(n) => positions_elems(*n),
            Grammar::Placement => placement_elems(),
            Grammar::Force => force_elems(),
            Grammar::Choices(_) => Vec::new(),
        };
        Matcher { grammar, elems, produced: Vec::new(), state: State::default() }
    }

    /// Whether `piece` may come next.
    pub fn allows(&self, piece: &[u8]) -> bool {
        if piece.is_empty() {
            return false;
        }
        match self.grammar {
            Grammar::Choices(texts) => texts.iter().any(|s| {
                let s = s.as_bytes();
                s.len() >= self.produced.len() + piece.len()
                    && s.starts_with(&self.produced)
                    && s[self.produced.len()..].starts_with(piece)
            }),
            Grammar::Positions(_) | Grammar::Placement | Grammar::Force => {
                let mut st = self.state;
                for &b in piece {
                    match step(&self.elems, st, b) {
                        Some(s) => st = s,
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// Take `piece` (which [`Matcher::allows`]).
    pub fn push(&mut self, piece: &[u8]) {
        if let Grammar::Positions(_) | Grammar::Placement | Grammar::Force = self.grammar {
            for &b in piece {
                if let Some(s) = step(&self.elems, self.state, b) {
                    self.state = s;
                }
            }
        }
        self.produced.extend_from_slice(piece);
    }

    /// Whether the reply is a complete answer.
    pub fn complete(&self) -> bool {
        match self.grammar {
            Grammar::Choices(texts) => texts.iter().any(|s| s.as_bytes() == self.produced.as_slice()),
            Grammar::Positions(_) | Grammar::Placement | Grammar::Force => self.state.elem == self.elems.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Grammar, Matcher};

    fn accepts(g: &Grammar, text: &str) -> (bool, bool) {
        let mut m = Matcher::new(g);
        for b in text.bytes() {
            if !m.allows(&[b]) {
                return (false, false);
            }
            m.push(&[b]);
        }
        (true, m.complete())
    }

    #[test]
    fn positions_grammar_accepts_exactly_n_triples_of_bounded_numbers() {
        let g = Grammar::Positions(2);
        assert_eq!(accepts(&g, "{\"positions\": [[1.5, -0.25, 3], [0.0, 12.125, -7]]}"), (true, true));
        assert_eq!(accepts(&g, "{\"positions\": [[1.5, -0.25, 3], [0.0"), (true, false));
        assert!(!accepts(&g, "{\"positions\": [[1.5, -0.25, 3]]}").0, "one triple short");
        assert!(!accepts(&g, "{\"positions\": [[1.5, -0.25]").0, "two numbers");
        assert!(!accepts(&g, "{\"positions\": [[1234").0, "four integer digits");
        assert!(!accepts(&g, "{\"positions\": [[1.2345").0, "four decimals");
        assert!(!accepts(&g, "{\"positions\": [[1., ").0, "a dot without decimals");
        assert!(!accepts(&g, "{\"positions\": [[--1").0);
        assert!(!accepts(&g, "{\"answer\"").0);
    }

    #[test]
    fn placement_grammar_accepts_exactly_x_y_and_radius() {
        let g = Grammar::Placement;
        assert_eq!(accepts(&g, "{\"x\": -0.45, \"y\": 1.2, \"radius\": 0.15}"), (true, true));
        assert_eq!(accepts(&g, "{\"x\": -0.45, \"y\": 1"), (true, false));
        assert!(!accepts(&g, "{\"x\": -0.45, \"radius\"").0, "y skipped");
        assert!(!accepts(&g, "{\"x\": \"left\"").0, "not a number");
        assert!(!accepts(&g, "{\"x\": 1, \"y\": 1, \"radius\": 0.1, ").0, "a fourth field");
    }

    #[test]
    fn force_grammar_accepts_exactly_fx_and_fz() {
        let g = Grammar::Force;
        assert_eq!(accepts(&g, "{\"fx\": -2.5, \"fz\": 10}"), (true, true));
        assert_eq!(accepts(&g, "{\"fx\": -2.5"), (true, false));
        assert!(!accepts(&g, "{\"fz\": 1").0, "fx first");
        assert!(!accepts(&g, "{\"fx\": 1, \"fy\"").0, "no vertical force");
        assert!(!accepts(&g, "{\"fx\": 1, \"fz\": 1, ").0, "a third field");
    }

    #[test]
    fn choice_grammar_accepts_only_whole_choices() {
        let g = Grammar::Choices(vec!["{\"answer\": \"yes\"}".into(), "{\"answer\": \"no\"}".into()]);
        assert_eq!(accepts(&g, "{\"answer\": \"no\"}"), (true, true));
        assert_eq!(accepts(&g, "{\"answer\": \"y"), (true, false));
        assert!(!accepts(&g, "{\"answer\": \"maybe").0);
        let m = Matcher::new(&g);
        assert!(m.allows(b"{\"answer\": \"ye") && !m.allows(b"") && !m.allows(b"{\"answer\": \"yes\"} "));
    }
}
