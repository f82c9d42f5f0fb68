//! Free loopback ports.

use std::{
    net::{Ipv4Addr, TcpListener, UdpSocket},
    sync::atomic::{AtomicU32, Ordering},
};

/// Ports are handed out below the kernel's ephemeral range (32768–60999 on
/// Linux): a port picked there by binding port 0 can be taken by any
/// outgoing connection (pebble's, PostgreSQL's, a test client's) before the
/// server meant to use it binds it, which made tests fail now and then with
/// "Address already in use".
const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

/// The next candidate: each process walks the range from its own offset,
/// so two calls in one process never return the same port.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

fn next_candidate() -> u16 {
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % COUNT;
    u16::try_from(FIRST + n).unwrap_or(20_000)
}

/// A port on 127.0.0.1 that is free for both TCP and UDP right now, outside
/// the ephemeral range, and not handed out before by this process.
///
/// # Errors
/// When no such port is found.
pub fn free_port() -> std::io::Result<u16> {
    for _ in 0..COUNT {
        let port = next_candidate();
        let Ok(_tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else { continue };
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no port free for both TCP and UDP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap_or(0)).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)), "{ports:?}");
    }
}
