//! Every input libFuzzer ever crashed a target with is kept under
//! `fuzz/regressions/<target>/` and must now run clean; every target also runs over its seeds
//! (the real inputs the other tests use), so a target broken by an API change fails here, in
//! `make test`, not only under `make fuzz`.

use std::path::Path;

use pifoundry_fuzz::{TARGETS, seeds};

#[test]
fn saved_crash_inputs_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut ran = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let target = pifoundry_fuzz::target(&name)
            .unwrap_or_else(|| panic!("{}: no fuzz target {name:?}", dir.display()));
        for input in std::fs::read_dir(&dir).unwrap() {
            let input = input.unwrap().path();
            let bytes = std::fs::read(&input).unwrap();
            eprintln!("{name}: {}", input.display());
            (target.run)(&bytes);
            ran += 1;
        }
    }
    eprintln!("{ran} saved inputs");
}

#[test]
fn every_target_runs_over_its_seeds() {
    let src = seeds::Sources::discover();
    for t in TARGETS {
        let dir = tempfile::tempdir().unwrap();
        let n = seeds::write(t.name, &src, dir.path()).unwrap();
        assert!(n > 0, "{}: no seeds", t.name);
        for seed in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(seed.unwrap().path()).unwrap();
            (t.run)(&bytes);
        }
    }
}
