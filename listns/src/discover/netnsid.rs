//! Network namespace ids (NSIDs) over rtnetlink.
//!
//! An NSID is a small integer that one network namespace assigns to another
//! (`ip netns set NAME ID`). `ip netns list-id` and the NETNSID column of
//! lsns show it. The kernel reports it for a RTM_GETNSID request that names
//! the peer namespace by file descriptor (NETNSA_FD). The message is small,
//! so it is encoded here by hand. Constants and layouts follow the Linux uapi
//! headers `linux/netlink.h`, `linux/rtnetlink.h` and `linux/net_namespace.h`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, sendto, socket_with};

/// `NLMSG_ERROR`: the payload is a `struct nlmsgerr` with a negative errno.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
/// NETNSA_NSID value for a peer namespace that has no id.
const NETNSA_NSID_NOT_ASSIGNED: i32 = -1;
/// Clears NLA_F_NESTED and NLA_F_NET_BYTEORDER from `nla_type`.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `sizeof(struct nlmsghdr)`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ALIGN(sizeof(struct rtgenmsg))`: one family byte and 3 bytes of padding.
const RTGENMSG_LEN: usize = 4;
/// `sizeof(struct nlattr)`: len u16, type u16.
const NLA_HDRLEN: usize = 4;
const REQUEST_LEN: usize = NLMSG_HDRLEN + RTGENMSG_LEN + NLA_HDRLEN + 4;

/// Size of the receive buffer. A RTM_NEWNSID reply is 28 bytes and an error
/// reply quotes the 28-byte request, so this leaves room for extended-ack data.
const RECEIVE_BUFFER_LEN: usize = 8192;

/// Maximum wait for the kernel's reply. The kernel replies to RTM_GETNSID
/// while handling the request, so this only turns a lost reply into an error
/// instead of a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A NETLINK_ROUTE socket that sends RTM_GETNSID requests.
///
/// The kernel resolves ids relative to the network namespace that the socket
/// was created in, which is the caller's network namespace at the time of
/// [`NetnsIdQuery::new`]. A later `setns` by the caller does not move it.
pub struct NetnsIdQuery {
    socket: OwnedFd,
    /// Sequence number of the last request. A reply with another number is
    /// left over from an earlier request that timed out, and is skipped.
    sequence: u32,
}

impl NetnsIdQuery {
    /// Opens the NETLINK_ROUTE socket. It can serve any number of queries.
    ///
    /// # Errors
    ///
    /// Fails where socket() or setsockopt(SO_RCVTIMEO) fails, for example
    /// under a seccomp filter that blocks netlink sockets.
    pub fn new() -> io::Result<Self> {
        // `None` selects protocol 0, which is NETLINK_ROUTE.
        let socket = socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)
            .map_err(|errno| with_context(errno.into(), "failed to open a NETLINK_ROUTE socket for RTM_GETNSID"))?;
        set_socket_timeout(&socket, Timeout::Recv, Some(REPLY_TIMEOUT))
            .map_err(|errno| with_context(errno.into(), "failed to set SO_RCVTIMEO on the NETLINK_ROUTE socket"))?;
        Ok(Self { socket, sequence: 0 })
    }

    /// Returns the id assigned to `netns` in the caller's network namespace, or None when none is assigned.
    ///
    /// "The caller's network namespace" is the one the socket was created in
    /// (see [`NetnsIdQuery`]).
    ///
    /// # Errors
    ///
    /// `netns` must refer to a network namespace, such as an open
    /// `/proc/PID/ns/net` or `/run/netns/NAME`. Otherwise the kernel rejects
    /// the request with EINVAL, returned as kind `InvalidInput`. A closed fd
    /// gives EBADF. Other errors come from the socket, and kind `TimedOut`
    /// means that no reply came within 5 seconds.
    pub fn id_of(&mut self, netns: BorrowedFd<'_>) -> io::Result<Option<i32>> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let fd = netns.as_raw_fd();
        let request = encode_getnsid_request(sequence, fd);

        // Port id 0 addresses the kernel.
        let kernel = SocketAddrNetlink::new(0, 0);
        sendto(&self.socket, &request, SendFlags::empty(), &kernel)
            .map_err(|errno| with_context(errno.into(), &format!("failed to send RTM_GETNSID for fd {fd}")))?;

        let mut buffer = [0u8; RECEIVE_BUFFER_LEN];
        loop {
            let (received, datagram_len) = match recv(&self.socket, &mut buffer, RecvFlags::TRUNC) {
                Ok(lengths) => lengths,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out after {REPLY_TIMEOUT:?} waiting for the RTM_GETNSID \
                             reply for fd {fd}; retry the query"
                        ),
                    ));
                }
                Err(errno) => {
                    return Err(with_context(
                        errno.into(),
                        &format!("failed to receive the RTM_GETNSID reply for fd {fd}"),
                    ));
                }
            };
            if datagram_len > received {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "netlink reply of {datagram_len} bytes does not fit the \
                         {RECEIVE_BUFFER_LEN}-byte receive buffer"
                    ),
                ));
            }

            match parse_reply(&buffer[..received], sequence)? {
                Reply::Pending => continue,
                Reply::Nsid(id) => return Ok(id),
                Reply::Errno(errno) => {
                    let hint = if errno == libc::EINVAL {
                        "; the fd must refer to a network namespace"
                    } else {
                        ""
                    };
                    return Err(with_context(
                        io::Error::from_raw_os_error(errno),
                        &format!("kernel rejected RTM_GETNSID for fd {fd}{hint}"),
                    ));
                }
            }
        }
    }
}

/// Encodes `struct nlmsghdr`, `struct rtgenmsg` and one u32 NETNSA_FD
/// attribute, in native byte order as netlink requires.
fn encode_getnsid_request(sequence: u32, netns_fd: i32) -> [u8; REQUEST_LEN] {
    let mut request = [0u8; REQUEST_LEN];

    request[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETNSID.to_ne_bytes());
    request[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request[8..12].copy_from_slice(&sequence.to_ne_bytes());
    // Bytes 12..16 are the sender port id, left 0 for the kernel to fill in.

    // rtgen_family is AF_UNSPEC (0), followed by padding, so bytes 16..20 stay 0.

    let attribute = NLMSG_HDRLEN + RTGENMSG_LEN;
    let attribute_len = (NLA_HDRLEN + 4) as u16;
    request[attribute..attribute + 2].copy_from_slice(&attribute_len.to_ne_bytes());
    request[attribute + 2..attribute + 4].copy_from_slice(&NETNSA_FD.to_ne_bytes());
    // The kernel reads the fd as a u32 and resolves it in the sender's fd table.
    request[attribute + 4..attribute + 8].copy_from_slice(&(netns_fd as u32).to_ne_bytes());

    request
}

/// Content of one received datagram, for the request with a given sequence number.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// No message for this request, so the caller receives again.
    Pending,
    /// RTM_NEWNSID reply: the id, or None for NETNSA_NSID_NOT_ASSIGNED.
    Nsid(Option<i32>),
    /// NLMSG_ERROR reply with this positive errno.
    Errno(i32),
}

fn parse_reply(datagram: &[u8], sequence: u32) -> io::Result<Reply> {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let message_len = read_u32(rest, 0) as usize;
        if message_len < NLMSG_HDRLEN || message_len > rest.len() {
            return Err(malformed(&format!(
                "nlmsg_len {message_len} is outside 16..={}",
                rest.len()
            )));
        }
        let message_type = read_u16(rest, 4);
        let message_sequence = read_u32(rest, 8);
        let payload = &rest[NLMSG_HDRLEN..message_len];

        if message_sequence == sequence {
            match message_type {
                NLMSG_ERROR => return parse_error(payload),
                RTM_NEWNSID => return parse_newnsid(payload).map(Reply::Nsid),
                _ => {}
            }
        }

        // NLMSG_ALIGN: messages in one datagram start on 4-byte boundaries.
        let aligned_len = (message_len + 3) & !3;
        rest = rest.get(aligned_len..).unwrap_or(&[]);
    }
    Ok(Reply::Pending)
}

fn parse_error(payload: &[u8]) -> io::Result<Reply> {
    if payload.len() < 4 {
        return Err(malformed(&format!(
            "NLMSG_ERROR payload has {} bytes, expected at least 4",
            payload.len()
        )));
    }
    let error = read_u32(payload, 0) as i32;
    if error == 0 {
        // An acknowledgement without data. The request does not set
        // NLM_F_ACK, so this only comes from a kernel that ignored it.
        return Err(malformed("kernel acknowledged RTM_GETNSID without returning an id"));
    }
    Ok(Reply::Errno(error.saturating_neg()))
}

fn parse_newnsid(payload: &[u8]) -> io::Result<Option<i32>> {
    let mut attributes = payload.get(RTGENMSG_LEN..).unwrap_or(&[]);
    while attributes.len() >= NLA_HDRLEN {
        let attribute_len = read_u16(attributes, 0) as usize;
        if attribute_len < NLA_HDRLEN || attribute_len > attributes.len() {
            return Err(malformed(&format!(
                "nla_len {attribute_len} is outside 4..={}",
                attributes.len()
            )));
        }
        let attribute_type = read_u16(attributes, 2) & NLA_TYPE_MASK;
        let value = &attributes[NLA_HDRLEN..attribute_len];

        if attribute_type == NETNSA_NSID {
            if value.len() != 4 {
                return Err(malformed(&format!("NETNSA_NSID has {} bytes, expected 4", value.len())));
            }
            let id = read_u32(value, 0) as i32;
            return Ok((id != NETNSA_NSID_NOT_ASSIGNED).then_some(id));
        }

        // NLA_ALIGN: attributes start on 4-byte boundaries.
        let aligned_len = (attribute_len + 3) & !3;
        attributes = attributes.get(aligned_len..).unwrap_or(&[]);
    }
    Err(malformed("RTM_NEWNSID reply has no NETNSA_NSID attribute"))
}

fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_ne_bytes([bytes[offset], bytes[offset + 1]])
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_ne_bytes(word)
}

fn malformed(detail: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed RTM_GETNSID reply: {detail}"),
    )
}

/// Prefixes `error` with `context`, keeping its kind so callers can still match on it.
fn with_context(error: io::Error, context: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

/// Looks up the netns id of every network namespace that has an open fd.
pub fn scan(found: &mut super::Found) {
    use std::os::fd::AsFd;

    use crate::model::NsType;

    let mut query = match NetnsIdQuery::new() {
        Ok(query) => query,
        Err(err) => return found.note(format!("netns ids: not read: {err}")),
    };
    let mut failed = 0usize;
    for (key, entry) in found.namespaces.iter_mut().filter(|(k, _)| k.ty == NsType::Net) {
        let Some(fd) = entry.fd.as_ref() else { continue };
        match query.id_of(fd.as_fd()) {
            Ok(id) => entry.netnsid = id,
            Err(err) => {
                failed += 1;
                log::debug!("RTM_GETNSID for {key} failed: {err}");
            }
        }
    }
    if failed > 0 {
        found.note(format!("netns ids: {failed} lookups failed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A network namespace made with `ip netns add`, deleted on drop, also
    /// when the test panics.
    struct TestNetns {
        name: String,
    }

    impl TestNetns {
        fn create() -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            assert!(
                rustix::process::geteuid().is_root(),
                "these tests create network namespaces with `ip netns add`, so run them as root"
            );
            let name = format!(
                "netnsid-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            run_ip(&["netns", "add", &name]).expect("ip netns add failed");
            Self { name }
        }

        fn open(&self) -> File {
            let path = format!("/run/netns/{}", self.name);
            File::open(&path).unwrap_or_else(|error| panic!("failed to open {path}: {error}"))
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            if let Err(error) = run_ip(&["netns", "del", &self.name]) {
                eprintln!("cleanup: {error}");
            }
        }
    }

    fn run_ip(arguments: &[&str]) -> Result<String, String> {
        let output = Command::new("ip")
            .args(arguments)
            .output()
            .map_err(|error| format!("failed to run ip {arguments:?}: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "ip {arguments:?} failed with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Parses the ids and names from `ip netns list-id` lines such as
    /// `nsid 0 (iproute2 netns name: foo)`.
    fn listed_ids() -> Vec<(i32, String)> {
        let output = run_ip(&["netns", "list-id"]).expect("ip netns list-id failed");
        output
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("nsid ")?;
                let (id, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = tail
                    .strip_prefix("(iproute2 netns name: ")
                    .and_then(|name| name.strip_suffix(')'))
                    .unwrap_or("");
                Some((id.parse().ok()?, name.to_string()))
            })
            .collect()
    }

    /// Assigns a fixed id that `ip netns list-id` does not show. Other work on
    /// this machine may take the same id first, so a rejected id moves on to
    /// the next one.
    fn assign_free_id(netns: &TestNetns) -> i32 {
        let used_ids: BTreeSet<i32> = listed_ids().into_iter().map(|(id, _)| id).collect();
        let mut errors = Vec::new();
        for candidate in (100..).filter(|id| !used_ids.contains(id)).take(20) {
            match run_ip(&["netns", "set", &netns.name, &candidate.to_string()]) {
                Ok(_) => return candidate,
                Err(error) => errors.push(error),
            }
        }
        panic!("could not assign any free nsid: {errors:?}");
    }

    #[test]
    fn request_encoding() {
        let request = encode_getnsid_request(0x0102_0304, 7);

        assert_eq!(request.len(), 28);
        assert_eq!(read_u32(&request, 0), 28, "nlmsg_len");
        assert_eq!(read_u16(&request, 4), RTM_GETNSID, "nlmsg_type");
        assert_eq!(read_u16(&request, 6), NLM_F_REQUEST, "nlmsg_flags");
        assert_eq!(read_u32(&request, 8), 0x0102_0304, "nlmsg_seq");
        assert_eq!(read_u32(&request, 12), 0, "nlmsg_pid");
        assert_eq!(&request[16..20], &[0, 0, 0, 0], "rtgenmsg and padding");
        assert_eq!(read_u16(&request, 20), 8, "nla_len");
        assert_eq!(read_u16(&request, 22), NETNSA_FD, "nla_type");
        assert_eq!(read_u32(&request, 24), 7, "fd");
    }

    fn newnsid_reply(sequence: u32, id: i32) -> Vec<u8> {
        let mut reply = Vec::new();
        reply.extend_from_slice(&28u32.to_ne_bytes());
        reply.extend_from_slice(&RTM_NEWNSID.to_ne_bytes());
        reply.extend_from_slice(&0u16.to_ne_bytes());
        reply.extend_from_slice(&sequence.to_ne_bytes());
        reply.extend_from_slice(&0u32.to_ne_bytes());
        reply.extend_from_slice(&[0, 0, 0, 0]);
        reply.extend_from_slice(&8u16.to_ne_bytes());
        reply.extend_from_slice(&NETNSA_NSID.to_ne_bytes());
        reply.extend_from_slice(&id.to_ne_bytes());
        reply
    }

    fn error_reply(sequence: u32, error: i32) -> Vec<u8> {
        let mut reply = Vec::new();
        reply.extend_from_slice(&20u32.to_ne_bytes());
        reply.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        reply.extend_from_slice(&0u16.to_ne_bytes());
        reply.extend_from_slice(&sequence.to_ne_bytes());
        reply.extend_from_slice(&0u32.to_ne_bytes());
        reply.extend_from_slice(&error.to_ne_bytes());
        reply
    }

    #[test]
    fn reply_parsing_cases() {
        assert_eq!(parse_reply(&newnsid_reply(5, 3), 5).unwrap(), Reply::Nsid(Some(3)));
        assert_eq!(parse_reply(&newnsid_reply(5, 0), 5).unwrap(), Reply::Nsid(Some(0)));
        assert_eq!(
            parse_reply(&newnsid_reply(5, NETNSA_NSID_NOT_ASSIGNED), 5).unwrap(),
            Reply::Nsid(None)
        );
        assert_eq!(parse_reply(&newnsid_reply(4, 3), 5).unwrap(), Reply::Pending);
        assert_eq!(
            parse_reply(&error_reply(5, -libc::EBADF), 5).unwrap(),
            Reply::Errno(libc::EBADF)
        );

        // A stale reply followed by the current one in the same datagram.
        let mut both = newnsid_reply(4, 1);
        both.extend_from_slice(&newnsid_reply(5, 2));
        assert_eq!(parse_reply(&both, 5).unwrap(), Reply::Nsid(Some(2)));
    }

    #[test]
    fn reply_parsing_rejects_malformed() {
        let mut too_long = newnsid_reply(5, 3);
        too_long[0] = 200;
        assert_eq!(
            parse_reply(&too_long, 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );

        let mut no_attribute = newnsid_reply(5, 3);
        no_attribute.truncate(20);
        no_attribute[0..4].copy_from_slice(&20u32.to_ne_bytes());
        assert_eq!(
            parse_reply(&no_attribute, 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );

        let acknowledgement = error_reply(5, 0);
        assert_eq!(
            parse_reply(&acknowledgement, 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn fixed_id_is_returned() {
        let netns = TestNetns::create();
        let id = assign_free_id(&netns);
        let file = netns.open();

        let mut query = NetnsIdQuery::new().unwrap();
        assert_eq!(query.id_of(file.as_fd()).unwrap(), Some(id));
    }

    #[test]
    fn auto_id_matches_ip_list_id() {
        let netns = TestNetns::create();
        run_ip(&["netns", "set", &netns.name, "auto"]).unwrap();
        let listed: Vec<i32> = listed_ids()
            .into_iter()
            .filter(|(_, name)| *name == netns.name)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(listed.len(), 1, "ip netns list-id entries for {}", netns.name);
        let file = netns.open();

        let mut query = NetnsIdQuery::new().unwrap();
        assert_eq!(query.id_of(file.as_fd()).unwrap(), Some(listed[0]));
    }

    #[test]
    fn unassigned_netns_is_none() {
        let netns = TestNetns::create();
        let file = netns.open();

        let mut query = NetnsIdQuery::new().unwrap();
        assert_eq!(query.id_of(file.as_fd()).unwrap(), None);
    }

    #[test]
    fn socket_serves_many_queries() {
        let with_id = TestNetns::create();
        let id = assign_free_id(&with_id);
        let without_id = TestNetns::create();
        let with_id_file = with_id.open();
        let without_id_file = without_id.open();

        let mut query = NetnsIdQuery::new().unwrap();
        for round in 0..50 {
            assert_eq!(query.id_of(with_id_file.as_fd()).unwrap(), Some(id), "round {round}");
            assert_eq!(query.id_of(without_id_file.as_fd()).unwrap(), None, "round {round}");
        }
    }

    #[test]
    fn id_relative_to_socket_netns() {
        let viewer = TestNetns::create();
        let peer = TestNetns::create();
        run_ip(&["-n", &viewer.name, "netns", "set", &peer.name, "5"]).unwrap();
        let viewer_file = viewer.open();
        let peer_file = peer.open();

        // A thread that moves into `viewer` creates the socket there. The
        // test thread stays in its own network namespace throughout.
        let mut from_viewer = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        viewer_file.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .expect("setns into the viewer netns failed");
                    NetnsIdQuery::new().unwrap()
                })
                .join()
                .unwrap()
        });
        let mut from_own = NetnsIdQuery::new().unwrap();

        assert_eq!(from_viewer.id_of(peer_file.as_fd()).unwrap(), Some(5));
        assert_eq!(from_own.id_of(peer_file.as_fd()).unwrap(), None);
    }

    #[test]
    fn non_netns_fd_is_invalid_input() {
        let uts = File::open("/proc/self/ns/uts").unwrap();

        let mut query = NetnsIdQuery::new().unwrap();
        let error = query.id_of(uts.as_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

        // The socket stays usable after an error reply.
        let netns = TestNetns::create();
        let file = netns.open();
        assert_eq!(query.id_of(file.as_fd()).unwrap(), None);
    }
}
