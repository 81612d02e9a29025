//! Applying image layers to a rootfs, as containerd and umoci do.
//!
//! A layer is a tar archive (plain, gzip or zstd) of changes to the layers below it:
//!
//! * `DIR/.wh.NAME` deletes `DIR/NAME` (and everything under it) from the lower layers;
//! * `DIR/.wh..wh..opq` makes `DIR` opaque: everything the lower layers put in it goes, what
//!   this layer puts in it stays, wherever the marker sits in the archive;
//! * other `.wh..wh.*` names are AUFS bookkeeping and are ignored;
//! * everything else is written: directories (merged with a lower directory of the same
//!   name), regular files, symlinks, hardlinks (to entries inside the rootfs) and FIFOs, with
//!   their modes, owners and mtimes. Device nodes are skipped: a container gets its own `/dev`.
//!
//! An entry naming `..` is refused. Symlinks are written as they are (an absolute target is
//! just text), but never followed out of the rootfs: the parents of every entry are resolved
//! as if the rootfs were `/`, so `etc -> /host/etc` leads to `<rootfs>/host/etc`. The entry
//! itself is never followed; whatever was at its path is replaced.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    /// Plain tar by its media type, but look at the first bytes: some tools say `tar` and
    /// write gzip.
    Sniff,
}

/// The compression a layer media type says, or why it is no layer this crate can apply:
/// `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]` (and the non-distributable
/// variants), `application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip]`.
pub(crate) fn compression(media_type: &str) -> Result<Compression, String> {
    let known = media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.");
    if known && (media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip")) {
        Ok(Compression::Gzip)
    } else if known && media_type.ends_with("+zstd") {
        Ok(Compression::Zstd)
    } else if known && media_type.ends_with(".tar") {
        Ok(Compression::Sniff)
    } else {
        Err(format!("unsupported layer media type {media_type:?}"))
    }
}

/// Applies the layer blob at `blob` (compressed as `compression` says) to `rootfs`.
pub(crate) fn apply_layer_file(rootfs: &Path, blob: &Path, compression: Compression) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, fs::File::open(blob)?);
    let compression = match compression {
        Compression::Sniff => {
            let head = reader.fill_buf()?;
            if head.starts_with(GZIP_MAGIC) {
                Compression::Gzip
            } else if head.starts_with(ZSTD_MAGIC) {
                Compression::Zstd
            } else {
                Compression::None
            }
        }
        other => other,
    };
    match compression {
        Compression::Gzip => apply_layer(rootfs, flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => apply_layer(rootfs, zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::None | Compression::Sniff => apply_layer(rootfs, reader),
    }
}

/// Applies one uncompressed layer (a tar stream) to `rootfs`, which must exist.
pub(crate) fn apply_layer(rootfs: &Path, tar: impl Read) -> io::Result<()> {
    let mut layer = Layer {
        root: rootfs,
        written: HashSet::new(),
        dirs: Vec::new(),
        as_root: nix::unistd::geteuid().is_root(),
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        layer.apply(&mut entry, &path).map_err(|e| with_path(e, &path))?;
    }
    // Directory modes and mtimes last: writing into a directory changes its mtime, and a
    // read-only directory would refuse later entries when not running as root.
    for (dir, mode, mtime) in layer.dirs.iter().rev() {
        set_mode(dir, *mode).and_then(|()| set_mtime(dir, *mtime)).map_err(|e| with_path(e, dir))?;
    }
    Ok(())
}

/// One layer being applied.
struct Layer<'r> {
    root: &'r Path,
    /// Host paths this layer wrote, with their parents: what an opaque marker keeps.
    written: HashSet<PathBuf>,
    /// Directories whose mode (and mtime) to set at the end of the layer.
    dirs: Vec<(PathBuf, u32, u64)>,
    /// Whether ownership can be set (we run as root; tests may not).
    as_root: bool,
}

impl Layer<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &Path) -> io::Result<()> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink) {
            return Ok(());
        }
        let components = clean(path)?;
        let Some((name, parents)) = components.split_last() else {
            return Ok(()); // the rootfs itself: it stays as Skiff made it
        };
        let name_bytes = name.as_bytes();
        if name_bytes.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parents, name_bytes);
        }
        let parent = resolve(self.root, parents, true)?;
        let target = parent.join(name);
        let header = entry.header();
        let raw = header.as_old();
        let mode = (numeric(header.mode().map(u64::from), &raw.mode)? as u32) & 0o7777;
        let uid = id(numeric(header.uid(), &raw.uid)?)?;
        let gid = id(numeric(header.gid(), &raw.gid)?)?;
        let mtime = numeric(header.mtime(), &raw.mtime)?;
        match kind {
            T::Directory => {
                let meta = fs::symlink_metadata(&target);
                if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                    if meta.is_ok() {
                        remove_any(&target)?;
                    }
                    fs::DirBuilder::new().mode(0o700).create(&target)?;
                }
                self.chown(&target, uid, gid)?;
                let mode = if self.as_root { mode } else { mode | 0o700 };
                self.dirs.push((target.clone(), mode, mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                remove_any(&target)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)?;
                io::copy(entry, &mut file)?;
                drop(file);
                self.chown(&target, uid, gid)?;
                set_mode(&target, mode)?;
                set_mtime(&target, mtime)?;
            }
            T::Symlink => {
                let link = entry.link_name()?.ok_or_else(|| invalid("a symlink without a target"))?;
                remove_any(&target)?;
                std::os::unix::fs::symlink(&link, &target)?;
                self.chown(&target, uid, gid)?;
                set_mtime(&target, mtime)?;
            }
            T::Link => {
                let link = entry.link_name()?.ok_or_else(|| invalid("a hardlink without a target"))?;
                let source = self.hardlink_source(&link)?;
                if source != target {
                    remove_any(&target)?;
                    fs::hard_link(&source, &target)?;
                }
            }
            T::Fifo => {
                remove_any(&target)?;
                nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600))?;
                self.chown(&target, uid, gid)?;
                set_mode(&target, mode)?;
                set_mtime(&target, mtime)?;
            }
            T::Char | T::Block => {
                tracing::debug!(path = %path.display(), "skipping a device node in an image layer");
                return Ok(());
            }
            other => {
                tracing::debug!(path = %path.display(), kind = ?other, "skipping a tar entry of unknown type");
                return Ok(());
            }
        }
        self.mark_written(target);
        Ok(())
    }

    /// `parents/.wh.NAME` or `parents/.wh..wh..opq`.
    fn whiteout(&mut self, parents: &[OsString], name: &[u8]) -> io::Result<()> {
        let dir = match resolve(self.root, parents, false) {
            Ok(dir) => dir,
            // Nothing below to delete.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if name == OPAQUE_WHITEOUT {
            self.mark_written(dir.clone());
            return self.make_opaque(&dir);
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let victim = &name[WHITEOUT_PREFIX.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." || victim.contains(&b'/') {
            return Err(invalid("a whiteout naming no entry"));
        }
        let victim = dir.join(OsStr::from_bytes(victim));
        // A whiteout hides what the layers below have, not what this one wrote.
        if !self.written.contains(&victim) {
            remove_any(&victim)?;
        }
        Ok(())
    }

    /// Removes from `dir` everything this layer did not write.
    fn make_opaque(&self, dir: &Path) -> io::Result<()> {
        if !fs::symlink_metadata(dir)?.is_dir() {
            return Ok(());
        }
        for child in fs::read_dir(dir)? {
            let path = child?.path();
            if !self.written.contains(&path) {
                remove_any(&path)?;
            } else if fs::symlink_metadata(&path)?.is_dir() {
                self.make_opaque(&path)?;
            }
        }
        Ok(())
    }

    /// Records `path` and its parents up to the rootfs as written by this layer.
    fn mark_written(&mut self, path: PathBuf) {
        let mut next = Some(path);
        while let Some(path) = next {
            if path == self.root || !self.written.insert(path.clone()) {
                break;
            }
            next = path.parent().map(Path::to_path_buf);
        }
    }

    /// The host path a hardlink's target names: resolved inside the rootfs, its last component
    /// not followed (a hardlink to a symlink links the symlink, as tar does).
    fn hardlink_source(&self, link: &Path) -> io::Result<PathBuf> {
        let components = clean(link)?;
        let Some((name, parents)) = components.split_last() else {
            return Err(invalid("a hardlink to the rootfs itself"));
        };
        let source = resolve(self.root, parents, false)?.join(name);
        let meta = fs::symlink_metadata(&source).map_err(|e| {
            io::Error::new(e.kind(), format!("hardlink target {} is not in the image: {e}", link.display()))
        })?;
        if meta.is_dir() {
            return Err(invalid(format!("hardlink target {} is a directory", link.display())));
        }
        Ok(source)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        if self.as_root { std::os::unix::fs::lchown(path, Some(uid), Some(gid)) } else { Ok(()) }
    }
}

/// The normal components of an entry's path, without `/`, `.` and empty ones; refused when
/// one is `..`.
fn clean(path: &Path) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name.to_owned()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the entry escapes the rootfs (its path has \"..\")",
                ));
            }
        }
    }
    Ok(out)
}

/// The host path of the directory `components` names inside `root`, following symlinks as if
/// `root` were `/` (an absolute target starts again at `root`, `..` stops at it). Missing
/// directories are created (mode 755) when `create`, else the result is `NotFound`; a
/// non-directory on the way is `NotADirectory`.
pub(crate) fn resolve(root: &Path, components: &[OsString], create: bool) -> io::Result<PathBuf> {
    let mut todo: VecDeque<OsString> = components.iter().cloned().collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    let host = |done: &[OsString]| done.iter().fold(root.to_path_buf(), |path, c| path.join(c));
    while let Some(component) = todo.pop_front() {
        if component.is_empty() || component == "." {
            continue;
        }
        if component == ".." {
            done.pop();
            continue;
        }
        let path = host(&done).join(&component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(&path)?;
                if target.has_root() {
                    done.clear();
                }
                for part in target.components().rev() {
                    match part {
                        Component::Normal(name) => todo.push_front(name.to_owned()),
                        Component::ParentDir => todo.push_front("..".into()),
                        Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                    }
                }
            }
            Ok(meta) if meta.is_dir() => done.push(component),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", display(&done, &component)),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new().mode(0o755).create(&path)?;
                done.push(component);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(host(&done))
}

/// Removes whatever is at `path` (a directory with its contents; a symlink, not its target).
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let time = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    utimensat(nix::fcntl::AT_FDCWD, path, &time, &time, UtimensatFlags::NoFollowSymlink)
        .map_err(io::Error::from)
}

/// A numeric header field; an empty one (all NULs or spaces) is 0, as Go's `archive/tar`
/// (and so Docker and containerd) reads it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other,
    }
}

fn id(value: u64) -> io::Result<u32> {
    u32::try_from(value).map_err(|_| invalid(format!("owner id {value} is out of range")))
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `/a/b/c` for the rootfs path `a/b` and `c`, for messages.
fn display(done: &[OsString], last: &OsStr) -> String {
    let mut out = String::new();
    for c in done.iter().map(OsString::as_os_str).chain([last]) {
        out.push('/');
        out.push_str(&c.to_string_lossy());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

    use super::*;

    /// One tar entry to build a test layer from.
    enum E<'a> {
        Dir(&'a str, u32),
        File(&'a str, &'a str, u32),
        Link(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Fifo(&'a str),
        Dev(&'a str),
    }

    fn tar(entries: &[E<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(1_000_000);
            header.set_uid(0);
            header.set_gid(0);
            let (path, data): (&str, &[u8]) = match entry {
                E::Dir(path, mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    (path, b"")
                }
                E::File(path, data, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    (path, data.as_bytes())
                }
                E::Link(path, target) | E::Hard(path, target) => {
                    let kind = if matches!(entry, E::Link(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    header.set_entry_type(kind);
                    header.set_mode(0o777);
                    header.set_link_name_literal(target).unwrap();
                    (path, b"")
                }
                E::Fifo(path) => {
                    header.set_entry_type(tar::EntryType::Fifo);
                    header.set_mode(0o640);
                    (path, b"")
                }
                E::Dev(path) => {
                    header.set_entry_type(tar::EntryType::Char);
                    header.set_mode(0o666);
                    (path, b"")
                }
            };
            header.set_size(data.len() as u64);
            // Written raw so that tests can put `..` and absolute paths in the archive.
            let name = header.as_gnu_mut().unwrap();
            name.name = [0; 100];
            name.name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn apply(root: &Path, entries: &[E<'_>]) -> io::Result<()> {
        apply_layer(root, tar(entries).as_slice())
    }

    fn exists(root: &Path, path: &str) -> bool {
        fs::symlink_metadata(root.join(path)).is_ok()
    }

    fn read(root: &Path, path: &str) -> String {
        fs::read_to_string(root.join(path)).unwrap()
    }

    fn lower(root: &Path) {
        apply(
            root,
            &[
                E::Dir("etc", 0o755),
                E::File("etc/keep", "keep", 0o644),
                E::File("etc/gone", "gone", 0o644),
                E::Dir("data/old", 0o755),
                E::File("data/old/a", "a", 0o644),
                E::Dir("opaque", 0o750),
                E::File("opaque/lower", "lower", 0o644),
                E::Dir("opaque/sub", 0o755),
                E::File("opaque/sub/deep", "deep", 0o644),
            ],
        )
        .unwrap();
    }

    #[test]
    fn files_dirs_links_modes_and_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply(
            root,
            &[
                E::Dir("./usr/", 0o755),
                E::File("usr/bin/tool", "#!/bin/sh\n", 0o4755),
                E::Dir("tmp", 0o1777),
                E::Dir("ro", 0o555),
                E::File("ro/file", "ro", 0o400),
                E::Link("bin", "usr/bin"),
                E::Link("abs", "/etc/passwd"),
                E::Hard("usr/bin/tool2", "usr/bin/tool"),
                E::Fifo("run/fifo"),
                E::Dev("dev/null"),
            ],
        )
        .unwrap();
        assert_eq!(read(root, "usr/bin/tool"), "#!/bin/sh\n");
        let meta = fs::metadata(root.join("usr/bin/tool")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o4755);
        assert_eq!(meta.mtime(), 1_000_000);
        assert_eq!(meta.nlink(), 2);
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().mtime(), 1_000_000);
        assert_eq!(read(root, "ro/file"), "ro");
        assert_eq!(fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(fs::read_link(root.join("abs")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(read(root, "bin/tool2"), "#!/bin/sh\n");
        assert!(fs::symlink_metadata(root.join("run/fifo")).unwrap().file_type().is_fifo());
        assert_eq!(fs::metadata(root.join("run")).unwrap().mode() & 0o777, 0o755);
        assert!(!exists(root, "dev/null"));
    }

    #[test]
    fn empty_numeric_fields_are_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_path("file").unwrap();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o640);
        header.set_size(2);
        header.set_cksum();
        assert!(header.uid().is_err() && header.gid().is_err());
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, b"hi".as_slice()).unwrap();
        apply_layer(dir.path(), builder.into_inner().unwrap().as_slice()).unwrap();
        let meta = fs::metadata(dir.path().join("file")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        if nix::unistd::geteuid().is_root() {
            assert_eq!((meta.uid(), meta.gid()), (0, 0));
        }
    }

    #[test]
    fn whiteouts_delete_from_lower_layers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        lower(root);
        apply(root, &[E::File("etc/.wh.gone", "", 0o644), E::File("data/.wh.old", "", 0o644)]).unwrap();
        assert!(exists(root, "etc/keep"));
        assert!(!exists(root, "etc/gone"));
        assert!(!exists(root, "etc/.wh.gone"));
        assert!(exists(root, "data"));
        assert!(!exists(root, "data/old"));
        // Whiteouts of what is not there, or under a missing directory, are no-ops.
        apply(root, &[E::File("etc/.wh.never", "", 0o644), E::File("nowhere/.wh.x", "", 0o644)]).unwrap();
        assert!(!exists(root, "nowhere"));
    }

    #[test]
    fn a_whiteout_does_not_delete_what_its_own_layer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        lower(root);
        // The replacement first, then the whiteout: the replacement stays.
        apply(root, &[E::File("etc/gone", "new", 0o644), E::File("etc/.wh.gone", "", 0o644)]).unwrap();
        assert_eq!(read(root, "etc/gone"), "new");
        // The whiteout first, then a new entry of the name: replaced.
        apply(root, &[E::File("data/.wh.old", "", 0o644), E::File("data/old/b", "b", 0o644)]).unwrap();
        assert!(!exists(root, "data/old/a"));
        assert_eq!(read(root, "data/old/b"), "b");
    }

    #[test]
    fn opaque_directories_hide_lower_contents_wherever_the_marker_is() {
        for marker_first in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            lower(root);
            let marker = E::File("opaque/.wh..wh..opq", "", 0o644);
            let upper = [E::Dir("opaque", 0o755), E::File("opaque/upper", "upper", 0o644)];
            let mut entries: Vec<E<'_>> = Vec::new();
            if marker_first {
                entries.push(marker);
                entries.extend(upper);
            } else {
                entries.extend(upper);
                entries.push(marker);
            }
            apply(root, &entries).unwrap();
            assert_eq!(read(root, "opaque/upper"), "upper", "marker first: {marker_first}");
            assert!(!exists(root, "opaque/lower"), "marker first: {marker_first}");
            assert!(!exists(root, "opaque/sub"), "marker first: {marker_first}");
            assert!(!exists(root, "opaque/.wh..wh..opq"));
            assert_eq!(fs::metadata(root.join("opaque")).unwrap().mode() & 0o777, 0o755);
            assert_eq!(read(root, "etc/keep"), "keep");
        }
    }

    #[test]
    fn opaque_keeps_implicit_parents_of_new_entries_but_not_their_lower_contents() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        lower(root);
        apply(root, &[E::File("opaque/sub/new", "new", 0o644), E::File("opaque/.wh..wh..opq", "", 0o644)])
            .unwrap();
        assert_eq!(read(root, "opaque/sub/new"), "new");
        assert!(!exists(root, "opaque/sub/deep"));
        assert!(!exists(root, "opaque/lower"));
    }

    #[test]
    fn entries_replace_entries_of_another_type() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        lower(root);
        apply(
            root,
            &[
                E::File("data/old", "now a file", 0o644),
                E::Dir("etc/keep", 0o755),
                E::Link("opaque", "/etc"),
                E::Dir("etc", 0o700),
            ],
        )
        .unwrap();
        assert_eq!(read(root, "data/old"), "now a file");
        assert!(fs::symlink_metadata(root.join("etc/keep")).unwrap().is_dir());
        assert!(fs::symlink_metadata(root.join("opaque")).unwrap().file_type().is_symlink());
        // A directory over a directory merges.
        assert!(exists(root, "etc/gone"));
        assert_eq!(fs::metadata(root.join("etc")).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn dot_dot_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir(&root).unwrap();
        for entries in [
            vec![E::File("../escaped", "x", 0o644)],
            vec![E::File("a/../../escaped", "x", 0o644)],
            vec![E::Hard("hard", "../outside")],
            vec![E::File(".wh...", "", 0o644)],
        ] {
            let err = apply(&root, &entries).unwrap_err();
            assert!(
                err.kind() == io::ErrorKind::PermissionDenied || err.kind() == io::ErrorKind::InvalidData,
                "{err}"
            );
        }
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn symlinks_are_never_followed_out_of_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "safe").unwrap();
        let outside_text = outside.to_str().unwrap();
        apply(
            &root,
            &[
                E::Link("abs", outside_text),
                E::Link("rel", "../../../../outside"),
                E::Link("loop", "loop"),
                E::Link("victim-link", &format!("{outside_text}/victim")),
            ],
        )
        .unwrap();
        apply(
            &root,
            &[
                E::File("abs/victim", "pwned", 0o644),
                E::File("rel/victim", "pwned", 0o644),
                // Writing over a symlink replaces the symlink, never its target.
                E::File("victim-link", "replaced", 0o644),
                E::Hard("hard", "abs/victim"),
            ],
        )
        .unwrap();
        apply(&root, &[E::File("abs/.wh.victim", "", 0o644)]).unwrap();
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "safe");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
        // The absolute link leads to the same path inside the rootfs, where the whiteout
        // then deleted the file the hardlink shares.
        let inside = root.join(outside.strip_prefix("/").unwrap());
        assert!(inside.is_dir());
        assert!(!inside.join("victim").exists());
        assert_eq!(read(&root, "hard"), "pwned");
        assert_eq!(read(&root, "outside/victim"), "pwned");
        assert_eq!(read(&root, "victim-link"), "replaced");
        let err = apply(&root, &[E::File("loop/x", "", 0o644)]).unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    #[test]
    fn a_file_on_the_way_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        lower(root);
        let err = apply(root, &[E::File("etc/keep/x", "", 0o644)]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        assert!(err.to_string().contains("/etc/keep is not a directory"), "{err}");
    }

    #[test]
    fn media_types_and_magic_bytes() {
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar+gzip"), Ok(Compression::Gzip));
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar+zstd"), Ok(Compression::Zstd));
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar"), Ok(Compression::Sniff));
        assert_eq!(
            compression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Ok(Compression::Gzip)
        );
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar.gzip"), Ok(Compression::Gzip));
        assert_eq!(
            compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Ok(Compression::Gzip)
        );
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar"), Ok(Compression::Sniff));
        assert!(compression("application/wasm").is_err());

        let layer = tar(&[E::File("hello", "world", 0o644)]);
        let gz = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut gz, &layer).unwrap();
            gz.finish().unwrap()
        };
        let zst = zstd::encode_all(layer.as_slice(), 3).unwrap();
        for (blob, compression) in [
            (&layer, Compression::None),
            (&layer, Compression::Sniff),
            (&gz, Compression::Gzip),
            (&gz, Compression::Sniff),
            (&zst, Compression::Zstd),
            (&zst, Compression::Sniff),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("blob");
            fs::write(&file, blob).unwrap();
            let root = dir.path().join("rootfs");
            fs::create_dir(&root).unwrap();
            apply_layer_file(&root, &file, compression).unwrap();
            assert_eq!(read(&root, "hello"), "world", "{compression:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        fs::write(&file, &layer).unwrap();
        assert!(apply_layer_file(dir.path(), &file, Compression::Gzip).is_err());
    }
}
