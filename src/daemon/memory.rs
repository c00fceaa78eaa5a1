//! Giving freed memory back to the system after a burst.
//!
//! glibc's malloc keeps what a thread freed in that thread's arena and only
//! returns the top of each heap, so after a reconcile of thousands of
//! definitions (or a large trigger run) an idle daemon would stay resident at
//! that peak. `malloc_trim(0)` walks every arena and returns their free pages.

/// Returns the allocator's free pages to the system; whether any came back.
/// Call it when a burst is over: it briefly locks every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed() -> bool {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; glibc
    // serialises it with every other allocator call.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, macOS, Windows) return freed memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}
