//! glibc's malloc gives each thread that contends for memory an arena of its
//! own, and reserves 64 MiB of address space for each on 64-bit targets (up
//! to eight per core). hypha allocates little, so they buy nothing, but they
//! dominated a worker's address space (about 500 of its 740 MiB while it
//! installed a 1M-key snapshot) and made it fail under an address-space
//! limit (`benches/footprint.sh`, RLIMIT_AS 512 MiB). musl (OpenWrt) has no
//! arenas; on glibc hypha keeps `MALLOC_ARENAS_MAX` of them unless the
//! operator set `MALLOC_ARENA_MAX` in the environment.

/// Arenas hypha lets glibc's malloc make (the main one included).
pub const MALLOC_ARENAS_MAX: i32 = 2;

/// Caps glibc's malloc arenas (see the module doc); a no-op elsewhere.
pub fn limit() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; called first thing
        // in main, before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX) };
    }
}
