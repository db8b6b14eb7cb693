//! Finds nsfs bind mounts: namespaces pinned by bind-mounting a
//! `/proc/PID/ns/TYPE` file somewhere, as `ip netns add` and
//! `unshare --net=FILE` do.
//!
//! There are three sources:
//! - [`read_nsfs_mounts`] parses `/proc/PID/mountinfo`, so it only reaches
//!   mount namespaces that some process is in.
//! - [`listmount_nsfs`] queries the kernel by mount namespace id with
//!   listmount(2) and statmount(2), so it also reaches mount namespaces that
//!   no process is in. [`all_mount_namespaces`] supplies those ids.
//! - [`nsfs_mounts_by_entering`] is the fallback for kernels without
//!   listmount: a forked child enters the mount namespace and reads its own
//!   mountinfo.
//!
//! All three fill [`NsfsMount`] the same way, so their results can be
//! compared. On Linux 6.18 statmount's `mnt_root` of an nsfs mount is the
//! same `TYPE:[INODE]` string as mountinfo's root field (for example
//! `net:[4026532174]`), so no mount point has to be opened to learn the
//! namespace inode.

use std::ffi::{CStr, c_long, c_ulong, c_void};
use std::fs::File;
use std::io::{self, Read};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, opcode};
use rustix::process::{Pid, WaitOptions, WaitStatus};
use rustix::thread::LinkNameSpaceType;

/// One nsfs mount: a namespace pinned by a bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsfsMount {
    /// Mount id as in field 1 of mountinfo. [`listmount_nsfs`] takes it from
    /// statmount's `mnt_id_old`, not from the 64-bit unique `mnt_id`, so that
    /// every source reports the same id for one mount.
    pub mount_id: u64,
    /// Mount point as raw bytes, with mountinfo's octal escapes such as
    /// `\040` decoded.
    pub mount_point: Vec<u8>,
    /// Namespace type: the part of the mount root before `:[`, such as `net`,
    /// `mnt`, `pid`, `user`, `uts`, `ipc`, `cgroup` or `time`.
    pub ns_type: String,
    /// Inode number of the namespace: the number inside `[...]` of the mount
    /// root.
    pub ns_inode: u64,
}

// ---------------------------------------------------------------------------
// mountinfo

const NSFS_FS_TYPE: &[u8] = b"nsfs";

/// Parses mountinfo text (the format of `/proc/PID/mountinfo`) and returns
/// the nsfs mounts and the number of malformed lines.
///
/// Lines of other file systems are skipped. Malformed lines are skipped and
/// counted. A line is malformed when it lacks the six fixed fields, the `-`
/// separator or the three fields after it. It is also malformed when its
/// mount id or parent id is not a decimal number, when its device field has
/// no colon, or when it is an nsfs line whose root is not `TYPE:[INODE]`.
/// Empty lines are ignored.
#[must_use]
pub fn parse_mountinfo_nsfs(text: &[u8]) -> (Vec<NsfsMount>, usize /*malformed lines*/) {
    let mut mounts = Vec::new();
    let mut malformed = 0;

    for (index, line) in text.split(|&byte| byte == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match parse_mountinfo_line(line) {
            Ok(Some(mount)) => mounts.push(mount),
            Ok(None) => {}
            Err(reason) => {
                malformed += 1;
                log::debug!(
                    "skipping malformed mountinfo line {}: {reason}: {:?}",
                    index + 1,
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    (mounts, malformed)
}

/// Parses one mountinfo line. Returns `Ok(None)` for a well-formed line of
/// another file system type, and the reason on a malformed line.
///
/// Format (proc(5)): `ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS
/// [OPTIONAL...] - FS_TYPE SOURCE SUPER_OPTIONS`, with space, tab, newline
/// and backslash octal-escaped inside fields.
fn parse_mountinfo_line(line: &[u8]) -> Result<Option<NsfsMount>, &'static str> {
    // Split on single spaces, not runs of them, because an empty source
    // field shows up as two spaces in a row.
    let fields: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
    if fields.len() < 10 {
        return Err("fewer than 10 fields");
    }

    // Optional fields such as `shared:5 master:1` sit between the six fixed
    // fields and the `-`, and are never `-` themselves.
    let separator = fields[6..]
        .iter()
        .position(|field| *field == b"-")
        .map(|index| index + 6)
        .ok_or("no '-' separator after the optional fields")?;
    if fields.len() - separator - 1 < 3 {
        return Err("fewer than 3 fields after the '-' separator");
    }

    let mount_id = parse_decimal(fields[0]).ok_or("mount id is not a decimal number")?;
    parse_decimal(fields[1]).ok_or("parent id is not a decimal number")?;
    if !fields[2].contains(&b':') {
        return Err("device field is not MAJOR:MINOR");
    }

    if fields[separator + 1] != NSFS_FS_TYPE {
        return Ok(None);
    }

    let root = unescape_octal(fields[3]);
    let (ns_type, ns_inode) = parse_nsfs_root(&root).ok_or("nsfs root is not TYPE:[INODE]")?;
    Ok(Some(NsfsMount {
        mount_id,
        mount_point: unescape_octal(fields[4]),
        ns_type,
        ns_inode,
    }))
}

fn parse_decimal(field: &[u8]) -> Option<u64> {
    // u64::from_str also accepts a leading '+', which mountinfo never writes.
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Splits an nsfs mount root such as `net:[4026532174]` into type and inode.
fn parse_nsfs_root(root: &[u8]) -> Option<(String, u64)> {
    let bracket = root.windows(2).position(|pair| pair == b":[")?;
    let ns_type = &root[..bracket];
    let inode = root[bracket + 2..].strip_suffix(b"]")?;

    let type_is_valid = !ns_type.is_empty()
        && ns_type
            .iter()
            .all(|&byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if !type_is_valid {
        return None;
    }

    let ns_type = String::from_utf8(ns_type.to_vec()).ok()?;
    Some((ns_type, parse_decimal(inode)?))
}

/// Decodes the `\NNN` octal escapes that the kernel writes for space, tab,
/// newline and backslash in mountinfo fields. A backslash that does not start
/// a three-digit escape of at most `\377` is kept as it is.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(field.len());
    let mut index = 0;

    while index < field.len() {
        let escaped = match field[index] {
            b'\\' => field.get(index + 1..index + 4).and_then(octal_byte),
            _ => None,
        };
        if let Some(value) = escaped {
            decoded.push(value);
            index += 4;
            continue;
        }
        decoded.push(field[index]);
        index += 1;
    }

    decoded
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut value: u32 = 0;
    for &digit in digits {
        if !(b'0'..=b'7').contains(&digit) {
            return None;
        }
        value = value * 8 + u32::from(digit - b'0');
    }
    u8::try_from(value).ok()
}

/// Reads `/proc/<pid>/mountinfo` and returns its nsfs mounts. `pid` may be
/// any task id, a thread's included.
///
/// The mount points are relative to that task's root directory, and mounts
/// outside its root are missing, as in mountinfo itself. Malformed lines are
/// skipped with a warning.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] for a `pid` below 1. Otherwise the error of
/// reading the file, with its path, such as [`io::ErrorKind::NotFound`] once
/// the task has exited.
pub fn read_nsfs_mounts(pid: i32) -> io::Result<Vec<NsfsMount>> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid task id {pid}: expected a positive PID or TID"),
        ));
    }

    let path = format!("/proc/{pid}/mountinfo");
    let text = std::fs::read(&path).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("failed to read {path}: {error} (the task may have exited)"),
        )
    })?;

    let (mounts, malformed) = parse_mountinfo_nsfs(&text);
    if malformed > 0 {
        log::warn!("skipped {malformed} malformed lines in {path}");
    }
    Ok(mounts)
}

// ---------------------------------------------------------------------------
// Mount namespace ioctls (include/uapi/linux/nsfs.h)

const NSIO: u8 = 0xb7;
const NS_GET_NSTYPE: Opcode = opcode::none(NSIO, 0x3);
const NS_MNT_GET_INFO: Opcode = opcode::read::<MntNsInfo>(NSIO, 10);
const NS_MNT_GET_NEXT: Opcode = opcode::read::<MntNsInfo>(NSIO, 11);
const NS_MNT_GET_PREV: Opcode = opcode::read::<MntNsInfo>(NSIO, 12);

/// `struct mnt_ns_info` from include/uapi/linux/nsfs.h.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct MntNsInfo {
    size: u32,
    nr_mounts: u32,
    mnt_ns_id: u64,
}

/// `MNT_NS_INFO_SIZE_VER0`: the size of the first published struct.
const MNT_NS_INFO_SIZE_VER0: u32 = 16;
const _: () = assert!(size_of::<MntNsInfo>() == MNT_NS_INFO_SIZE_VER0 as usize);

/// An `NS_MNT_GET_*` ioctl. Its output is the ioctl's return value (a new
/// file descriptor for NEXT and PREV) and the filled `struct mnt_ns_info`.
struct MntNsInfoIoctl {
    opcode: Opcode,
    info: MntNsInfo,
}

// SAFETY: the opcodes are `_IOR(NSIO, 10..=12, struct mnt_ns_info)`, so the
// kernel writes at most size_of::<MntNsInfo>() bytes to the pointer, which
// points at `self.info`.
unsafe impl Ioctl for MntNsInfoIoctl {
    type Output = (IoctlOutput, MntNsInfo);
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode
    }

    fn as_ptr(&mut self) -> *mut c_void {
        (&raw mut self.info).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, extract_output: *mut c_void) -> rustix::io::Result<Self::Output> {
        // SAFETY: `extract_output` is `as_ptr()` of the still-live ioctl
        // value, so it points at an initialized MntNsInfo.
        let info = unsafe { extract_output.cast::<MntNsInfo>().read() };
        Ok((out, info))
    }
}

/// `NS_GET_NSTYPE`, whose return value is the `CLONE_NEW*` type.
struct NsTypeIoctl;

// SAFETY: NS_GET_NSTYPE takes no argument and writes no user memory.
unsafe impl Ioctl for NsTypeIoctl {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        NS_GET_NSTYPE
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _extract_output: *mut c_void) -> rustix::io::Result<Self::Output> {
        Ok(out)
    }
}

fn mnt_ns_ioctl(fd: BorrowedFd<'_>, opcode: Opcode) -> Result<(IoctlOutput, MntNsInfo), Errno> {
    let request = MntNsInfoIoctl {
        opcode,
        info: MntNsInfo {
            size: MNT_NS_INFO_SIZE_VER0,
            ..MntNsInfo::default()
        },
    };
    // SAFETY: see the `Ioctl` impl. An fd that is not a mount namespace gets
    // EINVAL or ENOTTY, not a write.
    unsafe { rustix::ioctl::ioctl(fd, request) }
}

/// Checks with `NS_GET_NSTYPE` (Linux 4.11+) that `fd` is a mount namespace,
/// so that a later EINVAL or ENOTTY can only mean a missing ioctl.
fn require_mount_namespace(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw_fd = fd.as_raw_fd();
    // SAFETY: see the `Ioctl` impl for NsTypeIoctl.
    let ns_type = unsafe { rustix::ioctl::ioctl(fd, NsTypeIoctl) }.map_err(|errno| {
        if errno == Errno::NOTTY {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {raw_fd} is not a namespace file: open /proc/PID/ns/mnt instead"),
            )
        } else {
            io::Error::new(
                io::Error::from(errno).kind(),
                format!("NS_GET_NSTYPE failed on fd {raw_fd}: {errno}"),
            )
        }
    })?;

    if ns_type != libc::CLONE_NEWNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fd {raw_fd} is a namespace of type {ns_type:#x}, not a mount namespace \
                 (CLONE_NEWNS): open /proc/PID/ns/mnt instead"
            ),
        ));
    }
    Ok(())
}

/// Maps an error of an `NS_MNT_GET_*` ioctl on a known mount namespace fd.
fn mnt_ns_ioctl_error(errno: Errno, name: &str, fd: BorrowedFd<'_>) -> io::Error {
    let raw_fd = fd.as_raw_fd();
    if errno == Errno::NOTTY || errno == Errno::INVAL {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{name} on mount namespace fd {raw_fd} failed with {errno}: this kernel lacks \
                 the mount namespace ioctls, so fall back to /proc/PID/ns/mnt of each process"
            ),
        )
    } else {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!("{name} failed on mount namespace fd {raw_fd}: {errno}"),
        )
    }
}

/// Lists every mount namespace the caller may see by walking the kernel's
/// list with the `NS_MNT_GET_PREV` and `NS_MNT_GET_NEXT` ioctls
/// (`_IOR(0xb7, 12 and 11, struct mnt_ns_info)`) from `start`, an fd of a
/// mount namespace such as `/proc/self/ns/mnt`.
///
/// Returns `(fd, mnt_ns_id)` pairs, `start` included, in ascending
/// `mnt_ns_id` order, which is the order of the kernel's list.
///
/// A walk stops at the first neighbour over whose owning user namespace the
/// caller lacks `CAP_SYS_ADMIN`, because the kernel then returns EPERM and no
/// fd to go on from (seen on Linux 6.18 as an unprivileged user). The result
/// is then incomplete, and a warning is logged. Every namespace costs one open
/// fd, so `RLIMIT_NOFILE` bounds how many can be listed.
///
/// # Errors
///
/// [`io::ErrorKind::Unsupported`] where the kernel lacks the ioctls (ENOTTY or
/// EINVAL), so the caller can fall back to the `/proc/PID/ns/mnt` files of
/// processes. [`io::ErrorKind::InvalidInput`] if `start` is not a mount
/// namespace.
pub fn all_mount_namespaces(start: BorrowedFd<'_>) -> io::Result<Vec<(OwnedFd, u64)>> {
    require_mount_namespace(start)?;
    let (_, info) =
        mnt_ns_ioctl(start, NS_MNT_GET_INFO).map_err(|errno| mnt_ns_ioctl_error(errno, "NS_MNT_GET_INFO", start))?;
    let start_id = info.mnt_ns_id;

    let mut namespaces = walk_mount_namespaces(start, start_id, WalkDirection::Previous)?;
    namespaces.reverse();
    namespaces.push((start.try_clone_to_owned()?, start_id));
    namespaces.extend(walk_mount_namespaces(start, start_id, WalkDirection::Next)?);
    Ok(namespaces)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WalkDirection {
    Previous,
    Next,
}

impl WalkDirection {
    fn opcode(self) -> Opcode {
        match self {
            Self::Previous => NS_MNT_GET_PREV,
            Self::Next => NS_MNT_GET_NEXT,
        }
    }

    fn ioctl_name(self) -> &'static str {
        match self {
            Self::Previous => "NS_MNT_GET_PREV",
            Self::Next => "NS_MNT_GET_NEXT",
        }
    }
}

/// Follows `NS_MNT_GET_PREV` or `NS_MNT_GET_NEXT` from `start` to the end of the
/// list. Returns the namespaces in the order visited, without `start`.
fn walk_mount_namespaces(
    start: BorrowedFd<'_>,
    start_id: u64,
    direction: WalkDirection,
) -> io::Result<Vec<(OwnedFd, u64)>> {
    let mut found: Vec<(OwnedFd, u64)> = Vec::new();

    loop {
        let (current, current_id) = match found.last() {
            Some((fd, id)) => (fd.as_fd(), *id),
            None => (start, start_id),
        };

        match mnt_ns_ioctl(current, direction.opcode()) {
            Ok((raw_fd, info)) => {
                // SAFETY: on success NS_MNT_GET_NEXT and NS_MNT_GET_PREV
                // return a new file descriptor that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
                let in_order = match direction {
                    WalkDirection::Previous => info.mnt_ns_id < current_id,
                    WalkDirection::Next => info.mnt_ns_id > current_id,
                };
                // Ids only grow along the kernel's list, so this also keeps a
                // misbehaving kernel from sending the walk around in a loop.
                if !in_order {
                    return Err(io::Error::other(format!(
                        "{} from mount namespace {current_id} returned {}, out of order",
                        direction.ioctl_name(),
                        info.mnt_ns_id
                    )));
                }
                found.push((fd, info.mnt_ns_id));
            }
            Err(Errno::NOENT) => break,
            Err(Errno::PERM) => {
                // Expected without root; surprising with it.
                let level = if rustix::process::geteuid().is_root() {
                    log::Level::Warn
                } else {
                    log::Level::Info
                };
                log::log!(
                    level,
                    "mount namespace list is incomplete: {} from mount namespace {current_id} \
                     failed with EPERM, because the caller lacks CAP_SYS_ADMIN over the \
                     neighbour's owning user namespace",
                    direction.ioctl_name()
                );
                break;
            }
            Err(errno) => return Err(mnt_ns_ioctl_error(errno, direction.ioctl_name(), current)),
        }
    }

    Ok(found)
}

/// Returns the 64-bit id of a mount namespace, from the `NS_MNT_GET_INFO`
/// ioctl (`_IOR(0xb7, 10, struct mnt_ns_info)`).
///
/// # Errors
///
/// [`io::ErrorKind::Unsupported`] where the kernel lacks the ioctl, and
/// [`io::ErrorKind::InvalidInput`] if `fd` is not a mount namespace.
pub fn mount_namespace_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    require_mount_namespace(fd)?;
    let (_, info) =
        mnt_ns_ioctl(fd, NS_MNT_GET_INFO).map_err(|errno| mnt_ns_ioctl_error(errno, "NS_MNT_GET_INFO", fd))?;
    Ok(info.mnt_ns_id)
}

// ---------------------------------------------------------------------------
// listmount(2) and statmount(2) (include/uapi/linux/mount.h)

// Both numbers are the same on every architecture that uses the common
// system call table (x86_64, aarch64, riscv64 and others). Only alpha and
// mips number them differently.
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips32r6",
    target_arch = "mips64",
    target_arch = "mips64r6"
))]
compile_error!("statmount(2) and listmount(2) have other syscall numbers on mips");
const SYS_STATMOUNT: c_long = 457;
const SYS_LISTMOUNT: c_long = 458;

/// `struct mnt_id_req` with the `mnt_ns_id` field (`MNT_ID_REQ_SIZE_VER1`).
#[repr(C)]
struct MntIdReq {
    size: u32,
    /// Must be zero on Linux 6.18.
    spare: u32,
    mnt_id: u64,
    /// statmount: the request mask. listmount: the last mount id already
    /// listed, or 0.
    param: u64,
    mnt_ns_id: u64,
}

const MNT_ID_REQ_SIZE_VER1: u32 = 32;
const _: () = assert!(size_of::<MntIdReq>() == MNT_ID_REQ_SIZE_VER1 as usize);

/// `struct statmount` from include/uapi/linux/mount.h, with every field up to
/// `mnt_gidmap`. The fields read here (through `mnt_point`) have the same offsets in the
/// Linux 6.8 header, where statmount(2) first appeared. The struct is always
/// 512 bytes, and the strings follow it.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)] // Some fields only document the layout.
struct Statmount {
    size: u32,
    mnt_opts: u32,
    mask: u64,
    sb_dev_major: u32,
    sb_dev_minor: u32,
    sb_magic: u64,
    sb_flags: u32,
    fs_type: u32,
    mnt_id: u64,
    mnt_parent_id: u64,
    mnt_id_old: u32,
    mnt_parent_id_old: u32,
    mnt_attr: u64,
    mnt_propagation: u64,
    mnt_peer_group: u64,
    mnt_master: u64,
    propagate_from: u64,
    mnt_root: u32,
    mnt_point: u32,
    mnt_ns_id: u64,
    fs_subtype: u32,
    sb_source: u32,
    opt_num: u32,
    opt_array: u32,
    opt_sec_num: u32,
    opt_sec_array: u32,
    supported_mask: u64,
    mnt_uidmap_num: u32,
    mnt_uidmap: u32,
    mnt_gidmap_num: u32,
    mnt_gidmap: u32,
    spare: [u64; 43],
    // `char str[]` follows: the strings, addressed by offsets from here.
}

const _: () = {
    assert!(size_of::<Statmount>() == 512);
    assert!(offset_of!(Statmount, mask) == 8);
    assert!(offset_of!(Statmount, sb_magic) == 24);
    assert!(offset_of!(Statmount, mnt_id) == 40);
    assert!(offset_of!(Statmount, mnt_id_old) == 56);
    assert!(offset_of!(Statmount, mnt_root) == 104);
    assert!(offset_of!(Statmount, mnt_point) == 108);
    assert!(offset_of!(Statmount, mnt_ns_id) == 112);
    assert!(offset_of!(Statmount, mnt_gidmap) == 164);
};

const STATMOUNT_SB_BASIC: u64 = 0x0000_0001;
const STATMOUNT_MNT_BASIC: u64 = 0x0000_0002;
const STATMOUNT_MNT_ROOT: u64 = 0x0000_0008;
const STATMOUNT_MNT_POINT: u64 = 0x0000_0010;
const LSMT_ROOT: u64 = u64::MAX;
/// `NSFS_MAGIC` from include/uapi/linux/magic.h.
const NSFS_MAGIC: u64 = 0x6e73_6673;

const LISTMOUNT_BATCH: usize = 512;
const STATMOUNT_INITIAL_BUFFER: usize = 8 * 1024;
/// Two `PATH_MAX` strings fit many times over. The cap only stops the retry
/// loop if a kernel keeps returning EOVERFLOW.
const STATMOUNT_MAX_BUFFER: usize = 1024 * 1024;

/// Lists the nsfs mounts of the mount namespace with this 64-bit id, using
/// listmount(2) from `LSMT_ROOT` and statmount(2), both with
/// `mnt_id_req.mnt_ns_id`.
///
/// Needs `CAP_SYS_ADMIN` in the namespace's owning user namespace, unless it
/// is the caller's own mount namespace. Mounts that go away between listmount
/// and statmount are skipped. `mount_point` is the path from the root of that
/// namespace (checked on Linux 6.18 for a namespace the caller is not in),
/// with no escapes.
///
/// # Errors
///
/// [`io::ErrorKind::Unsupported`] where the caller should fall back to
/// [`nsfs_mounts_by_entering`]: on ENOSYS (no listmount, which Linux 6.8
/// added) and on EINVAL or E2BIG (a kernel that predates the `mnt_ns_id`
/// field). [`io::ErrorKind::NotFound`] for an unknown id, and also for a
/// namespace over which the caller lacks `CAP_SYS_ADMIN`, because Linux 6.18
/// returns ENOENT, not EPERM, for it.
pub fn listmount_nsfs(mnt_ns_id: u64) -> io::Result<Vec<NsfsMount>> {
    let mount_ids = list_mount_ids(mnt_ns_id)?;
    let mut buffer = vec![0u8; STATMOUNT_INITIAL_BUFFER];
    let mut mounts = Vec::new();

    for unique_id in mount_ids {
        match statmount_nsfs(unique_id, mnt_ns_id, &mut buffer) {
            Ok(Some(mount)) => mounts.push(mount),
            Ok(None) => {}
            Err(StatmountError::Gone) => {
                log::debug!("mount {unique_id} in mount namespace {mnt_ns_id} went away, skipping it");
            }
            Err(StatmountError::Failed(error)) => return Err(error),
        }
    }

    Ok(mounts)
}

/// Returns the unique 64-bit ids of all mounts in the namespace, in batches
/// of `LISTMOUNT_BATCH`.
fn list_mount_ids(mnt_ns_id: u64) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let mut batch = vec![0u64; LISTMOUNT_BATCH];
    let mut last_id = 0;

    loop {
        let request = MntIdReq {
            size: MNT_ID_REQ_SIZE_VER1,
            spare: 0,
            mnt_id: LSMT_ROOT,
            param: last_id,
            mnt_ns_id,
        };
        // SAFETY: `request` is a valid mnt_id_req and `batch` has room for
        // `batch.len()` ids, which is all the kernel writes.
        let result = unsafe {
            libc::syscall(
                SYS_LISTMOUNT,
                &raw const request,
                batch.as_mut_ptr(),
                batch.len(),
                0 as c_ulong,
            )
        };
        if result < 0 {
            return Err(listmount_error(&io::Error::last_os_error(), mnt_ns_id));
        }

        let count = usize::try_from(result)
            .ok()
            .filter(|&count| count <= batch.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("listmount returned {result} ids for a buffer of {}", batch.len()),
                )
            })?;
        ids.extend_from_slice(&batch[..count]);
        if count < batch.len() {
            return Ok(ids);
        }
        last_id = batch[count - 1];
    }
}

fn listmount_error(error: &io::Error, mnt_ns_id: u64) -> io::Error {
    let errno = error.raw_os_error().unwrap_or(0);
    let (kind, hint) = match errno {
        libc::ENOSYS => (
            io::ErrorKind::Unsupported,
            "this kernel has no listmount(2), so fall back to entering the namespace",
        ),
        libc::EINVAL | libc::E2BIG => (
            io::ErrorKind::Unsupported,
            "this kernel rejects mnt_id_req.mnt_ns_id, so fall back to entering the namespace",
        ),
        libc::ENOENT => (
            io::ErrorKind::NotFound,
            "no mount namespace with this id is visible: it may have been freed, or the caller \
             lacks CAP_SYS_ADMIN in its owning user namespace",
        ),
        libc::EPERM => (
            io::ErrorKind::PermissionDenied,
            "listing another mount namespace needs CAP_SYS_ADMIN in its owning user namespace",
        ),
        _ => (error.kind(), "unexpected error"),
    };
    io::Error::new(
        kind,
        format!("listmount in mount namespace {mnt_ns_id} failed: {error}: {hint}"),
    )
}

enum StatmountError {
    /// ENOENT: the mount was unmounted after listmount listed it.
    Gone,
    Failed(io::Error),
}

/// Calls statmount(2) for one mount. Returns `Ok(None)` if it is not nsfs.
fn statmount_nsfs(unique_id: u64, mnt_ns_id: u64, buffer: &mut Vec<u8>) -> Result<Option<NsfsMount>, StatmountError> {
    let mask = STATMOUNT_SB_BASIC | STATMOUNT_MNT_BASIC | STATMOUNT_MNT_ROOT | STATMOUNT_MNT_POINT;
    let header = statmount_into(unique_id, mnt_ns_id, mask, buffer)?;
    let failed = |message: String| {
        StatmountError::Failed(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("statmount of mount {unique_id} in mount namespace {mnt_ns_id}: {message}"),
        ))
    };

    let basic = STATMOUNT_SB_BASIC | STATMOUNT_MNT_BASIC;
    if header.mask & basic != basic {
        return Err(failed(format!(
            "result mask {:#x} lacks SB_BASIC or MNT_BASIC",
            header.mask
        )));
    }
    if header.sb_magic != NSFS_MAGIC {
        return Ok(None);
    }

    let strings = STATMOUNT_MNT_ROOT | STATMOUNT_MNT_POINT;
    if header.mask & strings != strings {
        // NOTE: assumed to happen only for a mount point that cannot be
        // expressed as a path from the caller's view; not seen on 6.18.
        log::warn!(
            "skipping nsfs mount {unique_id} in mount namespace {mnt_ns_id}: statmount returned \
             no root or mount point (mask {:#x})",
            header.mask
        );
        return Ok(None);
    }

    let used = usize::try_from(header.size).unwrap_or(usize::MAX).min(buffer.len());
    let string_area = buffer.get(size_of::<Statmount>()..used).unwrap_or_default();
    let root = c_string_at(string_area, header.mnt_root)
        .ok_or_else(|| failed(format!("mnt_root offset {} is out of range", header.mnt_root)))?;
    let mount_point = c_string_at(string_area, header.mnt_point)
        .ok_or_else(|| failed(format!("mnt_point offset {} is out of range", header.mnt_point)))?;

    let (ns_type, ns_inode) = parse_nsfs_root(root).ok_or_else(|| {
        failed(format!(
            "nsfs root {:?} is not TYPE:[INODE]",
            String::from_utf8_lossy(root)
        ))
    })?;

    Ok(Some(NsfsMount {
        mount_id: u64::from(header.mnt_id_old),
        mount_point: mount_point.to_vec(),
        ns_type,
        ns_inode,
    }))
}

/// Calls statmount(2) into `buffer`, doubling it on EOVERFLOW, and returns
/// the fixed part of the result.
fn statmount_into(
    unique_id: u64,
    mnt_ns_id: u64,
    mask: u64,
    buffer: &mut Vec<u8>,
) -> Result<Statmount, StatmountError> {
    loop {
        let request = MntIdReq {
            size: MNT_ID_REQ_SIZE_VER1,
            spare: 0,
            mnt_id: unique_id,
            param: mask,
            mnt_ns_id,
        };
        // SAFETY: `request` is a valid mnt_id_req, and the kernel writes at
        // most `buffer.len()` bytes to `buffer`.
        let result = unsafe {
            libc::syscall(
                SYS_STATMOUNT,
                &raw const request,
                buffer.as_mut_ptr(),
                buffer.len(),
                0 as c_ulong,
            )
        };
        if result == 0 {
            break;
        }

        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EOVERFLOW) if buffer.len() < STATMOUNT_MAX_BUFFER => {
                buffer.resize(buffer.len() * 2, 0);
            }
            Some(libc::ENOENT) => return Err(StatmountError::Gone),
            _ => {
                return Err(StatmountError::Failed(io::Error::new(
                    error.kind(),
                    format!(
                        "statmount of mount {unique_id} in mount namespace {mnt_ns_id} with a \
                         {}-byte buffer failed: {error}",
                        buffer.len()
                    ),
                )));
            }
        }
    }

    debug_assert!(buffer.len() >= size_of::<Statmount>());
    // SAFETY: the buffer contains at least size_of::<Statmount>() bytes, and
    // Statmount has only integer fields, so every bit pattern is valid.
    Ok(unsafe { buffer.as_ptr().cast::<Statmount>().read_unaligned() })
}

/// Returns the NUL-terminated string at `offset` in statmount's string area.
fn c_string_at(string_area: &[u8], offset: u32) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let tail = string_area.get(start..)?;
    let length = tail.iter().position(|&byte| byte == 0)?;
    Some(&tail[..length])
}

// ---------------------------------------------------------------------------
// Fallback: enter the namespace in a forked child

/// Steps of the child in [`nsfs_mounts_by_entering`], as sent in its status
/// trailer.
const STEP_DONE: u8 = 0;
const STEP_SETNS: u8 = 1;
const STEP_OPEN: u8 = 2;
const STEP_READ: u8 = 3;
const STEP_WRITE: u8 = 4;
/// The trailer is a NUL byte (which mountinfo never contains), the step and
/// the errno as a little-endian i32.
const TRAILER_LENGTH: usize = 6;

/// Lists the nsfs mounts of the mount namespace `mnt_ns` by entering it: the
/// fallback for kernels without listmount(2).
///
/// A forked, single-threaded child calls `setns()` into `mnt_ns` and sends
/// `/proc/self/mountinfo` back over a pipe. The work needs a child because
/// setns into a mount namespace fails in a multithreaded process. The child
/// opens
/// `self/mountinfo` through an fd of the caller's `/proc` taken before the
/// fork, because the namespace it enters may have no `/proc`, or one of
/// another PID namespace. After setns the child's root is the namespace's
/// root, so mount points are relative to it, as with [`listmount_nsfs`].
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] if `mnt_ns` is not a mount namespace.
/// [`io::ErrorKind::PermissionDenied`] if setns fails with EPERM: entering
/// needs `CAP_SYS_ADMIN` over the namespace's owning user namespace and
/// `CAP_SYS_CHROOT`. Other failures of the child carry the kind of their
/// errno and name the failed step.
pub fn nsfs_mounts_by_entering(mnt_ns: BorrowedFd<'_>) -> io::Result<Vec<NsfsMount>> {
    require_mount_namespace(mnt_ns)?;

    let proc_dir = rustix::fs::open(
        "/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io::Error::new(io::Error::from(errno).kind(), format!("failed to open /proc: {errno}")))?;
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;

    // SAFETY: the child runs only `run_entering_child`, which makes system
    // calls through rustix, uses a stack buffer and ends in _exit. It never
    // allocates or takes a lock that another thread of the parent may have
    // held at the fork, so it is async-signal-safe.
    let child = unsafe { libc::fork() };
    if child < 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(error.kind(), format!("fork failed: {error}")));
    }
    if child == 0 {
        run_entering_child(mnt_ns, proc_dir.as_fd(), write_end.as_fd());
    }

    // The parent must drop its write end, or the read below never sees EOF.
    drop(write_end);
    drop(proc_dir);
    let mut output = Vec::new();
    let read_result = File::from(read_end).read_to_end(&mut output);
    // The read end is closed now, so a child still writing gets EPIPE and
    // exits instead of blocking the wait.
    let status = wait_for_child(child);

    read_result.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("failed to read mountinfo from child process {child}: {error}"),
        )
    })?;
    let mountinfo = split_child_output(&output, child, status, mnt_ns)?;

    let (mounts, malformed) = parse_mountinfo_nsfs(mountinfo);
    if malformed > 0 {
        log::warn!(
            "skipped {malformed} malformed mountinfo lines from mount namespace fd {}",
            mnt_ns.as_raw_fd()
        );
    }
    Ok(mounts)
}

/// Runs in the forked child: enters `mnt_ns`, copies its mountinfo to
/// `output` and appends the status trailer. Never returns.
fn run_entering_child(mnt_ns: BorrowedFd<'_>, proc_dir: BorrowedFd<'_>, output: BorrowedFd<'_>) -> ! {
    let (step, errno) = match copy_mountinfo_from_namespace(mnt_ns, proc_dir, output) {
        Ok(()) => (STEP_DONE, 0),
        Err((step, errno)) => (step, errno.raw_os_error()),
    };

    let errno_bytes = errno.to_le_bytes();
    let trailer: [u8; TRAILER_LENGTH] = [0, step, errno_bytes[0], errno_bytes[1], errno_bytes[2], errno_bytes[3]];
    let reported = write_all(output, &trailer).is_ok();
    let exit_code = i32::from(step != STEP_DONE || !reported);
    // SAFETY: _exit ends the child at once, without the destructors and
    // atexit handlers that belong to the parent.
    unsafe { libc::_exit(exit_code) }
}

fn copy_mountinfo_from_namespace(
    mnt_ns: BorrowedFd<'_>,
    proc_dir: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
) -> Result<(), (u8, Errno)> {
    const MOUNTINFO: &CStr = c"self/mountinfo";

    rustix::thread::move_into_link_name_space(mnt_ns, Some(LinkNameSpaceType::Mount))
        .map_err(|errno| (STEP_SETNS, errno))?;
    // The open has to come after setns, because mountinfo reports the mount
    // namespace the task is in when the file is opened.
    let mountinfo = rustix::fs::openat(proc_dir, MOUNTINFO, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| (STEP_OPEN, errno))?;

    let mut chunk = [0u8; 4096];
    loop {
        let count = match rustix::io::read(&mountinfo, &mut chunk) {
            Ok(0) => return Ok(()),
            Ok(count) => count,
            Err(Errno::INTR) => continue,
            Err(errno) => return Err((STEP_READ, errno)),
        };
        write_all(output, &chunk[..count]).map_err(|errno| (STEP_WRITE, errno))?;
    }
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(count) => bytes = &bytes[count..],
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// Reaps the child. Returns None if its status is lost, for example because
/// the process ignores SIGCHLD and the kernel reaped it already.
fn wait_for_child(child: libc::pid_t) -> Option<WaitStatus> {
    let pid = Pid::from_raw(child)?;
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Some(status),
            Ok(None) => return None,
            Err(Errno::INTR) => {}
            Err(errno) => {
                log::warn!("waitpid for child process {child} failed: {errno}");
                return None;
            }
        }
    }
}

/// Splits the child's output into mountinfo text and status trailer, and
/// turns a failed step into an error.
fn split_child_output<'a>(
    output: &'a [u8],
    child: libc::pid_t,
    status: Option<WaitStatus>,
    mnt_ns: BorrowedFd<'_>,
) -> io::Result<&'a [u8]> {
    let raw_fd = mnt_ns.as_raw_fd();
    let Some(trailer_start) = output.iter().position(|&byte| byte == 0) else {
        return Err(io::Error::other(format!(
            "child process {child} for mount namespace fd {raw_fd} ended without a status \
             (wait status {status:?}) after {} bytes",
            output.len()
        )));
    };
    let (mountinfo, trailer) = output.split_at(trailer_start);
    if trailer.len() != TRAILER_LENGTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "child process {child} sent a {}-byte status trailer, expected {TRAILER_LENGTH}",
                trailer.len()
            ),
        ));
    }

    let step = trailer[1];
    let errno = i32::from_le_bytes([trailer[2], trailer[3], trailer[4], trailer[5]]);
    let action = match step {
        STEP_DONE => {
            if let Some(status) = status.filter(|status| status.exit_status() != Some(0)) {
                log::warn!("child process {child} reported success but ended with {status:?}");
            }
            return Ok(mountinfo);
        }
        STEP_SETNS => "setns into the mount namespace",
        STEP_OPEN => "opening /proc/self/mountinfo",
        STEP_READ => "reading /proc/self/mountinfo",
        STEP_WRITE => "writing to the pipe",
        _ => "an unknown step",
    };

    let error = io::Error::from_raw_os_error(errno);
    let hint = if step == STEP_SETNS && errno == libc::EPERM {
        ": entering needs CAP_SYS_ADMIN over the namespace's owning user namespace and CAP_SYS_CHROOT"
    } else {
        ""
    };
    Err(io::Error::new(
        error.kind(),
        format!("child process {child} for mount namespace fd {raw_fd} failed at {action}: {error}{hint}"),
    ))
}

/// Finds nsfs bind mounts in every mount namespace: through the mountinfo of
/// one task per mount namespace, then, for mount namespaces that no task is
/// in, through `NS_MNT_GET_NEXT` with `listmount`/`statmount` (or by entering
/// them in a child process on kernels without `listmount`). Kernels without
/// `NS_MNT_GET_NEXT` (before 6.12) list no such namespaces, so there the
/// child enters each one that an earlier source opened: one held by an fd,
/// or by a bind mount in a mount namespace that a task is in.
pub fn scan(found: &mut super::Found) {
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;

    use crate::inventory::{count, is_usual_pin_path};
    use crate::model::{Holder, NsKey, NsType};

    /// Processes tried per mount namespace before its mountinfo counts as unreadable.
    const MAX_READERS: usize = 3;

    // Every process of a mount namespace sees the same mounts; a few are
    // kept per namespace in case the first exits before it is read.
    let mut readers: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    for task in found.tasks.iter().filter(|t| t.is_leader() && !t.zombie) {
        let mnt = task.links.member[NsType::Mnt.index()];
        let pids = readers.entry(mnt).or_default();
        if mnt != 0 && pids.len() < MAX_READERS {
            pids.push(task.pid);
        }
    }
    readers.remove(&0);
    let mut read = 0usize;
    for (&mnt_inode, pids) in &readers {
        let mut last_error = None;
        let mut mounts = None;
        for &pid in pids {
            match read_nsfs_mounts(pid) {
                Ok(m) => {
                    mounts = Some((pid, m));
                    break;
                }
                Err(err) => last_error = Some((pid, err)),
            }
        }
        let Some((pid, mounts)) = mounts else {
            if let Some((pid, err)) = last_error {
                found.problems.record("mountinfo", pid, &err);
            }
            continue;
        };
        read += 1;
        let mnt_ns = NsKey {
            ty: NsType::Mnt,
            inode: mnt_inode,
        };
        for m in mounts {
            let Some(ty) = NsType::from_name(&m.ns_type) else {
                continue;
            };
            let key = NsKey { ty, inode: m.ns_inode };
            let path = String::from_utf8_lossy(&m.mount_point).into_owned();
            let usual = is_usual_pin_path(&path);
            // The mount point is relative to the task's root; /proc/PID/root
            // resolves it in that task's mount namespace.
            let mut proc_path = format!("/proc/{pid}/root").into_bytes();
            proc_path.extend_from_slice(&m.mount_point);
            let open = || super::procfs_io::open_read(rustix::fs::CWD, proc_path.as_slice());
            found.hold(
                key,
                Holder::BindMount {
                    path,
                    mnt_ns: Some(mnt_ns),
                    usual,
                },
                open,
            );
        }
    }
    let read = count(read, "mount namespace");

    // Mount namespaces without a task: the kernel's list of them.
    let own = match super::procfs_io::open_read(rustix::fs::CWD, "/proc/self/ns/mnt") {
        Ok(fd) => fd,
        Err(err) => {
            return found.note(format!(
                "mounts: mountinfo of {read}; own mount namespace unreadable: {err}"
            ));
        }
    };
    let all = match all_mount_namespaces(own.as_fd()) {
        Ok(all) => all,
        Err(err) if err.kind() == io::ErrorKind::Unsupported => {
            let entered = enter_opened_orphans(found, &readers);
            return found.note(format!(
                "mounts: mountinfo of {read}, {} without a task entered through an fd or bind mount; \
                 NS_MNT_GET_NEXT is missing (Linux 6.12+), so mount namespaces held only where \
                 listns cannot open them are not listed",
                count(entered, "mount namespace")
            ));
        }
        Err(err) => {
            return found.note(format!(
                "mounts: mountinfo of {read}; mount namespaces without a task are not listed \
                 (NS_MNT_GET_NEXT: {err}; needs Linux 6.12+ and root)"
            ));
        }
    };
    let mut orphans = 0usize;
    for (fd, mnt_ns_id) in all {
        let key = match crate::nsfs::key_of(fd.as_fd(), Some(NsType::Mnt)) {
            Ok(key) => key,
            Err(err) => {
                found.problems.record("mount namespace from NS_MNT_GET_NEXT", 0, &err);
                continue;
            }
        };
        if readers.contains_key(&key.inode) {
            continue;
        }
        orphans += 1;
        let mounts = match listmount_nsfs(mnt_ns_id) {
            Ok(mounts) => Ok(mounts),
            Err(err) => {
                log::debug!("listmount of {key} failed ({err}); entering it instead");
                nsfs_mounts_by_entering(fd.as_fd())
            }
        };
        let entry = found.see_fd(key, fd);
        entry.kernel_listed = true;
        add_orphan_mounts(found, key, mounts);
    }
    found.note(format!(
        "mounts: mountinfo of {read}, {} without a task via NS_MNT_GET_NEXT",
        count(orphans, "mount namespace")
    ));
}

/// Enters every mount namespace that `found` has an open fd for and that no
/// task in `readers` is in, adds the nsfs mounts inside as holders, and
/// returns the number of namespaces entered.
///
/// NOTE: a mount namespace pinned only inside one of these cannot be opened
/// from here (see [`add_orphan_mounts`]), so its own mounts stay unread.
fn enter_opened_orphans(found: &mut super::Found, readers: &std::collections::BTreeMap<u64, Vec<i32>>) -> usize {
    use crate::model::NsType;

    let orphans: Vec<(crate::model::NsKey, OwnedFd)> = found
        .namespaces
        .iter()
        .filter(|(key, _)| key.ty == NsType::Mnt && !readers.contains_key(&key.inode))
        .filter_map(|(key, ns)| Some((*key, ns.fd.as_ref()?.try_clone().ok()?)))
        .collect();
    for (key, fd) in &orphans {
        let mounts = nsfs_mounts_by_entering(fd.as_fd());
        add_orphan_mounts(found, *key, mounts);
    }
    orphans.len()
}

/// Adds the nsfs mounts read from mount namespace `mnt_ns`, which no task is
/// in, as bind-mount holders, or records why they could not be read.
fn add_orphan_mounts(found: &mut super::Found, mnt_ns: crate::model::NsKey, mounts: io::Result<Vec<NsfsMount>>) {
    use crate::inventory::is_usual_pin_path;
    use crate::model::{Holder, NsKey, NsType};

    let mounts = match mounts {
        Ok(mounts) => mounts,
        Err(err) => {
            return found
                .problems
                .record("mounts of a mount namespace without a task", 0, &err);
        }
    };
    for m in mounts {
        let Some(ty) = NsType::from_name(&m.ns_type) else {
            continue;
        };
        let target = NsKey { ty, inode: m.ns_inode };
        let path = String::from_utf8_lossy(&m.mount_point).into_owned();
        let usual = is_usual_pin_path(&path);
        // NOTE: a namespace mounted only inside a mount namespace without a
        // task cannot be opened by path from here, so its id and relations
        // stay unknown unless another holder reveals it.
        found.hold(
            target,
            Holder::BindMount {
                path,
                mnt_ns: Some(mnt_ns),
                usual,
            },
            super::no_open,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux 6.18 writes them: `unshare --net=FILE` into a private
    /// directory, a mount point with a space, `ip netns add` under the shared
    /// /run/netns and its copy in a slave mount namespace, plus other file
    /// systems.
    const MOUNTINFO: &[u8] = b"\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
45 27 254:0 /tmp/mprobe /tmp/mprobe rw,relatime - ext4 /dev/vda rw,discard
46 45 0:4 net:[4026532174] /tmp/mprobe/net1 rw - nsfs nsfs rw
70 45 0:4 mnt:[4026532239] /tmp/mprobe/mnt1 rw - nsfs nsfs rw
71 68 0:4 net:[4026532240] /tmp/mprobe/in\\040ner rw - nsfs nsfs rw
72 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard
73 72 0:4 net:[4026532305] /run/netns/blue rw shared:2 - nsfs nsfs rw
98 97 0:4 net:[4026532305] /run/netns/blue rw master:2 - nsfs nsfs rw
99 97 0:4 uts:[4026532306] /run/netns/red rw shared:5 master:1 - nsfs nsfs rw
100 27 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
";

    fn nsfs(mount_id: u64, mount_point: &[u8], ns_type: &str, ns_inode: u64) -> NsfsMount {
        NsfsMount {
            mount_id,
            mount_point: mount_point.to_vec(),
            ns_type: ns_type.to_owned(),
            ns_inode,
        }
    }

    #[test]
    fn public_api_signatures() {
        let _: fn(&[u8]) -> (Vec<NsfsMount>, usize) = parse_mountinfo_nsfs;
        let _: fn(i32) -> io::Result<Vec<NsfsMount>> = read_nsfs_mounts;
        type NamespaceList = io::Result<Vec<(OwnedFd, u64)>>;
        let _: fn(BorrowedFd<'_>) -> NamespaceList = all_mount_namespaces;
        let _: fn(BorrowedFd<'_>) -> io::Result<u64> = mount_namespace_id;
        let _: fn(u64) -> io::Result<Vec<NsfsMount>> = listmount_nsfs;
        let _: fn(BorrowedFd<'_>) -> io::Result<Vec<NsfsMount>> = nsfs_mounts_by_entering;
    }

    #[test]
    fn parse_real_nsfs_lines() {
        let (mounts, malformed) = parse_mountinfo_nsfs(MOUNTINFO);

        assert_eq!(malformed, 0);
        assert_eq!(
            mounts,
            vec![
                nsfs(46, b"/tmp/mprobe/net1", "net", 4026532174),
                nsfs(70, b"/tmp/mprobe/mnt1", "mnt", 4026532239),
                nsfs(71, b"/tmp/mprobe/in ner", "net", 4026532240),
                nsfs(73, b"/run/netns/blue", "net", 4026532305),
                nsfs(98, b"/run/netns/blue", "net", 4026532305),
                nsfs(99, b"/run/netns/red", "uts", 4026532306),
            ]
        );
    }

    #[test]
    fn parse_without_trailing_newline() {
        let text = b"46 45 0:4 net:[4026532174] /run/netns/a rw - nsfs nsfs rw";

        let (mounts, malformed) = parse_mountinfo_nsfs(text);

        assert_eq!(malformed, 0);
        assert_eq!(mounts, vec![nsfs(46, b"/run/netns/a", "net", 4026532174)]);
    }

    #[test]
    fn parse_empty_source_field() {
        // `mount -t tmpfs "" /x` leaves an empty source: two spaces in a row.
        let text = b"50 27 0:40 / /x rw,relatime -  tmpfs  rw\n";

        let (mounts, malformed) = parse_mountinfo_nsfs(text);

        assert!(mounts.is_empty());
        assert_eq!(malformed, 0);
    }

    #[test]
    fn parse_counts_malformed_lines() {
        let cases: &[(&str, &[u8])] = &[
            ("too few fields", b"46 45 0:4 net:[1] /a rw - nsfs\n"),
            ("no separator", b"46 45 0:4 net:[1] /a rw shared:1 nsfs nsfs rw extra\n"),
            ("separator too early", b"46 45 0:4 net:[1] - rw x nsfs nsfs rw\n"),
            ("mount id not a number", b"x6 45 0:4 net:[1] /a rw - nsfs nsfs rw\n"),
            ("signed mount id", b"+46 45 0:4 net:[1] /a rw - nsfs nsfs rw\n"),
            ("parent id not a number", b"46 4x 0:4 net:[1] /a rw - nsfs nsfs rw\n"),
            ("device without colon", b"46 45 04 net:[1] /a rw - nsfs nsfs rw\n"),
            ("nsfs root without brackets", b"46 45 0:4 net:1 /a rw - nsfs nsfs rw\n"),
            ("nsfs root without type", b"46 45 0:4 :[1] /a rw - nsfs nsfs rw\n"),
            (
                "nsfs root with bad inode",
                b"46 45 0:4 net:[12a] /a rw - nsfs nsfs rw\n",
            ),
            ("nsfs root unterminated", b"46 45 0:4 net:[12 /a rw - nsfs nsfs rw\n"),
            (
                "nsfs root with upper case type",
                b"46 45 0:4 NET:[12] /a rw - nsfs nsfs rw\n",
            ),
        ];

        for (name, line) in cases {
            let (mounts, malformed) = parse_mountinfo_nsfs(line);
            assert!(mounts.is_empty(), "{name}: parsed {mounts:?}");
            assert_eq!(malformed, 1, "{name}: not counted as malformed");
        }
    }

    #[test]
    fn parse_skips_malformed_and_keeps_rest() {
        let mut text = MOUNTINFO.to_vec();
        text.extend_from_slice(b"garbage\n\n46 45 0:4 net:1 /a rw - nsfs nsfs rw\n");

        let (mounts, malformed) = parse_mountinfo_nsfs(&text);

        assert_eq!(mounts.len(), 6);
        assert_eq!(malformed, 2);
    }

    #[test]
    fn parse_empty_text() {
        assert_eq!(parse_mountinfo_nsfs(b""), (Vec::new(), 0));
        assert_eq!(parse_mountinfo_nsfs(b"\n\n"), (Vec::new(), 0));
    }

    #[test]
    fn unescape_octal_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/a\\040b", b"/a b"),
            (b"/tab\\011x", b"/tab\tx"),
            (b"/nl\\012", b"/nl\n"),
            (b"/back\\134slash", b"/back\\slash"),
            (b"/high\\377", b"/high\xff"),
            (b"/too-big\\400", b"/too-big\\400"),
            (b"/not-octal\\09x", b"/not-octal\\09x"),
            (b"/short\\04", b"/short\\04"),
            (b"/end\\", b"/end\\"),
            (b"", b""),
        ];

        for (escaped, expected) in cases {
            assert_eq!(
                unescape_octal(escaped),
                expected.to_vec(),
                "unescaping {:?}",
                String::from_utf8_lossy(escaped)
            );
        }
    }

    #[test]
    fn parse_nsfs_root_types() {
        for ns_type in ["net", "mnt", "pid", "user", "uts", "ipc", "cgroup", "time"] {
            let root = format!("{ns_type}:[4026531840]");
            assert_eq!(
                parse_nsfs_root(root.as_bytes()),
                Some((ns_type.to_owned(), 4026531840)),
                "root {root}"
            );
        }
        assert_eq!(parse_nsfs_root(b"net:[]"), None);
        assert_eq!(parse_nsfs_root(b"net:[99999999999999999999]"), None);
    }

    #[test]
    fn ioctl_opcodes_match_uapi() {
        // _IO(0xb7, 3) and _IOR(0xb7, nr, struct mnt_ns_info) with the
        // asm-generic encoding: read bit 2 << 30, size 16 << 16.
        assert_eq!(u64::from(NS_GET_NSTYPE), 0xb703);
        assert_eq!(u64::from(NS_MNT_GET_INFO), 0x8010_b70a);
        assert_eq!(u64::from(NS_MNT_GET_NEXT), 0x8010_b70b);
        assert_eq!(u64::from(NS_MNT_GET_PREV), 0x8010_b70c);
    }

    #[test]
    fn c_string_at_bounds() {
        let area = b"nsfs\0net:[5]\0/a b\0";

        assert_eq!(c_string_at(area, 0), Some(&b"nsfs"[..]));
        assert_eq!(c_string_at(area, 5), Some(&b"net:[5]"[..]));
        assert_eq!(c_string_at(area, 13), Some(&b"/a b"[..]));
        assert_eq!(c_string_at(area, 18), None);
        assert_eq!(c_string_at(area, 1000), None);
        assert_eq!(c_string_at(b"no-nul", 0), None);
    }

    #[test]
    fn split_child_output_success() {
        let fd = File::open("/dev/null").unwrap();
        let mut output = b"46 45 0:4 net:[1] /a rw - nsfs nsfs rw\n".to_vec();
        output.extend_from_slice(&[0, STEP_DONE, 0, 0, 0, 0]);

        let mountinfo = split_child_output(&output, 1234, None, fd.as_fd()).unwrap();

        assert_eq!(mountinfo, &output[..output.len() - TRAILER_LENGTH]);
    }

    #[test]
    fn split_child_output_setns_error() {
        let fd = File::open("/dev/null").unwrap();
        let mut output = vec![0, STEP_SETNS];
        output.extend_from_slice(&libc::EPERM.to_le_bytes());

        let error = split_child_output(&output, 1234, None, fd.as_fd()).unwrap_err();

        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("setns"), "{error}");
        assert!(error.to_string().contains("CAP_SYS_CHROOT"), "{error}");
    }

    #[test]
    fn split_child_output_without_trailer() {
        let fd = File::open("/dev/null").unwrap();

        let error = split_child_output(b"46 45 0:4", 1234, None, fd.as_fd()).unwrap_err();

        assert!(error.to_string().contains("without a status"), "{error}");
    }
}
