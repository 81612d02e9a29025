//! The data plane: requests in at `{name}.{namespace}.{domain}`, out to a revision's pod.
//!
//! ```text
//! client -> ingress (host -> route -> revision by traffic split or tag)
//!        -> activator, when the revision has no ready capacity (holds, pokes the autoscaler)
//!        -> the least-loaded pod's queue (containerConcurrency slots, bounded wait, timeout)
//!        -> pod (Wasm: an in-process call, no TCP hop)
//! ```
//!
//! The routing table is rebuilt from Route status as routes change; the revision table
//! holds each running revision's ready pods, which its autoscaler keeps, and the request
//! metrics it scales on.

mod ingress;
mod limiter;
pub mod metrics;
mod revision;
mod routing;
pub mod stats;

pub use ingress::router;
pub use limiter::{Limiter, Overloaded};
pub use revision::{ActivatorLimits, Assigned, PodSlot, Refusal, Revision};
pub use routing::{RouteEntry, Tables};
