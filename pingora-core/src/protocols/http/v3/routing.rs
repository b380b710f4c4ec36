//! The UDP socket of a QUIC endpoint, shared with the other instance across an upgrade.
//!
//! After a hand-over both instances hold the listener's UDP socket, and the kernel gives
//! each datagram to whichever reads first. [`RoutedUdpSocket`] makes that harmless: every
//! connection ID names the instance that issued it ([`InstanceId`]), and a datagram
//! addressed to another instance's connection is passed to that instance over a unix
//! datagram socket (its *inbox*, in the abstract namespace, named after the listener's
//! address and the instance id). The instance that handed its sockets over stops reading
//! the UDP socket and reads only its inbox; it still sends on the UDP socket, from the
//! same address, so its clients notice nothing.
//!
//! Inboxes accept datagrams only from processes of the same user (checked with the
//! kernel's `SCM_CREDENTIALS`). A datagram whose owner has no inbox (it exited) is
//! handled here, which answers it with a stateless reset, as before routing existed.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram as StdUnixDatagram};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixAddr,
};
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

use super::cid::InstanceId;
use super::endpoint::quic_stats;

/// Bytes before the datagram in an inbox message: see [`Header`].
const HEADER_LEN: usize = 40;
/// Format version of an inbox message.
const VERSION: u8 = 1;

/// A listener's UDP socket that passes datagrams of other instances' connections to
/// them, and takes in the datagrams they pass here.
pub(crate) struct RoutedUdpSocket {
    udp: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    own: InstanceId,
    /// Its datagrams from other instances, and its way to theirs; None when the inbox
    /// could not be bound (then nothing is routed to or from this instance).
    mail: Option<Mailboxes>,
    /// Set once the socket was handed to another instance: read the inbox only.
    handed_over: AtomicBool,
}

impl RoutedUdpSocket {
    /// Wraps `udp` (already made non-blocking). Must be called in a tokio runtime.
    pub(crate) fn new(udp: std::net::UdpSocket) -> io::Result<RoutedUdpSocket> {
        let local = udp.local_addr()?;
        let own = InstanceId::current();
        let udp = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, udp)?;
        let mail = Mailboxes::open(local, own)
            .inspect_err(|e| {
                log::warn!(
                    "HTTP/3 on {local}: no inbox for datagrams from other instances ({e}); \
                     QUIC connections will not survive an upgrade"
                )
            })
            .ok();
        Ok(RoutedUdpSocket {
            udp,
            local,
            own,
            mail,
            handed_over: AtomicBool::new(false),
        })
    }

    /// Stops (true) or resumes (false) reading the UDP socket: after a hand-over only
    /// the new instance reads it, and this one gets its datagrams through its inbox.
    pub(crate) fn set_handed_over(&self, handed_over: bool) {
        self.handed_over.store(handed_over, Ordering::Release);
    }

    /// Whether this instance has an inbox, so that its connections can outlive a
    /// hand-over.
    pub(crate) fn routes(&self) -> bool {
        self.mail.is_some()
    }

    /// One datagram from the inbox into `buf`, if one is there; registers the task to
    /// be woken for the next one otherwise. Messages that are not valid are dropped.
    fn poll_inbox(&self, cx: &mut Context, buf: &mut [u8], meta: &mut RecvMeta) -> Poll<()> {
        let Some(Mailboxes { inbox, .. }) = &self.mail else {
            return Poll::Pending;
        };
        loop {
            if inbox.poll_recv_ready(cx).is_pending() {
                return Poll::Pending;
            }
            let mut header = [0u8; HEADER_LEN];
            let received = inbox.try_io(Interest::READABLE, || {
                receive_checked(inbox.as_raw_fd(), &mut header, buf)
            });
            match received {
                Ok(Some(len)) => match Header::decode(&header, len) {
                    Some(m) => {
                        *meta = m;
                        return Poll::Ready(());
                    }
                    None => log::debug!("HTTP/3 on {}: bad inbox message dropped", self.local),
                },
                Ok(None) => {}
                // Readiness was cleared: the next poll_recv_ready registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("HTTP/3 on {}: inbox read failed: {e}", self.local);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Passes the datagram(s) `data` to the instance `owner`. False when no such
    /// instance has an inbox (the datagram is then handled here).
    fn forward(&self, owner: InstanceId, meta: &RecvMeta, data: &[u8]) -> bool {
        let Some(Mailboxes { outbox, .. }) = &self.mail else {
            return false;
        };
        let Ok(to) = UnixAddr::new_abstract(inbox_name(self.local, owner).as_bytes()) else {
            return false;
        };
        let header = Header::encode(meta);
        let iov = [IoSlice::new(&header), IoSlice::new(data)];
        match sendmsg(
            outbox.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::MSG_DONTWAIT,
            Some(&to),
        ) {
            Ok(_) => {
                quic_stats().forwarded();
                true
            }
            // The owner is there but its inbox is full: drop it, QUIC retransmits.
            Err(Errno::EAGAIN) => true,
            Err(_) => false,
        }
    }

    /// Keeps the first `n` received entries that are this instance's, in order, and
    /// passes the others to their owners; returns how many were kept.
    fn keep_own(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta], n: usize) -> usize {
        let mut kept = 0;
        for i in 0..n {
            let data = &bufs[i][..meta[i].len];
            if let Some(owner) = InstanceId::of_packet(data) {
                if owner != self.own && self.forward(owner, &meta[i], data) {
                    continue;
                }
            }
            if kept != i {
                let (to, from) = bufs.split_at_mut(i);
                let len = meta[i].len;
                to[kept][..len].copy_from_slice(&from[0][..len]);
                meta[kept] = meta[i];
            }
            kept += 1;
        }
        kept
    }
}

impl fmt::Debug for RoutedUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedUdpSocket")
            .field("local", &self.local)
            .field("instance", &self.own)
            .field("handed_over", &self.handed_over)
            .finish()
    }
}

impl AsyncUdpSocket for RoutedUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.udp.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.udp.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) {
                if self.poll_inbox(cx, buf, m).is_ready() {
                    return Poll::Ready(Ok(1));
                }
            }
            if self.handed_over.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            let n = ready!(self.udp.poll_recv(cx, bufs, meta))?;
            let kept = self.keep_own(bufs, meta, n);
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
            // Every datagram was another instance's: read on.
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.udp.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.udp.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.udp.may_fragment()
    }
}

/// The abstract-namespace name of the inbox of `instance` for the listener on `local`.
fn inbox_name(local: SocketAddr, instance: InstanceId) -> String {
    format!("pingora-quic/{local}/{instance:?}")
}

/// An instance's unix datagram sockets for passing QUIC datagrams between instances.
struct Mailboxes {
    /// Bound to this instance's name: where the others send its datagrams.
    inbox: UnixDatagram,
    /// Unbound: sends to the others' inboxes.
    outbox: StdUnixDatagram,
}

impl Mailboxes {
    /// Binds this instance's inbox (accepting credentials) and makes its outbox.
    fn open(local: SocketAddr, own: InstanceId) -> io::Result<Mailboxes> {
        let name = UnixSocketAddr::from_abstract_name(inbox_name(local, own))?;
        let inbox = StdUnixDatagram::bind_addr(&name)?;
        setsockopt(&inbox, sockopt::PassCred, &true)?;
        inbox.set_nonblocking(true)?;
        let outbox = StdUnixDatagram::unbound()?;
        outbox.set_nonblocking(true)?;
        Ok(Mailboxes {
            inbox: UnixDatagram::from_std(inbox)?,
            outbox,
        })
    }
}

/// Reads one inbox message: its header into `header`, its datagram into `buf`.
/// Ok(Some(datagram length)) for a whole message from a process of this user; Ok(None)
/// for one to drop (another user's, or cut short).
fn receive_checked(
    fd: i32,
    header: &mut [u8; HEADER_LEN],
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
    let mut iov = [IoSliceMut::new(header), IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    if msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        || msg.bytes < HEADER_LEN
    {
        return Ok(None);
    }
    let uid = nix::unistd::geteuid().as_raw();
    let same_user = msg.cmsgs().is_ok_and(|mut c| {
        c.any(|m| matches!(m, ControlMessageOwned::ScmCredentials(cred) if cred.uid() == uid))
    });
    Ok(same_user.then_some(msg.bytes - HEADER_LEN))
}

/// The receive metadata of a passed datagram, as bytes:
/// version, source address family (4 or 6), source IP (16 bytes), source port, ECN
/// bits, segment size (GRO stride, 2 bytes), destination IP family (0 when unknown) and
/// destination IP (16 bytes).
struct Header;

impl Header {
    fn encode(meta: &RecvMeta) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = VERSION;
        let (family, ip) = ip_bytes(meta.addr.ip());
        h[1] = family;
        h[2..18].copy_from_slice(&ip);
        h[18..20].copy_from_slice(&meta.addr.port().to_be_bytes());
        h[20] = meta.ecn.map_or(0, |e| e as u8);
        let stride = u16::try_from(meta.stride).unwrap_or(u16::MAX);
        h[21..23].copy_from_slice(&stride.to_be_bytes());
        if let Some(dst) = meta.dst_ip {
            let (family, ip) = ip_bytes(dst);
            h[23] = family;
            h[24..40].copy_from_slice(&ip);
        }
        h
    }

    /// The metadata of a message whose datagram is `len` bytes; None if malformed.
    fn decode(h: &[u8; HEADER_LEN], len: usize) -> Option<RecvMeta> {
        if h[0] != VERSION || len == 0 {
            return None;
        }
        let src = ip_from(h[1], &h[2..18])?;
        let port = u16::from_be_bytes([h[18], h[19]]);
        let stride = usize::from(u16::from_be_bytes([h[21], h[22]]));
        let dst_ip = match h[23] {
            0 => None,
            family => Some(ip_from(family, &h[24..40])?),
        };
        Some(RecvMeta {
            addr: SocketAddr::new(src, port),
            len,
            stride: if stride == 0 { len } else { stride.min(len) },
            ecn: EcnCodepoint::from_bits(h[20]),
            dst_ip,
        })
    }
}

fn ip_bytes(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (4, b)
        }
        IpAddr::V6(v6) => (6, v6.octets()),
    }
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match family {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_receive_metadata() {
        let meta = RecvMeta {
            addr: "[2001:db8::7]:4433".parse().unwrap(),
            len: 3000,
            stride: 1200,
            ecn: Some(EcnCodepoint::Ect0),
            dst_ip: Some("192.0.2.1".parse().unwrap()),
        };
        let back = Header::decode(&Header::encode(&meta), 3000).unwrap();
        assert_eq!(back.addr, meta.addr);
        assert_eq!((back.len, back.stride), (3000, 1200));
        assert_eq!(back.ecn, meta.ecn);
        assert_eq!(back.dst_ip, meta.dst_ip);

        let mut bad = Header::encode(&meta);
        bad[0] = 9;
        assert!(Header::decode(&bad, 3000).is_none());
        bad[0] = VERSION;
        bad[1] = 5;
        assert!(Header::decode(&bad, 3000).is_none());
    }
}
