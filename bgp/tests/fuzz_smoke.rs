//! The fuzz targets of `ferrolb_bgp::fuzzing` under `cargo test`: each runs over its seeds, then
//! over pseudo-random mutations of them and plain random bytes (a fixed PRNG seed, so a failure
//! reproduces). The real fuzzing, coverage-guided and millions of executions long, is `bgp/fuzz/`
//! (docs/benchmarks.md, "Fuzzing (`ferrolb-bgp` ...)"); this keeps the targets and their invariants
//! compiling and passing in CI without any fuzz tooling.
//!
//! `FERROLB_FUZZ_SMOKE_RUNS` sets the number of generated inputs per target (default below);
//! `FERROLB_BLESS=1` rewrites the seed files under `bgp/fuzz/seeds/` from the code.

use std::path::{Path, PathBuf};

use ferrolb_bgp::fuzzing;

const DEFAULT_RUNS: usize = 20_000;

fn runs() -> usize {
    std::env::var("FERROLB_FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_RUNS)
}

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target)
}

/// The committed seed files of `target`, sorted by name.
fn seed_files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seed_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run with FERROLB_BLESS=1", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect();
    files.sort();
    files
}

/// The seed files must be what the code generates (the fuzzer starts from the files); returns the
/// seeds' bytes.
fn checked_seeds(target: &str, seeds: Vec<(&str, Vec<u8>)>) -> Vec<Vec<u8>> {
    let mut want: Vec<(String, Vec<u8>)> = seeds.into_iter().map(|(n, b)| (format!("{n}.bin"), b)).collect();
    if std::env::var_os("FERROLB_BLESS").is_some() {
        let dir = seed_dir(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (name, bytes) in &want {
            std::fs::write(dir.join(name), bytes).expect("write a seed file");
        }
    }
    want.sort();
    let got = seed_files(target);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "seed files of {target}; run with FERROLB_BLESS=1");
    for ((name, got), (_, want)) in got.iter().zip(&want) {
        assert!(got == want, "seed file {target}/{name} differs from the code; run with FERROLB_BLESS=1");
    }
    want.into_iter().map(|(_, b)| b).collect()
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
    let seeds = checked_seeds("bgp_stream", fuzzing::bgp_seeds());
    let n = smoke(fuzzing::bgp_stream, &seeds, 0x0062_6770);
    println!("bgp_stream: {n} inputs, 0 failures");
}

#[test]
fn bfd_packet_target() {
    let seeds = checked_seeds("bfd_packet", fuzzing::bfd_seeds());
    let n = smoke(fuzzing::bfd_packet, &seeds, 0x0062_6664);
    println!("bfd_packet: {n} inputs, 0 failures");
}
