//! The UDP socket under QUIC, with a receive buffer sized for bursts.
//!
//! QUIC's packets arrive in bursts: a sender lets a window's worth go at once, and every
//! packet the process has not read yet waits in the socket's receive buffer, where the kernel
//! drops whatever does not fit. Linux's default buffer (`net.core.rmem_default`, 208 KiB)
//! holds at most about 150 full packets (fewer: the kernel's bookkeeping counts too). The
//! benchmark's attachment runs (raw quinn, then 1 MiB, 100 MiB and 1 GiB through two nodes
//! on loopback) dropped 1,320–1,745 packets each with it (`RcvbufErrors` in
//! `/proc/net/snmp`), each one answered by the sender's congestion control halving its pace;
//! with 4 MiB none were dropped (the measurements are in BENCHMARKS.md, eighteenth session).
//! quic-go asks for 7 MiB for the same reason. On Linux a process may ask for more than the
//! kernel allows (`net.core.rmem_max`): the kernel then gives its maximum, and
//! [`Granted::is_short`] tells so, for the operator to raise the limit (other systems may
//! refuse such a request instead, an error from [`set_receive_buffer`]).

use std::net::{SocketAddr, UdpSocket};

/// The receive buffer the clerk's CLI asks for, and a node's default
/// (`limits.udp_receive_buffer`): 4 MiB.
pub const RECEIVE_BUFFER: usize = 4 << 20;

/// Whether the kernel reports twice the buffer it keeps for data (Linux's kernel, so Android's
/// too: socket(7)).
const DOUBLED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The most [`set_receive_buffer`] asks for: Linux cuts a request to half an `int` before
/// doubling it, and the socket option takes an `int`.
const MOST: usize = (i32::MAX / 2) as usize;

/// What the kernel gave a socket when asked for a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Bytes asked for.
    pub asked: usize,
    /// Bytes the socket can hold now, as the kernel reports them.
    pub reported: usize,
}

impl Granted {
    /// Whether the kernel gave less than asked (its `net.core.rmem_max` is lower). Linux keeps
    /// as much again for its own bookkeeping and reports the doubled figure (socket(7)), so
    /// there the request was met only if the report is twice the request.
    pub fn is_short(&self) -> bool {
        self.held() < self.asked
    }

    /// Bytes the socket keeps for data: the report, halved where the kernel doubles it.
    pub fn held(&self) -> usize {
        if DOUBLED { self.reported / 2 } else { self.reported }
    }
}

/// Asks the kernel for a receive buffer of `bytes` on `socket` (before quinn takes it), and
/// reads back what it gave. On Linux the kernel's limits make a large request smaller, not an
/// error; a request past what an `int` holds is cut to the most the kernel could give.
pub fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> std::io::Result<Granted> {
    let bytes = bytes.min(MOST);
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(bytes)?;
    Ok(Granted { asked: bytes, reported: sock.recv_buffer_size()? })
}

/// A UDP socket bound to `addr` as `quinn::Endpoint::client` makes one (an IPv6 one
/// dual-stack where the system allows, so an IPv4-mapped address is reached too), with
/// [`RECEIVE_BUFFER`] asked for: the clerk's CLI's, and the benchmark's raw quinn pair's, so
/// that its limit is measured on sockets like lienthong's. A kernel that gives a smaller
/// buffer still serves, only slower.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from(socket);
    let _ = set_receive_buffer(&socket, RECEIVE_BUFFER);
    Ok(socket)
}

/// What the kernel gives a socket asked for a receive buffer of `bytes`, found by asking it
/// for a throwaway socket on loopback: `lienthong-node check` warns with it before a node
/// starts. Asking is the one answer that holds everywhere: the limit's file
/// (`/proc/sys/net/core/rmem_max`, [`receive_buffer_limit`]) is hidden in many containers,
/// and other systems keep theirs elsewhere or refuse the request instead.
pub fn probe(bytes: usize) -> std::io::Result<Granted> {
    let socket = UdpSocket::bind("127.0.0.1:0").or_else(|_| UdpSocket::bind("[::1]:0"))?;
    set_receive_buffer(&socket, bytes)
}

/// The receive buffer `socket` has, as the kernel reports it (Linux: twice what it keeps for
/// data, see [`Granted::is_short`]).
pub fn receive_buffer(socket: &UdpSocket) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).recv_buffer_size()
}

/// The most a socket's receive buffer may be given here (Linux: `net.core.rmem_max`), if
/// this system tells: for tests that set out what [`probe`] should find.
pub fn receive_buffer_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through [`probe`], so `set_receive_buffer` on a fresh socket as the node uses it.
    #[test]
    fn a_receive_buffer_within_the_kernels_limit_is_given() {
        // Within what this machine allows, whatever it allows: the test holds on a kernel
        // with the default limit (208 KiB) as on one raised for QUIC.
        let asked = receive_buffer_limit().map_or(64 << 10, |max| max.min(RECEIVE_BUFFER));
        let granted = probe(asked).unwrap();
        assert!(!granted.is_short(), "{granted:?}");
        assert_eq!(granted.asked, asked);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_receive_buffer_beyond_the_kernels_limit_is_short() {
        let Some(max) = receive_buffer_limit() else {
            return; // /proc/sys/net/core/rmem_max hidden (a container's namespace): nothing to compare
        };
        if max > 256 << 20 {
            // A kernel that allows buffers this large leaves nothing to test here.
            return;
        }
        let granted = probe(max + 1).unwrap();
        assert!(granted.is_short(), "{granted:?}");
        // What the kernel gives instead is its maximum (reported doubled).
        assert_eq!((granted.reported, granted.held()), (max * 2, max));
    }

    #[test]
    fn is_short_counts_the_kernels_doubling() {
        let short = |asked, reported| Granted { asked, reported }.is_short();
        if DOUBLED {
            assert!(!short(1000, 2000));
            assert!(short(1000, 1999));
        } else {
            assert!(!short(1000, 1000));
            assert!(short(1000, 999));
        }
    }
}
