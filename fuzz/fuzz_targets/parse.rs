//! `Message::parse` on arbitrary (kind, payload): never panics, and whatever
//! parses re-encodes to something that parses back to the same message.
#![no_main]

use ktstr_wire::{HEADER_LEN, Message, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (kind, payload) = input;
    let Ok(msg) = Message::parse(kind, payload) else {
        return;
    };
    let _ = format!("{msg:?}");
    let frame = encode(3, &msg).expect("parsed payload fits u32");
    let again = Message::parse(kind, &frame[HEADER_LEN..]).expect("canonical re-encoding parses");
    assert_eq!(again, msg);
    assert!(
        frame.len() <= HEADER_LEN + payload.len(),
        "re-encoding only drops trailing bytes"
    );
});
