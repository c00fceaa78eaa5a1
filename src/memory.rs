//! Giving freed memory back to the system after a burst.
//!
//! glibc's malloc keeps what a thread freed in that thread's arena and only
//! returns the top of each heap, so after a reconcile of thousands of
//! definitions (or a large trigger run) an idle daemon would stay resident at
//! that peak. `malloc_trim(0)` walks every arena and returns their free pages.
//!
//! It cannot return the free top of a thread's heap below the trim threshold,
//! which glibc raises with each large block freed (up to 32 MB per arena): a
//! console page that read a 9 MB plan document left the daemon about 45 MB
//! larger, over the threads that had held a copy. So the daemon fixes the
//! threshold above which a block is mapped on its own ([`map_large_blocks`]),
//! and a large block goes back to the system the moment it is freed.

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

/// Blocks of at least this many bytes are mapped on their own: glibc's
/// starting threshold, kept instead of raised.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAPPED_FROM_BYTES: libc::c_int = 128 * 1024;

/// Keeps every block of [`MAPPED_FROM_BYTES`] or more mapped on its own, so
/// that freeing it unmaps it, in whichever thread it was freed (glibc raises
/// that threshold, and with it the trim threshold, after each large block
/// freed, and then keeps such blocks in the heaps). Call it once at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn map_large_blocks() {
    // SAFETY: mallopt takes no pointers; glibc serialises it with every other
    // allocator call. It fails only for an out-of-range value.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_FROM_BYTES) };
}

/// Other allocators map and unmap large blocks themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn map_large_blocks() {}

/// After a burst (a reconcile reads and plans every definition; a delivery pass
/// renders and sends thousands of messages; a sampling pass; a console page
/// that read a large apply) the memory it freed goes back to the system, so an
/// idle daemon stays small.
pub async fn release_freed_memory() {
    let _ = tokio::task::spawn_blocking(release_freed).await;
}
