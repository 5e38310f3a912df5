//! The session layer's script tests: every file in `tests/sessions/` is run
//! by `warren::sim::script` (real node engines, named clients, a manually
//! driven network) and its recorded output must match what happens.
//! `WARREN_REWRITE=1 cargo test -p warren --test session_scripts` records
//! the actual output instead, to be reviewed like code.

use std::path::PathBuf;

#[test]
fn session_scripts_print_what_they_recorded() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sessions exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let rewrite = std::env::var_os("WARREN_REWRITE").is_some();
    let mut failed = Vec::new();
    for file in &files {
        let script = std::fs::read_to_string(file).expect("a readable script");
        let actual = match warren::sim::script::run(&script) {
            Ok(actual) => actual,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        if rewrite {
            std::fs::write(file, &actual).expect("the script is writable");
        } else if actual != script {
            let diff = first_difference(&script, &actual);
            failed.push(format!("{}: {diff}", file.display()));
        }
    }
    assert!(failed.is_empty(), "scripts differ (WARREN_REWRITE=1 records):\n{}", failed.join("\n"));
}

fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        if x != y {
            return format!("line {}: expected {x:?}, got {y:?}", i + 1);
        }
    }
    "they differ in line endings".into()
}
