//! The remote console: `owl console` (the client) and the node's console
//! listener, talking over a Unix socket in the data directory. Nothing
//! listens on the network for it. The commands themselves — what they
//! mean, what they answer — are the domain's (`owl_system::console`).

pub(crate) mod client;
pub(crate) mod socket;
