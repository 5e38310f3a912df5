//! Test plugin `testing/stamp-a`: creates `<path>/s-<seq>` holding `a` and
//! answers `a:<zxid>`. Same code as `testing/stamp-b` but for the stamp.

const STAMP: &str = "a";

include!("../../stamp.rs");
