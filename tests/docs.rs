//! The README's architecture table points at real places: every path in its "where it
//! lives" column exists, and every concept the table promises is in it.

use std::path::Path;

#[test]
fn every_path_in_the_readme_concept_table_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme.find("| concept | where it lives |").expect("the README has the concept table");
    let rows: Vec<&str> = readme[start..].lines().skip(2).take_while(|l| l.starts_with('|')).collect();
    let mut concepts = Vec::new();
    for row in &rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 2, "malformed row: {row}");
        concepts.push(cells[0].to_string());
        let paths: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
        assert!(!paths.is_empty(), "row `{}` names no path", cells[0]);
        for p in paths {
            assert!(root.join(p).exists(), "README concept `{}`: {p} does not exist", cells[0]);
        }
    }
    for c in [
        "scene",
        "family",
        "episode",
        "shard",
        "suite",
        "task",
        "item",
        "adapter",
        "result",
        "leaderboard",
        "run",
        "checkpoint",
    ] {
        assert!(concepts.iter().any(|x| x == c), "the concept table lacks `{c}`");
    }
}

#[test]
fn relative_links_in_the_docs_resolve_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in [
        "README.md",
        "BENCHMARKS.md",
        "sim/README.md",
        "pipeline/README.md",
        "model/README.md",
        "benchmarks/README.md",
        "docs/cluster/README.md",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let dir = root.join(doc).parent().expect("parent").to_path_buf();
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let target = link.split('#').next().unwrap_or(link);
            let resolved = dir.join(target);
            assert!(resolved.exists(), "{doc}: link {link} does not resolve");
            let inside = resolved.canonicalize().expect("canonical").starts_with(root.canonicalize().expect("root"));
            assert!(inside, "{doc}: link {link} points outside the repository");
        }
    }
}
