//! Skiff's eventing: what the platform's brokers, triggers and sources are built from.
//!
//! * [`codec`]: CloudEvents 1.0 and 0.3 over HTTP (binary, structured and batched modes),
//!   validated here rather than trusted to the SDK, and written back out for delivery.
//! * [`filter`]: Knative Trigger filters (`filter.attributes` and the `filters` dialect).
//! * [`log`]: the durable per-broker event log in redb, with a cursor per trigger.
//! * [`delivery`]: Knative's delivery policy: retries, backoff, timeouts, dead letters.
//! * [`ping`]: Knative's PingSource: cron schedules, the ping event, and the pinger that sends it.
//! * [`dispatch`]: the Trigger dispatcher: a trigger's events from the log to its subscriber,
//!   at least once, with replies, retries, dead letters, spans and counters.
//!
//! It knows nothing of the platform, which wires it to its API and data plane.

pub mod broker;
pub mod codec;
pub mod delivery;
pub mod dispatch;
pub mod filter;
mod json;
pub mod log;
pub mod ping;
pub mod sender;
