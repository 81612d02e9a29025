//! The container's user: `uid`, `uid:gid`, `name` or `name:group`, names resolved against the
//! image's `/etc/passwd` and `/etc/group` as Docker and runc do.

use std::path::{Component, Path, PathBuf};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups that list the user's name as a member.
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` (empty or `None` for root) against the files of `rootfs`.
pub(crate) fn resolve(rootfs: &Path, spec: Option<&str>) -> Result<User, String> {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err("the user part is empty".into());
    }
    let passwd = read_passwd(rootfs);
    let (uid, mut gid, name) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|e| e.uid == uid) {
            Some(entry) => (uid, entry.gid, Some(entry.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => match passwd.iter().find(|e| e.name == user_part) {
            Some(entry) => (entry.uid, entry.gid, Some(entry.name.clone())),
            None => return Err(format!("no user named {user_part:?} in the image's /etc/passwd")),
        },
    };
    let groups = read_group(rootfs);
    if let Some(group) = group_part {
        if group.is_empty() {
            return Err("the group part is empty".into());
        }
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match groups.iter().find(|g| g.name == group) {
                Some(entry) => entry.gid,
                None => return Err(format!("no group named {group:?} in the image's /etc/group")),
            },
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for entry in groups.iter().filter(|g| g.members.iter().any(|m| m == name)) {
            if entry.gid != gid && !additional_gids.contains(&entry.gid) {
                additional_gids.push(entry.gid);
            }
        }
    }
    Ok(User { uid, gid, additional_gids })
}

fn read_passwd(rootfs: &Path) -> Vec<PasswdEntry> {
    read_in_root(rootfs, "/etc/passwd")
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || line.starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
        .collect()
}

fn read_group(rootfs: &Path) -> Vec<GroupEntry> {
    read_in_root(rootfs, "/etc/group")
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 || line.starts_with('#') {
                return None;
            }
            Some(GroupEntry {
                name: fields[0].to_string(),
                gid: fields[2].parse().ok()?,
                members: fields
                    .get(3)
                    .map(|m| {
                        m.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The text of `path` inside `root`, empty when missing or unreadable (not UTF-8 counts too).
fn read_in_root(root: &Path, path: &str) -> String {
    resolve_in_root(root, Path::new(path))
        .and_then(|p| std::fs::read(p).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// `path` resolved inside `root` as if `root` were `/`: symbolic links (absolute ones
/// included) and `..` never leave it. `None` when a component is missing or links loop.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> =
        path.components().rev().filter_map(component_name).collect::<Vec<_>>();
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str())
            .chain(resolved.iter().map(|s| s.as_os_str()))
            .collect::<PathBuf>()
            .join(&name);
        let meta = std::fs::symlink_metadata(&candidate).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = std::fs::read_link(&candidate).ok()?;
            if target.is_absolute() {
                resolved.clear();
            }
            pending.extend(target.components().rev().filter_map(component_name));
        } else {
            resolved.push(name);
        }
    }
    Some(std::iter::once(root.as_os_str()).chain(resolved.iter().map(|s| s.as_os_str())).collect())
}

fn component_name(component: Component<'_>) -> Option<std::ffi::OsString> {
    match component {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some("..".into()),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nstaff:x:50:app,other\nwheel:x:10:root\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn resolves_names_numbers_and_groups() {
        let dir = rootfs();
        let root = dir.path();
        assert_eq!(resolve(root, None).unwrap(), User { uid: 0, gid: 0, additional_gids: vec![10] });
        assert_eq!(
            resolve(root, Some("app")).unwrap(),
            User { uid: 1000, gid: 1001, additional_gids: vec![50] }
        );
        assert_eq!(resolve(root, Some("1000")).unwrap().gid, 1001);
        assert_eq!(resolve(root, Some("1234")).unwrap(), User { uid: 1234, gid: 0, additional_gids: vec![] });
        assert_eq!(
            resolve(root, Some("1234:77")).unwrap(),
            User { uid: 1234, gid: 77, additional_gids: vec![] }
        );
        assert_eq!(resolve(root, Some("app:staff")).unwrap().gid, 50);
        assert!(resolve(root, Some("nobody")).unwrap_err().contains("nobody"));
        assert!(resolve(root, Some("app:nogroup")).unwrap_err().contains("nogroup"));
    }

    #[test]
    fn links_stay_inside_the_root() {
        let dir = rootfs();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", root.join("usr/lib/escape")).unwrap();
        assert_eq!(resolve_in_root(root, Path::new("/lib/escape")), Some(root.join("etc/passwd")));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in_root(root, Path::new("/loop")), None);
    }
}
