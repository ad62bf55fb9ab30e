//! Tuning of mimalloc, the allocator of the server binary (`src/main.rs` installs it).
//!
//! Two phases. At load, before the first allocation: arenas are committed on demand (by default
//! mimalloc commits them eagerly), and freed pages go back to the system at once, since the
//! startup replay makes a lot of short-lived garbage. Once the server has loaded its data, that
//! garbage is collected and freed pages are then kept for 10 ms before they are given back:
//! giving them back the moment they empty made every burst of requests pay for `madvise`, TLB
//! shootdowns and fresh page faults, about an eighth of the server's time under CreatePipeline
//! load (docs/benchmarks.md), while 10 ms still returns what a finished burst freed.

use libmimalloc_sys::{mi_collect, mi_option_set, mi_option_t};

// Positions in mimalloc's `mi_option_e`: libmimalloc-sys builds mimalloc v3 (no `v2` feature),
// and both options sit at the same positions in v2. The crate is pinned in Cargo.toml.
const MI_OPTION_ARENA_EAGER_COMMIT: mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// How long freed pages are kept once the server runs, in milliseconds.
const SERVING_PURGE_DELAY_MS: std::os::raw::c_long = 2;

/// Called before the first allocation (a static constructor of the binary): the arena option is
/// read when the first arena is made.
pub fn at_load() {
    // SAFETY: setting an option is a plain store into mimalloc's option table, valid at any time.
    unsafe {
        mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Called once the server has loaded its data: gives the load's garbage back now, then keeps
/// freed pages briefly. Harmless when mimalloc is not the global allocator (tests).
pub fn after_startup() {
    // SAFETY: mi_collect only walks the allocator's own structures and mi_option_set is a plain
    // store into its option table; both are valid at any time.
    unsafe {
        mi_collect(true);
        mi_option_set(MI_OPTION_PURGE_DELAY, SERVING_PURGE_DELAY_MS);
    }
}

/// Gives back what a burst of work freed (a checkpoint folds and drops a copy of every view).
pub fn release() {
    // SAFETY: as in `after_startup`.
    unsafe {
        mi_collect(true);
    }
}
