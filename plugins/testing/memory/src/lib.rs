//! Test plugin `testing/memory`: an operation that reports what it finds of
//! an earlier call in its memory, then leaves its own traces for the next
//! one: a static with an initial value (in the data segment), a zeroed
//! static, and a page of memory it grows. Each call must start from the
//! component's initial memory, so every call answers the same.
//!
//! It reads WebAssembly's memory size, so it exists only for wasm32 (the
//! plugins workspace's native `cargo test` builds it empty).
#![cfg(target_arch = "wasm32")]

use core::sync::atomic::{AtomicU32, Ordering};
use warren_sdk::{Operation, Outcome};

/// Starts at 7 in the data segment; each call adds one.
static DATA: AtomicU32 = AtomicU32::new(7);
/// Starts at 0 (zeroed memory); each call adds one.
static ZEROED: AtomicU32 = AtomicU32::new(0);

const PAGE: usize = 64 << 10;

struct Memory;

impl Operation for Memory {
    /// Answers `pages=<memory size at entry> data=<DATA> zeroed=<ZEROED>
    /// grown=<first byte of a freshly grown page>`.
    fn invoke(_path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        let pages = core::arch::wasm32::memory_size(0);
        let data = DATA.fetch_add(1, Ordering::Relaxed);
        let zeroed = ZEROED.fetch_add(1, Ordering::Relaxed);
        let before = core::arch::wasm32::memory_grow(0, 1);
        if before == usize::MAX {
            return Err("memory.grow failed".into());
        }
        // SAFETY: the page was just grown and belongs to no allocation; the
        // allocator only uses pages it grew itself.
        let grown = unsafe {
            let page = (before * PAGE) as *mut u8;
            let first = page.read_volatile();
            page.write_volatile(0xAB);
            first
        };
        Ok(Outcome::output(format!("pages={pages} data={data} zeroed={zeroed} grown={grown}")))
    }
}

warren_sdk::export_operation!(Memory);
