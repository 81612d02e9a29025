//! Safe by default: what `skiff up` sets up before it serves anything.
//!
//! - `pki`: the API's certificate authority and serving certificate (or the user's own).
//! - `credentials`: the API's bearer token and the kubeconfig that carries it with the CA.
//! - `private`: the data directory and everything in it kept from other users.

mod credentials;
mod pki;
mod private;

pub use credentials::{Credentials, KUBECONFIG_FILE, TOKEN_FILE, write_private};
pub use pki::{ServingTls, TlsFiles};
pub use private::make_private;
