//! The fuzz targets of `ferrolb_bgp::fuzzing` under `cargo test`: each runs over its seeds, then
//! over pseudo-random mutations of them and plain random bytes (a fixed PRNG seed, so a failure
//! reproduces). Coverage-guided fuzzing runs the same functions for much longer; this keeps the
//! targets and their invariants compiling and passing in CI without any fuzz tooling.
//!
//! `FERROLB_FUZZ_SMOKE_RUNS` sets the number of generated inputs per target (default below).

use ferrolb_bgp::fuzzing;

const DEFAULT_RUNS: usize = 20_000;

fn runs() -> usize {
    std::env::var("FERROLB_FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_RUNS)
}

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A seed with a few bytes overwritten, inserted or removed, or two seeds spliced. Mutations
/// spare the BGP marker and length often enough to reach the message bodies.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 | 1 if at < input.len() => input[at] = rng.next() as u8,
            2 => input.insert(at, rng.next() as u8),
            3 if at < input.len() => {
                input.remove(at);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    input
}

fn smoke(target: fn(&[u8]), seeds: &[Vec<u8>], rng_seed: u64) -> usize {
    for s in seeds {
        target(s);
    }
    let mut rng = Rng(rng_seed);
    let n = runs();
    for _ in 0..n {
        let input = if rng.below(4) == 0 {
            let len = rng.below(200);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, seeds)
        };
        target(&input);
    }
    seeds.len() + n
}

#[test]
fn bgp_stream_target() {
    let n = smoke(fuzzing::bgp_stream, &fuzzing::bgp_seeds(), 0x0062_6770);
    println!("bgp_stream: {n} inputs, 0 failures");
}

#[test]
fn bfd_packet_target() {
    let n = smoke(fuzzing::bfd_packet, &fuzzing::bfd_seeds(), 0x0062_6664);
    println!("bfd_packet: {n} inputs, 0 failures");
}
