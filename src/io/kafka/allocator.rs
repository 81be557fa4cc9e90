//! The C allocator's settings for a process that consumes at full speed.
//!
//! librdkafka allocates each fetch response and the decompressed record
//! batches in it with `malloc`, on its broker threads. With glibc's defaults
//! a freed buffer of more than 128 KiB (or whatever the dynamic threshold has
//! grown to) goes back to the kernel, and the next response faults every page
//! in again, zeroed: `clear_page_erms` was 19 % of `crowdpark run`'s profile
//! under a backlog. Keeping freed memory in the heap up to a bound removes
//! that work; the bound is the same order as the consumer's own buffer
//! budget (`kafka.max_buffered_mb`).

/// Allocations up to this size come from the heap, not their own mapping.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of a heap is kept up to this much.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Applies the settings to the whole process (idempotent). A no-op where
/// the C library is not glibc.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; glibc serialises
    // it against allocations in progress.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
