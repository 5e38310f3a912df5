// Shared by the test plugins `testing/stamp-a` and `testing/stamp-b`, which
// define `STAMP` and then include this file: two versions of one operation,
// to test replacing an installed plugin.

use warren_sdk::{CreateMode, Operation, Outcome, Write, host};

struct Stamp;

impl Operation for Stamp {
    /// Creates the persistent-sequential node `<path>/s-` holding the stamp,
    /// and answers `<stamp>:<zxid of the entry>`.
    fn invoke(path: String, _args: Vec<u8>) -> Result<Outcome, String> {
        let node = format!("{}/s-", path.trim_end_matches('/'));
        let write = Write::create_with_mode(node, STAMP, CreateMode::PersistentSequential);
        Ok(Outcome::output(format!("{STAMP}:{}", host::zxid())).with_write(write))
    }
}

warren_sdk::export_operation!(Stamp);
