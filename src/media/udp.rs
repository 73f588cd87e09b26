//! Batched UDP for the shard threads: `recvmmsg` and `sendmmsg` on Linux move up to
//! `BATCH` datagrams per system call; elsewhere one datagram per call.
//!
//! A shard fans one packet out to many subscribers, so most wake-ups send many datagrams; the
//! per-call cost of the kernel crossing is then paid once per batch.
//!
//! A socket bound to the unspecified address (`0.0.0.0`, `[::]`) also learns each datagram's
//! destination address (`IP_PKTINFO`): ICE matches a request to the local candidate it was sent
//! to, and a server with several advertised addresses must tell them apart.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest datagram accepted (WebRTC packets stay under ~1500 bytes).
pub const MAX_DATAGRAM: usize = 2048;

/// Receive buffers for one batch.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    /// The address each datagram was sent to, when the socket reports it.
    to: [Option<IpAddr>; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            from: [None; BATCH],
            to: [None; BATCH],
        }
    }
}

impl RecvBatch {
    /// Datagram `i` of the last receive.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let from = self.from.get(i).copied().flatten()?;
        Some((from, &self.bufs[i][..self.lens[i]]))
    }

    /// The local address datagram `i` was sent to, if the socket reported it (see
    /// [`enable_pktinfo`]).
    pub fn local_ip(&self, i: usize) -> Option<IpAddr> {
        self.to.get(i).copied().flatten()
    }
}

/// Asks the kernel for each datagram's destination address. Only useful (and only done) on a
/// socket bound to the unspecified address.
pub fn enable_pktinfo(socket: &std::net::UdpSocket) -> io::Result<()> {
    sys::enable_pktinfo(socket)
}

/// Receives up to `BATCH` datagrams without waiting; `Ok(0)` if none is ready.
pub fn try_recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    let r = socket.try_io(Interest::READABLE, || sys::recv_batch(socket, batch));
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        r => r,
    }
}

/// Sends `msgs` in batches, waiting for the socket when its buffer is full. Returns the number
/// of datagrams that failed for reasons other than a full buffer (they are skipped).
pub async fn send_all(socket: &UdpSocket, msgs: &[(SocketAddr, Vec<u8>)]) -> usize {
    let mut failed = 0;
    let mut at = 0;
    // Bounded: every round either sends at least one datagram or skips one.
    while at < msgs.len() {
        let end = (at + BATCH).min(msgs.len());
        match socket.try_io(Interest::WRITABLE, || {
            sys::send_batch(socket, &msgs[at..end])
        }) {
            Ok(n) if n > 0 => at += n,
            Ok(_) => {
                failed += 1;
                at += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    return failed + (msgs.len() - at);
                }
            }
            Err(_) => {
                // One bad destination (e.g. unreachable) must not stop the others.
                failed += 1;
                at += 1;
            }
        }
    }
    failed
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    //! The `sendmmsg`/`recvmmsg` calls. Each unsafe block only passes pointers to buffers that
    //! live, unmoved, for the duration of the call.
    use std::io;
    use std::mem::MaybeUninit;
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use socket2::SockAddr;
    use tokio::net::UdpSocket;

    use super::{BATCH, RecvBatch};

    /// Room for one `in_pktinfo`/`in6_pktinfo` control message, aligned for `cmsghdr`.
    type Control = [u64; 8];

    pub fn enable_pktinfo(socket: &std::net::UdpSocket) -> io::Result<()> {
        let local = socket.local_addr()?;
        if !local.ip().is_unspecified() {
            return Ok(());
        }
        let (level, name) = match local {
            SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
            SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
        };
        let on: libc::c_int = 1;
        // SAFETY: passes a pointer to a live c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The destination address in a received message's control data, if any.
    fn destination(hdr: &libc::msghdr) -> Option<std::net::IpAddr> {
        if hdr.msg_controllen == 0 {
            return None;
        }
        // SAFETY: msg_control points to a buffer of msg_controllen bytes that the kernel
        // filled with well-formed control messages; CMSG_* walk within it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    let ip = std::net::Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                    return Some(ip.into());
                }
                if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_PKTINFO {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    return Some(std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        None
    }

    pub fn recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut controls: [Control; BATCH] = [[0u64; 8]; BATCH];
        let mut names: [MaybeUninit<libc::sockaddr_storage>; BATCH] =
            [MaybeUninit::zeroed(); BATCH];
        let mut iovs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: an all-zero mmsghdr is a valid (empty) value of this plain C struct.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = batch.bufs[i].len();
            hdrs[i].msg_hdr.msg_name = names[i].as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_controllen = std::mem::size_of::<Control>() as _;
        }
        // SAFETY: hdrs, iovs, names, controls and the buffers outlive the call; the kernel
        // writes at most the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            batch.lens[i] = hdrs[i].msg_len as usize;
            // SAFETY: the kernel wrote the sender's address into this storage.
            batch.from[i] = to_socket_addr(unsafe { names[i].assume_init_ref() });
            batch.to[i] = destination(&hdrs[i].msg_hdr);
        }
        Ok(n)
    }

    fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match libc::c_int::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let a: &libc::sockaddr_in =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    pub fn send_batch(socket: &UdpSocket, msgs: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let n = msgs.len().min(BATCH);
        let addrs: Vec<SockAddr> = msgs[..n].iter().map(|(a, _)| SockAddr::from(*a)).collect();
        let mut iovs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            // The kernel only reads from the buffer of a send.
            iovs[i].iov_base = msgs[i].1.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = msgs[i].1.len();
            hdrs[i].msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            hdrs[i].msg_hdr.msg_namelen = addrs[i].len();
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer refers to memory alive until the call returns.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::net::SocketAddr;

    use tokio::net::UdpSocket;

    use super::RecvBatch;

    pub fn recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let (n, from) = socket.try_recv_from(&mut batch.bufs[0])?;
        batch.lens[0] = n;
        batch.from[0] = Some(from);
        batch.to[0] = None;
        Ok(1)
    }

    pub fn enable_pktinfo(_socket: &std::net::UdpSocket) -> io::Result<()> {
        Ok(())
    }

    fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match libc::c_int::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let a: &libc::sockaddr_in =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    pub fn send_batch(socket: &UdpSocket, msgs: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let (to, data) = &msgs[0];
        socket.try_send_to(data, *to).map(|_| 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_goes_out_and_comes_back_in_order() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = b.local_addr().unwrap();
        let msgs: Vec<(SocketAddr, Vec<u8>)> =
            (0..70u8).map(|i| (to, vec![i; 100 + i as usize])).collect();
        assert_eq!(send_all(&a, &msgs).await, 0);
        let mut got = Vec::new();
        let mut batch = RecvBatch::default();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 70 && tokio::time::Instant::now() < deadline {
            b.readable().await.unwrap();
            let n = try_recv_batch(&b, &mut batch).unwrap();
            for i in 0..n {
                let (from, data) = batch.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.push(data.to_vec());
            }
        }
        assert_eq!(got.len(), 70);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), 100 + i);
            assert!(d.iter().all(|x| *x == i as u8));
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_wildcard_socket_learns_where_each_datagram_was_sent() {
        let std_b = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        std_b.set_nonblocking(true).unwrap();
        enable_pktinfo(&std_b).unwrap();
        let port = std_b.local_addr().unwrap().port();
        let b = UdpSocket::from_std(std_b).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // 127.0.0.2 is loopback too: the destination tells the two apart.
        for ip in ["127.0.0.1", "127.0.0.2"] {
            let to: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            a.send_to(b"x", to).await.unwrap();
            let mut batch = RecvBatch::default();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut n = 0;
            while n == 0 && tokio::time::Instant::now() < deadline {
                b.readable().await.unwrap();
                n = try_recv_batch(&b, &mut batch).unwrap();
            }
            assert_eq!(n, 1);
            assert_eq!(batch.local_ip(0), Some(ip.parse().unwrap()));
        }
    }
}
