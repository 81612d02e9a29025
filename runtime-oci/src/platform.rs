//! Picking one manifest out of a multi-platform image index: a `wasi/wasm` entry when there
//! is one (the index carries a Wasm component), else `linux/amd64` (the platform Skiff runs
//! containers on).

use oci_client::manifest::ImageIndexEntry;

/// The digest of the entry this platform runs, if the index has one.
pub(crate) fn select(entries: &[ImageIndexEntry]) -> Option<String> {
    let platform =
        |e: &ImageIndexEntry| e.platform.as_ref().map(|p| (p.os.to_string(), p.architecture.to_string()));
    let wasm = entries
        .iter()
        .find(|e| platform(e).is_some_and(|(os, arch)| os.starts_with("wasi") && arch == "wasm"));
    let linux =
        || entries.iter().find(|e| platform(e).is_some_and(|(os, arch)| os == "linux" && arch == "amd64"));
    wasm.or_else(linux).map(|e| e.digest.clone())
}

/// `os/arch` of every entry, for saying what an index offers when nothing fits.
pub(crate) fn describe(entries: &[ImageIndexEntry]) -> String {
    let platforms: Vec<String> = entries
        .iter()
        .map(|e| match &e.platform {
            Some(p) => format!("{}/{}", p.os, p.architecture),
            None => "unknown".to_owned(),
        })
        .collect();
    if platforms.is_empty() { "none".to_owned() } else { platforms.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, platform: Option<(&str, &str)>) -> ImageIndexEntry {
        let json = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": platform.map(|(os, arch)| serde_json::json!({ "os": os, "architecture": arch })),
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn prefers_wasm_then_linux_amd64() {
        let entries = [
            entry("arm", Some(("linux", "arm64"))),
            entry("amd", Some(("linux", "amd64"))),
            entry("wasm", Some(("wasip2", "wasm"))),
        ];
        assert_eq!(select(&entries).as_deref(), Some("wasm"));
        assert_eq!(select(&entries[..2]).as_deref(), Some("amd"));
        assert_eq!(select(&[entry("w", Some(("wasi", "wasm")))]).as_deref(), Some("w"));
        assert_eq!(select(&entries[..1]), None);
        assert_eq!(select(&[entry("x", None)]), None);
        assert_eq!(describe(&[entries[0].clone(), entry("x", None)]), "linux/arm64, unknown");
        assert_eq!(describe(&[]), "none");
    }
}
