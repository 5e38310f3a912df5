//! Test plugin `testing/stamp-b`: creates `<path>/s-<seq>` holding `b` and
//! answers `b:<zxid>`. Same code as `testing/stamp-a` but for the stamp.

const STAMP: &str = "b";

include!("../../stamp.rs");
