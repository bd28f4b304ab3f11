//! The few things the xtask does through Unix-only APIs (signals, process groups, symbolic links,
//! the engine's unix socket), each behind one function here, so every other module compiles on
//! Windows too. Elsewhere the docker CLI does the same work: macOS and Windows reach Docker Desktop
//! through it, and the console delivers Ctrl-C to the xtask and the build it runs alike.
//!
//! The tidy test keeps Unix-only APIs out of every other module unless they sit under a
//! `#[cfg(unix)]` item.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The stop signals' numbers, which POSIX fixes; named here so that `Stop` reads the same
/// everywhere (elsewhere only `handler` could have produced them, and it produces none).
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

pub use imp::*;

/// The user's home folder: HOME, else (on Windows) USERPROFILE.
pub(crate) fn home_dir() -> Option<PathBuf> {
    ["HOME", "USERPROFILE"].iter().find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty())).map(PathBuf::from)
}

#[cfg(unix)]
mod imp {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    /// Calls `on_signal` on a thread of its own (not in a signal handler, so it may allocate and
    /// start threads) for each SIGINT, SIGTERM and SIGHUP.
    pub(crate) fn on_stop_signals(on_signal: impl Fn(i32) + Send + 'static) -> anyhow::Result<()> {
        use anyhow::Context;
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .context("installing the SIGINT, SIGTERM and SIGHUP handler")?;
        std::thread::spawn(move || signals.forever().for_each(on_signal));
        Ok(())
    }

    /// Makes the child lead a process group of its own, so one signal reaches everything it starts.
    pub(crate) fn own_process_group(command: &mut Command) {
        command.process_group(0);
    }

    /// Sends `signal` to process group `group` (0 asks whether any member is left); false when no
    /// process of the group is there.
    pub(crate) fn signal_group(group: u32, signal: i32) -> bool {
        // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
        unsafe { libc::kill(-(group as libc::pid_t), signal) == 0 }
    }

    /// Sends SIGKILL to the group.
    pub(crate) fn kill_group(group: u32) {
        signal_group(group, libc::SIGKILL);
    }

    /// The signal that ended a child, if one did.
    pub(crate) fn exit_signal(status: ExitStatus) -> Option<i32> {
        status.signal()
    }

    pub fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
        std::os::unix::fs::symlink(original, link)
    }

    /// The engine's API over its unix socket: one connection per request.
    pub(crate) fn connect_socket(socket: &Path) -> io::Result<std::os::unix::net::UnixStream> {
        std::os::unix::net::UnixStream::connect(socket)
    }

    /// Whether a directory entry is a Unix socket.
    pub(crate) fn is_socket(kind: &std::fs::FileType) -> bool {
        use std::os::unix::fs::FileTypeExt;
        kind.is_socket()
    }

    /// Whether a process with this id exists (one of another user counts: kill answers EPERM).
    pub(crate) fn process_exists(pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: kill(2) with signal 0 only checks that the process exists; it touches no memory.
        let answered = unsafe { libc::kill(pid, 0) };
        answered == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    /// Makes a folder's entries durable (a rename into it survives a power cut once this returns).
    pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    /// The owner, group and permission bits of a file or folder.
    pub(crate) fn owner_and_mode(meta: &std::fs::Metadata) -> Option<(u32, u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        Some((meta.uid(), meta.gid(), meta.mode()))
    }

    /// Locks an open file (flock(2)), shared or exclusive, held until the file is closed: true
    /// when taken, false when `wait` is off and another holds it.
    pub(crate) fn flock(file: &std::fs::File, exclusive: bool, wait: bool) -> io::Result<bool> {
        use std::os::unix::io::AsRawFd;
        let mut op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        if !wait {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock on a descriptor this File owns for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(err),
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    /// No handler: the console's Ctrl-C ends the xtask and the build it runs together, as it
    /// ends any console program there.
    pub(crate) fn on_stop_signals(_on_signal: impl Fn(i32) + Send + 'static) -> anyhow::Result<()> {
        Ok(())
    }

    pub(crate) fn own_process_group(_command: &mut Command) {}

    pub(crate) fn signal_group(_group: u32, _signal: i32) -> bool {
        false
    }

    pub(crate) fn kill_group(_group: u32) {}

    /// No Unix sockets in a directory here.
    pub(crate) fn is_socket(_kind: &std::fs::FileType) -> bool {
        false
    }

    pub(crate) fn exit_signal(_status: ExitStatus) -> Option<i32> {
        None
    }

    /// Only the private engine and the stand-ins link files, and both need Linux.
    pub fn symlink(_original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("linking {} needs Linux (it is part of the private engine or a stand-in)", link.as_ref().display()),
        ))
    }

    /// Never called: [`crate::engine::api::socket`] finds no unix socket off Unix, so the engine is
    /// asked through the docker CLI.
    pub(crate) fn connect_socket(socket: &Path) -> io::Result<std::net::TcpStream> {
        Err(io::Error::new(io::ErrorKind::Unsupported, format!("{} is a unix socket", socket.display())))
    }

    /// Unknown here, so every process counts as running: a temporary file is then left in place
    /// rather than taken from a writer that may still use it.
    pub(crate) fn process_exists(_pid: u32) -> bool {
        true
    }

    /// A folder cannot be opened as a file here; NTFS journals its entries itself.
    pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
        Ok(())
    }

    /// No Unix owner and mode here (the private engine, which asks, needs Linux).
    pub(crate) fn owner_and_mode(_meta: &std::fs::Metadata) -> Option<(u32, u32, u32)> {
        None
    }

    /// No flock here: builds and cleans do not exclude each other (BuildKit still keeps records a
    /// build uses), and the history's appends are single writes to a file opened for appending.
    pub(crate) fn flock(_file: &std::fs::File, _exclusive: bool, _wait: bool) -> io::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_named_signals_are_the_platforms_own() {
        assert_eq!((SIGHUP, SIGINT, SIGTERM), (libc::SIGHUP, libc::SIGINT, libc::SIGTERM));
    }

    #[cfg(unix)]
    #[test]
    fn this_process_exists_and_a_reaped_child_does_not() {
        assert!(process_exists(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_exists(pid));
        assert!(sync_dir(&std::env::temp_dir()).is_ok());
    }

    #[test]
    fn a_status_that_exited_has_no_signal() {
        let status = Command::new(std::env::current_exe().unwrap()).arg("--list").output().unwrap().status;
        assert_eq!(exit_signal(status), None);
    }
}
