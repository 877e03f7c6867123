//! The server's decoding of an agent socket's text frames (`decode::<AgentMessage>`).
//! Nothing may panic; a decoded message must encode to a frame that decodes to it
//! again (agent messages hold no floats, so exactly).
#![no_main]

use covisit::core::protocol::{decode, encode, AgentMessage, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = decode::<AgentMessage>(text) else {
        return;
    };
    let again = encode(&message);
    if again.len() <= MAX_FRAME_BYTES {
        assert_eq!(
            decode::<AgentMessage>(&again).as_ref(),
            Ok(&message),
            "{again}"
        );
    }
});
