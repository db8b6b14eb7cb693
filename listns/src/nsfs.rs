//! The kernel's namespace interfaces: nsfs ioctls, pidfd namespace ioctls,
//! and the ioctls that return the network namespace of a socket or tun fd.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::model::{NsKey, NsType};

// ioctl numbers from <linux/nsfs.h>, <linux/pidfd.h>, <linux/sockios.h> and
// <linux/if_tun.h>. `_IO(0xb7, n)` is `0xb700 | n`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_PARENT: libc::c_ulong = 0xb702;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
/// `_IOR(0xb7, 13, __u64)`, Linux 6.18+.
const NS_GET_ID: libc::c_ulong = 0x8008_b70d;
/// `_IO(0xFF, 6)`: `PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE`, Linux 6.11+.
const PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE: libc::c_ulong = 0xff06;
const SIOCGSKNS: libc::c_ulong = 0x894c;
/// `_IO('T', 227)`, Linux 5.0+.
const TUNGETDEVNETNS: libc::c_ulong = 0x54e3;

/// Runs an ioctl that returns a new file descriptor.
fn ioctl_fd(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<OwnedFd> {
    // SAFETY: these requests take no argument and return a new fd or -1.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Returns the 64-bit namespace id (`NS_GET_ID`). Unlike inode numbers it is
/// never reused while the system runs. Older kernels give ENOTTY.
pub fn namespace_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut id: u64 = 0;
    // SAFETY: NS_GET_ID writes one u64 through the pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_ID, &mut id as *mut u64) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// Opens the user namespace that owns the namespace (`NS_GET_USERNS`).
/// EPERM means the owner is outside the caller's user namespace.
pub fn owner_userns(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(fd, NS_GET_USERNS)
}

/// Opens the parent of a pid or user namespace (`NS_GET_PARENT`).
/// EPERM means there is no parent the caller may see; EINVAL means the type
/// has no hierarchy.
pub fn parent(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(fd, NS_GET_PARENT)
}

/// Returns the type of an nsfs file (`NS_GET_NSTYPE`).
pub fn namespace_type(fd: BorrowedFd<'_>) -> io::Result<NsType> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns a CLONE_NEW* flag.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    NsType::from_clone_flag(ret as u32).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown namespace type flag {ret:#x}"),
        )
    })
}

/// Returns the UID of the creator of a user namespace (`NS_GET_OWNER_UID`).
pub fn owner_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_OWNER_UID, &mut uid as *mut libc::uid_t) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// Opens the pid namespace that a process's next child will be in, including
/// one created by `unshare(CLONE_NEWPID)` that has no process yet, for which
/// the `pid_for_children` link gives ENOENT.
pub fn pid_for_children(pidfd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(pidfd, PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE)
}

/// Opens the network namespace of a socket (`SIOCGSKNS`). Needs
/// CAP_NET_ADMIN in the user namespace that owns that network namespace.
pub fn socket_netns(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(socket, SIOCGSKNS)
}

/// Opens the network namespace of the device behind a tun/tap fd.
pub fn tun_netns(tun: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(tun, TUNGETDEVNETNS)
}

/// `PIDFD_THREAD` (the value of `O_EXCL`), Linux 6.9+: a pidfd for one thread.
const PIDFD_THREAD: libc::c_long = libc::O_EXCL as libc::c_long;

/// Opens a pidfd for a process, or for one thread when `thread` is set.
pub fn pidfd_open(pid: i32, thread: bool) -> io::Result<OwnedFd> {
    let flags = if thread { PIDFD_THREAD } else { 0 };
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// Duplicates fd `fd` of the process behind `pidfd` into this process.
/// Needs ptrace access to that process.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a target fd and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// Device number of the nsfs pseudo file system, read from one of our own
/// namespace links. Files on this device are namespaces, whatever their path.
pub fn nsfs_device() -> io::Result<u64> {
    Ok(rustix::fs::stat("/proc/self/ns/net")?.st_dev)
}

/// Returns the type and inode of an open nsfs file.
pub fn key_of(fd: BorrowedFd<'_>, ty: Option<NsType>) -> io::Result<NsKey> {
    let inode = rustix::fs::fstat(fd)?.st_ino;
    let ty = match ty {
        Some(ty) => ty,
        None => namespace_type(fd)?,
    };
    Ok(NsKey { ty, inode })
}

/// Parses nsfs link text such as `net:[4026531833]`.
pub fn parse_link(text: &[u8]) -> Option<NsKey> {
    let text = std::str::from_utf8(text).ok()?;
    let (name, rest) = text.split_once(":[")?;
    let inode = rest.strip_suffix(']')?.parse().ok()?;
    Some(NsKey {
        ty: NsType::from_name(name)?,
        inode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_link_accepts_nsfs_text() {
        assert_eq!(
            parse_link(b"net:[4026531833]"),
            Some(NsKey {
                ty: NsType::Net,
                inode: 4026531833
            })
        );
        assert_eq!(
            parse_link(b"time:[4026531834]"),
            Some(NsKey {
                ty: NsType::Time,
                inode: 4026531834
            })
        );
    }

    #[test]
    fn parse_link_rejects_other_text() {
        assert_eq!(parse_link(b"socket:[123]"), None);
        assert_eq!(parse_link(b"pipe:[123]"), None);
        assert_eq!(parse_link(b"/run/netns/c1"), None);
        assert_eq!(parse_link(b"net:[12x]"), None);
        assert_eq!(parse_link(b"net:[123"), None);
        assert_eq!(parse_link(b"pid_for_children:[1]"), None);
    }

    #[test]
    fn own_namespace_id_is_stable() {
        let a = rustix::fs::open(
            "/proc/self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let b = rustix::fs::open(
            "/proc/thread-self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        use std::os::fd::AsFd;
        match (namespace_id(a.as_fd()), namespace_id(b.as_fd())) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(e), _) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "NS_GET_ID failed: {e}"),
            (Ok(_), Err(e)) => panic!("second NS_GET_ID failed: {e}"),
        }
        assert_eq!(namespace_type(a.as_fd()).unwrap(), NsType::Net);
        assert_eq!(
            key_of(a.as_fd(), None).unwrap(),
            key_of(b.as_fd(), Some(NsType::Net)).unwrap()
        );
    }
}
