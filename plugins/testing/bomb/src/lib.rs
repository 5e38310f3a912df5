//! Test plugin `testing/bomb`: an operation that allocates 1 MiB chunks and
//! keeps them until an allocation fails, so that the host's memory cap has to
//! stop it. The chunks are not written to, so this costs little fuel.

use warren_sdk::{Operation, Outcome};

struct Bomb;

impl Operation for Bomb {
    fn invoke(_path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            // Opaque to the optimiser: every chunk is really allocated.
            chunks.push(core::hint::black_box(Vec::with_capacity(1 << 20)));
            core::hint::black_box(&chunks);
        }
    }
}

warren_sdk::export_operation!(Bomb);
