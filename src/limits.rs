//! The process's open-file limit, and the share of it the HTTP server may use.
//!
//! Every connection is a file descriptor, and so is every Kafka socket, every
//! client's wake-up pipe, the runtime's epoll and timer descriptors. With the
//! common default soft limit of 1,024 and `http.max_connections` 1,024, a flood
//! of half-sent requests used the descriptors up before the connection cap was
//! reached: `accept` failed, the cap never evicted anyone, and `/healthz` went
//! unanswered. At start the soft limit is raised to the hard limit, as servers
//! commonly do, and the connection cap is what remains after the engine's own
//! needs.

/// Descriptors kept for the engine itself: five Kafka clients (consumer, two
/// producers, the restore reader, the end-offset client), each with a socket
/// per broker and its own pipes, the runtime, logs and files, with room to
/// spare.
pub const RESERVED_FOR_ENGINE: u64 = 256;
/// The fewest connections the HTTP server is given, whatever the limit.
const MIN_CONNECTIONS: usize = 16;

/// The open-file limits after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard limit; the limits as they are
/// then (the old soft limit if raising is refused).
pub fn raise_open_files() -> std::io::Result<OpenFiles> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if l.rlim_cur < l.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: l.rlim_max,
            rlim_max: l.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising up to the hard limit
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            l = raised;
        }
    }
    Ok(OpenFiles {
        soft: l.rlim_cur,
        hard: l.rlim_max,
    })
}

/// The HTTP connection cap: the configured one, at most what the soft limit
/// leaves after the engine's own descriptors.
pub fn connection_cap(configured: usize, soft: u64) -> usize {
    let room = soft.saturating_sub(RESERVED_FOR_ENGINE);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room.max(MIN_CONNECTIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_engine_its_descriptors() {
        assert_eq!(connection_cap(1024, 1024), 768);
        assert_eq!(connection_cap(1024, 1_048_576), 1024);
        assert_eq!(connection_cap(100, 1024), 100);
        assert_eq!(connection_cap(1024, 200), MIN_CONNECTIONS);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let l = raise_open_files().unwrap();
        assert_eq!(l.soft, l.hard);
    }
}
