//! Test plugin `testing/wasi`: Warren's operation world plus an import of
//! `wasi:random/random@0.2.0` (wit/plugin.wit), which it calls, so the
//! component really imports it. The host must refuse to install it.

wit_bindgen::generate!({
    // Warren's WIT first: the local world includes its operation world.
    path: ["../../../wit", "wit"],
    world: "warren-testing:wasi/operation-with-wasi",
    generate_all,
});

use wasi::random::random::get_random_u64;

struct Random;

impl Guest for Random {
    /// Answers a random number: exactly what a plugin must not do.
    fn invoke(_path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        Ok(Outcome { writes: Vec::new(), output: get_random_u64().to_string().into_bytes() })
    }
}

export!(Random);
