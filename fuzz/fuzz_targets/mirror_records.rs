//! Mirror records as the server receives them from a page (`MirrorData::from_text`,
//! then `check` and `starts_snapshot`, which read the text as a stream and by its
//! start). Nothing may panic, and both must say what a reading of the same records as
//! a JSON tree says.
#![no_main]

use covisit::core::protocol::{MirrorData, MAX_MIRROR_RECORDS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn reference_check(v: &Value) -> Result<(), &'static str> {
    let Value::Array(records) = v else {
        return Err("must be an array of records");
    };
    for (i, r) in records.iter().enumerate() {
        let kind = r.as_array().and_then(|r| r.first()).and_then(Value::as_str);
        if !kind.is_some_and(|k| k.len() == 1 && k.as_bytes()[0].is_ascii_alphabetic()) {
            return Err("records must be arrays starting with a one-letter kind");
        }
        if i + 1 > MAX_MIRROR_RECORDS {
            return Err("has too many records");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(records) = MirrorData::from_text(text.to_string()) else {
        return;
    };
    let checked = records.check();
    let snapshot = records.starts_snapshot();
    // Deeper than serde_json's recursion limit: no tree to compare with.
    let Ok(tree) = serde_json::from_str::<Value>(text) else {
        return;
    };
    assert_eq!(checked, reference_check(&tree), "{text}");
    let first_kind = tree.get(0).and_then(|r| r.get(0));
    assert_eq!(snapshot, first_kind == Some(&Value::from("S")), "{text}");
});
