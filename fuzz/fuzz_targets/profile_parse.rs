//! Feeds arbitrary text to the profile parser: it must return a profile or a list of
//! problems, never panic, and every problem must carry a JSON path.

#![no_main]

use inferwatch::detect::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Profile::parse(text, "fuzz") {
        Ok(profile) => assert!(profile.behaviors.len() <= 100),
        Err(error) => {
            assert!(!error.problems().is_empty());
            assert!(error.problems().iter().all(|p| p.path.starts_with('$')));
        }
    }
});
