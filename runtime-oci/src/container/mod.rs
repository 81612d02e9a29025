//! Containers under runc or crun: bundles, runtime specs, namespaces, network, lifecycle.
