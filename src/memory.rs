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
fn release_freed() -> bool {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; glibc
    // serialises it with every other allocator call.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, macOS, Windows) return freed memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed() -> bool {
    false
}

/// After a burst (a reconcile reads and plans every definition; a delivery pass
/// renders and sends thousands of messages; a sampling pass; a console page
/// that read a large apply) the memory it freed goes back to the system, so an
/// idle daemon stays small.
pub async fn release_freed_memory() {
    let _ = tokio::task::spawn_blocking(release_freed).await;
}
