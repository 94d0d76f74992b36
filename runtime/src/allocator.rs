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
/// count as resident until the kernel needs them. One arena and no per-thread caches: these are
/// mostly idle processes whose few threads allocate little at a time, and every arena or thread
/// cache keeps its own partly used pages (the announcer at 10,000 Services: 53.4 MiB VmRSS with
/// the defaults, 52.0 with one arena, 49.0 without thread caches, same time to hold every address;
/// docs/benchmarks.md, "Announcer footprint in the lab"). Exporting the symbol is `unsafe` (it must not
/// clash); jemalloc reads it as a NUL-terminated `const char *`.
#[macro_export]
macro_rules! jemalloc_global_allocator {
    () => {
        #[cfg(feature = "jemalloc")]
        #[global_allocator]
        static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

        #[cfg(feature = "jemalloc")]
        #[allow(unsafe_code)]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: &[u8; 83] =
            b"background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0,narenas:1,tcache:false\0";
    };
}
