//! The runner's parts: the subject process, the servers, and the scenario player.

pub mod mark;
pub mod play;
pub mod scenario;
pub mod subject;
pub mod util;
pub mod world;
