//! "Did you mean …?" for names typed by hand: families, parameters, model specs, tasks.

/// The name in `known` closest to `value`, when it is close enough to be a typo: at most
/// one edit for short names, up to three for long ones (optimal string alignment distance,
/// so a swap of two neighbours is one edit; case is ignored). Ties go to the first listed.
pub fn closest<'a, I>(value: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let v = value.to_lowercase().replace('_', "-");
    let budget = (v.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for k in known {
        let d = distance(&v, &k.to_lowercase());
        if d <= budget && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// `"; did you mean `x`?"` when [`closest`] finds one, else an empty string: appended to
/// an error's list of what is allowed.
pub fn did_you_mean<'a, I>(value: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(value, known).map(|k| format!("; did you mean `{k}`?")).unwrap_or_default()
}

/// Optimal string alignment distance (Levenshtein plus swaps of neighbours).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let families = ["dominoes", "support", "collide", "drop", "roll", "voe-solidity"];
        assert_eq!(closest("rol", families), Some("roll"));
        assert_eq!(closest("dominos", families), Some("dominoes"));
        assert_eq!(closest("DROP", families), Some("drop"));
        assert_eq!(closest("voe_solidity", families), Some("voe-solidity"));
        assert_eq!(closest("orcale", ["oracle", "observer"]), Some("oracle"));
        assert_eq!(closest("constant_velocity", ["chance", "constant-velocity"]), Some("constant-velocity"));
        assert_eq!(closest("cont", ["count", "duration_s"]), Some("count"));
        assert_eq!(closest("zebra", families), None);
        assert_eq!(closest("x", families), None);
        assert_eq!(did_you_mean("zebra", families), "");
        assert_eq!(did_you_mean("suport", families), "; did you mean `support`?");
    }
}
