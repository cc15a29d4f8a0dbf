//! Commands whose arguments and code live in one file each (as cargo's `commands/`); the
//! rest are still in `cli.rs` and `run.rs` (issue 29 moves them here one by one).

pub mod fleet;
pub mod rollout;
