//! The SDK's decoding of server frames, both ways it has: from text
//! (`decode::<ServerToVisitor>`, native) and from a JSON value the page already parsed
//! (`decode_server_to_visitor`, the browser's way). Nothing may panic, both must reach
//! the same verdict on the same frame, and a decoded frame must encode to one that
//! decodes again.
#![no_main]

use covisit::core::json::Json;
use covisit::core::protocol::{
    decode, decode_server_to_visitor, encode, ServerToVisitor, MAX_FRAME_BYTES,
};
use libfuzzer_sys::fuzz_target;

fn as_tree(m: &ServerToVisitor) -> serde_json::Value {
    serde_json::from_str(&encode(m)).expect("encode writes JSON")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_FRAME_BYTES {
        return; // the browser path never sees it (`parseFrame` drops it)
    }
    let from_text = decode::<ServerToVisitor>(text);
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        assert!(from_text.is_err(), "{text}");
        return;
    };
    let from_value = decode_server_to_visitor(Json::from(value));
    match (&from_text, &from_value) {
        // Compared as JSON: a value's objects come in key order, text in document order.
        (Ok(a), Ok(b)) => assert_eq!(as_tree(a), as_tree(b), "{text}"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{text}"),
        _ => panic!("{text}: from text {from_text:?}, from a value {from_value:?}"),
    }
    if let Ok(message) = from_text {
        let again = encode(&message);
        if again.len() <= MAX_FRAME_BYTES {
            let back = decode::<ServerToVisitor>(&again);
            assert!(
                back.is_ok(),
                "{message:?} encodes as {again}, which decodes as {back:?}"
            );
        }
    }
});
