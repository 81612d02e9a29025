//! Paths of the guest components in `examples/`, built from source during the build
//! (see `build.rs`): `skiff_guests::HELLO` is the `hello` component's `.wasm` file.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Every guest as (name, path).
pub fn all() -> [(&'static str, &'static str); 5] {
    [
        ("hello", HELLO),
        ("echo", ECHO),
        ("fetch", FETCH),
        ("event-handler", EVENT_HANDLER),
        ("misbehave", MISBEHAVE),
    ]
}
