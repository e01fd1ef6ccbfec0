//! Fuzzes the report parser that `inferwatch fleet` runs on every received message.
//!
//! The first byte picks the format (odd: CBOR, even: JSON). Whatever the input, parsing and
//! responding must not panic, and a report that parses must encode again and parse back to
//! the same report.

#![no_main]

use std::collections::HashMap;

use inferwatch::defender::{Format, ReportError, respond_to_report, parse_report};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let format = if selector & 1 == 1 { Format::Cbor } else { Format::Json };

    let _ = respond_to_report("fuzz-thing", format, body, &mut HashMap::new());

    let Ok((report, style)) = parse_report(body, format) else { return };
    let bytes = match report.encode(format, style) {
        Ok(bytes) => bytes,
        // Re-encoding may grow a document that was just under the size limit.
        Err(ReportError::TooLarge { .. }) => return,
        Err(error) => panic!("a parsed report failed to encode: {error}"),
    };
    let (again, again_style) = parse_report(&bytes, format).expect("an encoded report parses");
    assert_eq!(again, report);
    assert_eq!(again_style, style);
});
