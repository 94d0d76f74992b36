//! The binaries' allocator, one definition for `ferrolb-ipam` and `ferrolb-announcer`.

/// Makes jemalloc the binary's global allocator when the invoking crate's `jemalloc` feature is on
/// (it is by default; off, the system allocator serves, for heap profilers such as heaptrack). The
/// invoking crate depends on `tikv-jemallocator`.
///
/// Why: jemalloc returns freed pages to the system; glibc's malloc keeps the peak of a start-up or
/// of a takeover of thousands of addresses resident for good, spread over its per-thread arenas
/// (`ferrolb-ipam` at 10,000 Services: 97.5 MiB VmRSS with glibc, 84.4 MiB with jemalloc;
/// docs/benchmarks.md, "IPAM footprint").
///
/// Its settings (`malloc_conf`, read once at start): a background thread purges pages unused for
/// 2 s, with `MADV_DONTNEED` at once (`muzzy_decay_ms:0`) rather than `MADV_FREE`, whose pages
/// count as resident until the kernel needs them. One arena: these are mostly idle processes whose
/// few threads allocate little at a time, and every arena keeps its own partly used pages. Small
/// per-thread caches (16 objects per small size class, 4 per large one, none above 4 KiB) rather
/// than none: without them every allocation takes the arena's lock, which cost an idle announcer
/// in a 100-node lab 1.33 % of a core against 0.87 % with these and 0.77 % with the default
/// caches, while the default caches hold 1 MiB more than these at 10,000 Services
/// (docs/benchmarks.md, "Announcer footprint in the lab" and "Liveness at scale"). Exporting the
/// symbol is `unsafe` (it must not clash); jemalloc reads it as a NUL-terminated `const char *`.
#[macro_export]
macro_rules! jemalloc_global_allocator {
    () => {
        #[cfg(feature = "jemalloc")]
        #[global_allocator]
        static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

        #[cfg(feature = "jemalloc")]
        #[allow(unsafe_code)]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: &[u8; 135] =
            b"background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0,narenas:1,\
            tcache_nslots_small_max:16,tcache_nslots_large:4,tcache_max:4096\0";
    };
}
