//! One BFD control packet through decoding, re-encoding and a session:
//! `ferrolb_bgp::fuzzing::bfd_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::bfd_packet(data));
