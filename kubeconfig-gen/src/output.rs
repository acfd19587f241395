//! The kubeconfig file `generate` writes: where it is, the existing file it merges into, and the
//! write itself (atomic, mode 0600, so a reader sees the old file or the new one), or stdout.
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use crate::env;
use crate::error::{Cause, Error, Result};
use crate::kubeconfig;

/// The path that means stdout.
const STDOUT: &str = "-";

/// `--kubeconfig`, else the first path in $KUBECONFIG, else ~/.kube/config (as kubectl).
pub fn path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        env::var("KUBECONFIG")
            .and_then(|k| std::env::split_paths(&k).find(|p| !p.as_os_str().is_empty()))
    })
    .unwrap_or_else(|| PathBuf::from(env::var("HOME").unwrap_or_default()).join(".kube/config"))
}

pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

/// The kubeconfig already at `path`, to merge into; `None` when there is no file yet.
pub fn read_existing(path: &Path) -> Result<Option<Kubeconfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => kubeconfig::from_yaml(&text)
            .map(Some)
            .map_err(|e| Error::ExistingKubeconfig {
                path: path.to_path_buf(),
                source: Cause(e),
            }),
        // A path under a regular file cannot hold a kubeconfig either: nothing to merge, and the
        // write reports why the path is unusable.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(source) => Err(Error::ReadKubeconfig {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One line on stderr. A closed or full stderr is ignored: `eprintln!` would panic (exit 101)
/// there, and the exit code already says how the run ended.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// TEXT on stdout. A closed pipe (`explain | head -1`) is `Error::Stdout`, exit 6, never a
/// panic (`println!` panics there: Rust ignores SIGPIPE, so the write fails with EPIPE).
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Stdout { source })
}

/// The YAML to stdout (`-`) or into the file.
pub fn write(path: &Path, yaml: &str) -> Result<()> {
    if !is_stdout(path) {
        return write_atomically(path, yaml);
    }
    print(yaml)
}

/// `--watch`: writes TEXT (atomically) unless the file PATH names already holds exactly these bytes,
/// so an unchanged world leaves the file, its inode and its mtime alone. Whether it wrote.
pub fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    write_atomically(path, text)?;
    Ok(true)
}

/// How many symlinks a kubeconfig path may pass through (Linux's own limit is 40).
const MAX_SYMLINKS: usize = 40;

/// The file a symlinked PATH finally names (itself when it is no symlink). A dangling link
/// names the file to create. Replacing the link by a regular file lost dotfile managers' links
/// (`~/.kube/config -> dotfiles/kubeconfig`); awscli writes through them, and so do we.
fn resolve_symlinks(path: &Path) -> std::io::Result<PathBuf> {
    let mut cur = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&cur)?;
                cur = match cur.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(cur),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_SYMLINKS} symbolic links"
    )))
}

/// Temp file in the directory of the file PATH names (through symlinks, which stay), mode 0600,
/// fsync, rename: readers see the old or the new file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let fail = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let path = &resolve_symlinks(path).map_err(fail)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubeconfig-gen.")
        .tempfile_in(&dir)
        .map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_kubeconfig_absent_unreadable_or_not_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("yaml"), "apiVersion: v1\nkind: Config\n").unwrap();
        std::fs::write(d.join("not-yaml"), "[a]\nx = 1\n").unwrap();
        // (path, want: Ok(exists) or Err(the message's start))
        let cases: [(PathBuf, std::result::Result<bool, String>); 5] = [
            (d.join("yaml"), Ok(true)),
            (d.join("missing"), Ok(false)),
            (d.join("yaml/config"), Ok(false)),
            // A directory is unreadable as a file even for root (tests may run as root, where
            // mode 000 would still be readable).
            (
                d.to_path_buf(),
                Err(format!(
                    "existing kubeconfig {} cannot be read",
                    d.display()
                )),
            ),
            (
                d.join("not-yaml"),
                Err(format!(
                    "existing kubeconfig {} cannot be parsed",
                    d.join("not-yaml").display()
                )),
            ),
        ];
        for (path, want) in cases {
            match (read_existing(&path), want) {
                (Ok(found), Ok(exists)) => assert_eq!(found.is_some(), exists, "{path:?}"),
                (Err(e), Err(start)) => {
                    assert_eq!(e.exit_code(), 6, "{e}");
                    assert!(e.to_string().starts_with(&start), "{e}");
                    assert!(std::error::Error::source(&e).is_some(), "{e}: no cause");
                }
                (got, want) => panic!("{path:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn atomic_write_creates_dirs_and_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/config");
        write_atomically(&path, "x: 1\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x: 1\n");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn unchanged_content_leaves_inode_and_mtime_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        assert!(write_if_changed(&path, "a: 1\n").unwrap(), "created");
        let stamp = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let before = stamp(&path);
        assert!(!write_if_changed(&path, "a: 1\n").unwrap(), "same bytes");
        assert_eq!(stamp(&path), before);
        assert!(write_if_changed(&path, "a: 2\n").unwrap(), "new bytes");
        assert_ne!(
            stamp(&path).0,
            before.0,
            "a new file renamed over the old one"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
    }

    #[test]
    fn writes_through_symlinks_which_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("dotfiles")).unwrap();
        std::fs::write(d.join("dotfiles/kubeconfig"), "old\n").unwrap();
        // link -> hop -> dotfiles/kubeconfig (relative targets), and a dangling link.
        std::os::unix::fs::symlink("dotfiles/kubeconfig", d.join("hop")).unwrap();
        std::os::unix::fs::symlink("hop", d.join("link")).unwrap();
        std::os::unix::fs::symlink("dotfiles/new", d.join("dangling")).unwrap();
        write_atomically(&d.join("link"), "new\n").unwrap();
        write_atomically(&d.join("dangling"), "created\n").unwrap();
        for (link, target, text) in [
            ("link", "dotfiles/kubeconfig", "new\n"),
            ("dangling", "dotfiles/new", "created\n"),
        ] {
            assert!(
                std::fs::symlink_metadata(d.join(link))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{link} is still a symlink"
            );
            assert_eq!(std::fs::read_to_string(d.join(target)).unwrap(), text);
        }
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let err = write_atomically(&d.join("loop"), "x").unwrap_err();
        assert_eq!(err.exit_code(), 6);
    }
}
