//! Every PiFoundry fuzz target in one libFuzzer binary; `PIFOUNDRY_FUZZ_TARGET` names the one
//! to run (see `pifoundry_fuzz::TARGETS`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static RUN: OnceLock<fn(&[u8])> = OnceLock::new();

fuzz_target!(
    init: {
        let name = std::env::var("PIFOUNDRY_FUZZ_TARGET").unwrap_or_default();
        let Some(target) = pifoundry_fuzz::target(&name) else {
            let names: Vec<&str> = pifoundry_fuzz::TARGETS.iter().map(|t| t.name).collect();
            eprintln!("PIFOUNDRY_FUZZ_TARGET={name:?}: not a target; one of {}", names.join(", "));
            std::process::exit(2);
        };
        let _ = RUN.set(target.run);
    },
    |data: &[u8]| {
        (RUN.get().expect("init ran"))(data);
    }
);
