//! A sequence of peer messages through decoding and the receiver's checks:
//! `ferrolb_l2announcer::fuzzing::peer_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_l2announcer::fuzzing::peer_message(data));
