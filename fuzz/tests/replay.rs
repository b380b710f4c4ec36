//! Replays every checked-in seed (`corpus/TARGET/`) and every input that once failed
//! (`regressions/TARGET/`) through its target, on stable, as part of CI.

use std::fs;
use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut count = 0;
    for (name, target) in pingora_fuzz::TARGETS {
        let Ok(entries) = fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("listing a corpus").path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let input = fs::read(&path).expect("reading an input");
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_regression_input_passes() {
    replay("regressions");
}

#[test]
fn every_seed_passes_and_each_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in pingora_fuzz::TARGETS {
        let seeds = fs::read_dir(root.join(name))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(seeds > 0, "{name} has no seed corpus");
    }
    assert!(replay("corpus") > 0);
}
