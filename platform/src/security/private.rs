//! The data directory is its owner's alone (Docker and containerd made theirs private after
//! CVE-2021-41091 and CVE-2021-41103): the directory 0700 and what sits in it 0700 or 0600.
//! No umask is forced on the process: container root filesystems and their overlay layers
//! need their own modes for a container's non-root user; the 0700 directory above them is
//! what keeps other users out.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;

/// Make `data_dir` (created if missing) and its entries private, on a fresh start and on one
/// made by an earlier, more open version; called again once the stores have made their files. Deeper entries (image layers, container root
/// filesystems) keep their modes, which their owners need; no other user can reach them.
pub fn make_private(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    set_mode(data_dir, 0o700)?;
    let entries = std::fs::read_dir(data_dir).with_context(|| format!("reading {}", data_dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            continue;
        }
        set_mode(&entry.path(), if kind.is_dir() { 0o700 } else { 0o600 })?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_data_dir_becomes_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(data.join("skiff.redb"), b"x").unwrap();
        std::fs::set_permissions(data.join("skiff.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir(data.join("bundles")).unwrap();
        make_private(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("skiff.redb")), 0o600);
        assert_eq!(mode(&data.join("bundles")), 0o700);
    }
}
