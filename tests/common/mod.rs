//! Helpers shared by the tests that drive the `physworld` binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_physworld"))
}

/// `o`, after asserting that its command succeeded (showing its standard error if not).
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The tiny suite generated through the binary into `root/ds`.
pub fn tiny_dataset(root: &Path) -> PathBuf {
    let dir = root.join("ds");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml");
    ok(bin().args(["generate", "--suite"]).arg(&tiny).arg("--out").arg(&dir).output().expect("runs"));
    dir
}

/// Every file under `dir` with its bytes (empty when `dir` does not exist).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).expect("prefix").to_path_buf(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}
