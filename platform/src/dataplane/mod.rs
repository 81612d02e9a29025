//! The data plane: requests in at `{name}.{namespace}.{domain}`, out to a revision's pod.
//!
//! ```text
//! client -> ingress (host -> route -> revision by traffic split or tag)
//!        -> revision queue (containerConcurrency slots, bounded wait, timeout)
//!        -> pod (Wasm: an in-process call, no TCP hop)
//! ```
//!
//! The routing table is rebuilt from Route status as routes change; the revision table
//! holds the pods the revision controller started.

mod ingress;
mod limiter;
mod routing;

pub use ingress::router;
pub use limiter::{Limiter, Overloaded};
pub use routing::{RevisionEntry, RouteEntry, Tables};
