//! Knative's PingSource: a cron schedule, and the event it sends to its sink at every firing.
//!
//! * [`Schedule`]: `spec.schedule` as robfig/cron's standard parser reads it (five fields,
//!   names, steps, `@daily` and friends, `@every 1h30m`, a `CRON_TZ=` prefix) in `spec.timezone`,
//!   and when it next fires, across daylight saving time changes (see [`Schedule::next_after`]).
//! * [`PingSpec`]: the whole `spec`, validated as Knative's webhook does, with field paths.
//! * [`ping_event`]: the CloudEvent of one firing (`dev.knative.sources.ping`).
//! * [`Pinger`]: a running PingSource: it sleeps until the next firing, sends the event to the
//!   resolved sink in binary mode (each firing the root of its own trace) and retries as
//!   Knative's `mt-ping` adapter does.
//!
//! Where Skiff differs from Knative, on purpose:
//!
//! * `@every <duration>` is accepted (Knative's webhook rejects it; robfig/cron reads it).
//! * Day-of-week `7` is Sunday, as in Vixie cron (robfig/cron stops at 6).
//! * Daylight saving time follows Vixie cron rather than robfig/cron, which skips a daily job
//!   whose time falls in a spring-forward gap and runs it twice in a fall-back overlap: see
//!   [`Schedule::next_after`].

mod cron;
mod duration;
mod pinger;
mod schedule;
mod spec;

pub use pinger::{PingStats, Pinger};
pub use schedule::Schedule;
pub use spec::{PING_EVENT_TYPE, PingSpec, ping_event, ping_source};
