//! The fuzz targets of `ferrolb_l2announcer::fuzzing` under `cargo test`: each runs over its seeds
//! and the committed seed files, then over pseudo-random mutations of them and plain random bytes
//! (a fixed PRNG seed, so a failure reproduces). The real fuzzing, coverage-guided and millions of
//! executions long, is `l2announcer/fuzz/` (docs/benchmarks.md, "Fuzzing"); this keeps the targets
//! and their invariants compiling and passing in CI without any fuzz tooling.
//!
//! `FERROLB_FUZZ_SMOKE_RUNS` sets the number of generated inputs per target (default below);
//! `FERROLB_BLESS=1` rewrites the seed files under `l2announcer/fuzz/seeds/` from the code.

use std::path::{Path, PathBuf};

use ferrolb_l2announcer::fuzzing;

const DEFAULT_RUNS: usize = 100_000;

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

/// The seed files must be what the code generates (the fuzzer starts from the files).
fn check_seed_files(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let want: Vec<(String, Vec<u8>)> = seeds.iter().map(|(n, b)| (format!("{n}.bin"), b.clone())).collect();
    if std::env::var_os("FERROLB_BLESS").is_some() {
        let dir = seed_dir(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &want {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut want = want;
    want.sort();
    let got = seed_files(target);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "seed files of {target}; run with FERROLB_BLESS=1");
    for ((name, got), (_, want)) in got.iter().zip(&want) {
        assert!(got == want, "seed file {target}/{name} differs from the code; run with FERROLB_BLESS=1");
    }
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

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// One to four of the usual mutations (bit flip, byte set, interesting byte, truncation,
/// insertion, chunk copy, splice with another seed) applied to a copy of a random seed.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        // The byte at `at`, for the mutations that change one (none when `v` is empty).
        let here = at.min(v.len().saturating_sub(1));
        match rng.below(7) {
            0 if !v.is_empty() => v[here] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[here] = rng.byte(),
            2 if !v.is_empty() => v[here] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
            3 => v.truncate(at),
            4 => {
                let n = rng.below(8);
                let insert = rng.bytes(n);
                v.splice(at..at, insert);
            }
            5 if !v.is_empty() => {
                let from = rng.below(v.len());
                let chunk: Vec<u8> = v[from..(from + 1 + rng.below(16)).min(v.len())].to_vec();
                v.splice(at..at, chunk);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

/// Runs `target` over the seeds, then `runs()` generated inputs (three in four mutated seeds, the
/// rest random bytes); returns how many inputs it ran.
fn smoke(target: fn(&[u8]), seeds: &[Vec<u8>], rng_seed: u64) -> usize {
    for s in seeds {
        target(s);
    }
    let mut rng = Rng(rng_seed);
    let n = runs();
    for _ in 0..n {
        let input = if rng.below(4) == 0 {
            let len = rng.below(200);
            rng.bytes(len)
        } else {
            mutate(&mut rng, seeds)
        };
        target(&input);
    }
    seeds.len() + n
}

#[test]
fn frame_target() {
    let seeds = fuzzing::frame_seeds();
    check_seed_files("frame", &seeds);
    let all: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let n = smoke(fuzzing::frame, &all, 0x0066_7261_6d65);
    println!("frame: {n} inputs, 0 failures");
}

#[test]
fn peer_message_target() {
    let seeds = fuzzing::peer_message_seeds();
    check_seed_files("peer_message", &seeds);
    let all: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let n = smoke(fuzzing::peer_message, &all, 0x7065_6572);
    println!("peer_message: {n} inputs, 0 failures");
}
