//! Knative Eventing from the command line, the way `kn` drives it: `skiff broker`,
//! `skiff trigger` and `skiff source ping` (create, update, list, describe, delete), and
//! kn-plugin-event's `skiff event send`.

pub mod broker;
mod delivery;
mod describe;
pub mod event;
mod lifecycle;
pub mod ping;
mod sink;
pub mod trigger;

pub use broker::BrokerCommand;
pub use event::EventCommand;
pub use ping::SourceCommand;
pub use sink::label as sink_label;
pub use trigger::TriggerCommand;

#[cfg(test)]
mod tests {
    use crate::cli::kinds;

    #[test]
    fn the_generic_commands_know_the_eventing_kinds() {
        for (name, kind) in [
            ("broker", "Broker"),
            ("brokers", "Broker"),
            ("brokers.eventing.knative.dev", "Broker"),
            ("trigger", "Trigger"),
            ("triggers", "Trigger"),
            ("pingsource", "PingSource"),
            ("pingsources", "PingSource"),
            ("PingSource", "PingSource"),
        ] {
            assert_eq!(kinds::lookup(name).unwrap().kind, kind, "{name}");
        }
        assert_eq!(kinds::for_object("sources.knative.dev/v1", "PingSource").unwrap().plural, "pingsources");
    }
}
