//! A byte stream from a router through framing, decoding and an Established session:
//! `ferrolb_bgp::fuzzing::bgp_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::bgp_stream(data));
