//! `pidfile`: refused when another live process holds it, as PgBouncer's `check_pidfile`;
//! written whole; removed at exit only while it is still ours.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Before anything starts: a pidfile naming a live process means another instance runs (or
/// one still shutting down), so this one must not start and later delete that one's file. A
/// stale one (its process gone) is removed. One that cannot be read or holds no pid is taken
/// as held, as PgBouncer does.
pub fn check(path: &Path) -> Result<(), String> {
    let held = |why: &str| {
        Err(format!(
            "pidfile {} exists, another instance running? ({why})",
            path.display()
        ))
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return held(&e.to_string()),
    };
    let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 0) else {
        return held("no pid in it");
    };
    match kill(Pid::from_raw(pid), None) {
        Err(Errno::ESRCH) => std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale pidfile {}: {e}", path.display())),
        _ => held(&format!("pid {pid} is alive")),
    }
}

/// Writes our pid to a temporary name and renames it into place, so whoever reads the pidfile
/// (a service manager, a monitoring script) sees the whole pid or no file, never an empty one.
pub fn write(path: &Path) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// At exit: removes the pidfile if it still names this process (an operator may have moved it
/// to another instance meanwhile).
pub fn remove(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_pid_holds_the_file_a_dead_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pid");
        assert_eq!(check(&path), Ok(()), "no file");

        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let refused = check(&path).unwrap_err();
        assert!(refused.contains("another instance running?"), "{refused}");
        assert!(path.exists());

        // A process that has exited: its pid is free (until reused, which a fresh pid is not).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        std::fs::write(&path, format!("{gone}\n")).unwrap();
        assert_eq!(check(&path), Ok(()));
        assert!(!path.exists(), "a stale pidfile is removed");

        std::fs::write(&path, "garbage").unwrap();
        assert!(check(&path).unwrap_err().contains("no pid in it"));
    }

    #[test]
    fn only_our_own_pidfile_is_removed_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pid");
        std::fs::write(&path, "1\n").unwrap();
        remove(&path);
        assert!(path.exists(), "another process's pidfile stays");
        write(&path).unwrap();
        remove(&path);
        assert!(!path.exists());
    }
}
