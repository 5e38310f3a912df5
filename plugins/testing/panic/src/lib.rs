//! Test plugin `testing/panic`: an operation that panics with the message
//! `the plugin panicked on purpose: <path>`, which the SDK's panic hook sends
//! to the host's log before the call traps.

use warren_sdk::{Operation, Outcome};

struct Panic;

impl Operation for Panic {
    fn invoke(path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        panic!("the plugin panicked on purpose: {path}")
    }
}

warren_sdk::export_operation!(Panic);
