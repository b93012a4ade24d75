//! The remote console: `owl console` (the client) and the node's console
//! listener, talking over a Unix socket in the data directory. Nothing
//! listens on the network for it.

pub(crate) mod client;
pub(crate) mod commands;
pub(crate) mod server;
