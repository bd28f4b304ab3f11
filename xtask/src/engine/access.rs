//! Why an engine's unix socket does not answer: nothing there, nobody listening, or a socket that
//! refuses this user. The last one has a different fix (a group, not a start), so doctor names it.

use std::io::ErrorKind;
use std::path::Path;

/// What a connection attempt to a socket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Open,
    /// No socket file at that path.
    Missing,
    /// A socket file nobody listens on (an engine that stopped and left it behind).
    Silent,
    /// The socket exists but this user may not open it (EACCES or EPERM).
    Denied,
    Other,
}

/// The kind of a failed connect, told apart by what the fix is.
pub(crate) fn classify(kind: ErrorKind) -> Access {
    match kind {
        ErrorKind::PermissionDenied => Access::Denied,
        ErrorKind::NotFound => Access::Missing,
        ErrorKind::ConnectionRefused => Access::Silent,
        _ => Access::Other,
    }
}

/// Connects once to `socket` and says what happened.
pub(crate) fn probe(socket: &Path) -> Access {
    match crate::util::os::connect_socket(socket) {
        Ok(_) => Access::Open,
        Err(e) => classify(e.kind()),
    }
}

/// Doctor's line for a socket that refuses this user, with the fix.
pub(crate) fn denied_line(socket: &Path) -> String {
    format!(
        "{} refuses this user (permission denied): an engine may run there, but this user may not use it; \
         add the user to the socket's group (`sudo usermod -aG docker $USER`, then log in again), \
         or point DOCKER_HOST at an engine this user may reach",
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_is_told_from_absence_and_silence() {
        assert_eq!(classify(ErrorKind::PermissionDenied), Access::Denied);
        assert_eq!(classify(ErrorKind::NotFound), Access::Missing);
        assert_eq!(classify(ErrorKind::ConnectionRefused), Access::Silent);
        assert_eq!(classify(ErrorKind::TimedOut), Access::Other);
        // The errno a Unix kernel gives for a socket file without write permission is EACCES.
        #[cfg(unix)]
        assert_eq!(classify(std::io::Error::from_raw_os_error(libc::EACCES).kind()), Access::Denied);
        let line = denied_line(Path::new("/var/run/docker.sock"));
        assert!(
            line.starts_with("/var/run/docker.sock refuses this user (permission denied)") && line.contains("usermod")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_and_a_silent_socket_are_named_as_such() {
        let dir = std::env::temp_dir().join(format!("xtask-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("engine.sock");
        assert_eq!(probe(&path), Access::Missing);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(probe(&path), Access::Open);
        drop(listener);
        assert_eq!(probe(&path), Access::Silent, "the file stays, nobody listens");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
