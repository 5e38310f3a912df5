//! Test plugin `testing/spin`: an operation that never returns, so that the
//! host's fuel budget has to stop it.

use warren_sdk::{Operation, Outcome};

struct Spin;

impl Operation for Spin {
    fn invoke(_path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        let mut turns = 0u64;
        loop {
            // Opaque to the optimiser: the loop stays in the module.
            turns = core::hint::black_box(turns.wrapping_add(1));
        }
    }
}

warren_sdk::export_operation!(Spin);
