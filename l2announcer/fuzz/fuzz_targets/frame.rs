//! One Ethernet frame through the responder's parsing and answering: `ferrolb_l2announcer::fuzzing::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_l2announcer::fuzzing::frame(data));
