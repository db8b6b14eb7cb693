//! The kernel's own namespace list and 64-bit namespace ids.
//!
//! Every namespace has a 64-bit id that is unique across all namespace types
//! and never reused while the system runs. `NS_GET_ID` reads it from a
//! namespace fd. The listns() system call returns the ids of all namespaces,
//! and an nsfs file handle opens a namespace by its id.
//!
//! Sources, read but not all run here:
//! - `struct ns_id_req`, `NS_ID_REQ_SIZE_VER0`, `struct nsfs_file_handle` and
//!   `NS_GET_ID` follow `include/uapi/linux/nsfs.h` of Linux 6.19. The paging
//!   and error behavior of listns() follows `kernel/nstree.c` of Linux 6.19.
//!   The kernel used to test this crate is 6.18, where listns() returns
//!   ENOSYS, so [`list_namespace_ids`] has only run against the model of
//!   6.19 in the tests below, never against a real 6.19 kernel.
//! - `FILEID_NSFS` (0xf1) and `FD_NSFS_ROOT` (-10003) come from
//!   `include/linux/exportfs.h` and `include/uapi/linux/fcntl.h`. Linux 6.18
//!   has nsfs file handles, and the tests below run them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

/// listns() on x86_64, and on every architecture that uses the shared
/// syscall table. Alpha (580) and MIPS (4470, 5470, 6470) differ, so this
/// module does not build there.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6"
)))]
const SYS_LISTNS: libc::c_long = 470;

/// `sizeof(struct ns_id_req)` as first published, in Linux 6.19.
const NS_ID_REQ_SIZE_VER0: u32 = 32;

/// Maximum `nr_ns_ids` that listns() accepts. Larger values fail with
/// EOVERFLOW (`maxcount` in `kernel/nstree.c`, Linux 6.19).
const LISTNS_MAX_IDS: usize = 1_000_000;

/// Number of ids that the first listns() call of a listing requests.
const FIRST_PAGE_LEN: usize = 1024;

/// Number of times a listing starts over after listns() lost its place (see
/// [`collect_ids`]) before it gives up.
const MAX_RESTARTS: usize = 8;

/// `FILEID_NSFS`: the `handle_type` of nsfs file handles.
const FILEID_NSFS: i32 = 0xf1;

/// `FD_NSFS_ROOT`: the mount fd value that makes open_by_handle_at() decode
/// the handle on nsfs.
const FD_NSFS_ROOT: libc::c_int = -10003;

/// Result of asking the kernel for its list of namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelList {
    /// The kernel has no listns() (ENOSYS), as before Linux 6.19.
    Unsupported,
    /// Ids of the active namespaces that the caller may see, in increasing order.
    Ids(Vec<u64>),
}

/// Asks the kernel for the ids of all namespaces (all types, all owners), paging through listns(). Unsupported on ENOSYS.
///
/// listns() returns only active namespaces: those in use by a process, or
/// kept by an open fd or a bind mount. It skips the namespaces for which the
/// caller lacks CAP_SYS_ADMIN over the owning user namespace. It still lists
/// the caller's own namespaces, and user namespaces in which the caller has
/// CAP_SYS_ADMIN.
///
/// # Errors
///
/// Returns the errno of listns() other than ENOSYS, and kind `InvalidData`
/// when the kernel returns ids out of increasing order.
///
/// NOTE: a seccomp filter that blocks listns() with EPERM, as some container
/// runtimes do for system calls they do not know, returns an error here, not
/// [`KernelList::Unsupported`].
pub fn list_namespace_ids() -> io::Result<KernelList> {
    collect_ids(listns, FIRST_PAGE_LEN)
}

/// Opens a namespace by its 64-bit id via an nsfs file handle. Err(Unsupported kind) where the kernel lacks nsfs handles.
///
/// `ns_type_clone_flag` is the namespace's `CLONE_NEW*` flag and `inode` its
/// nsfs inode number (the number in `net:[4026531833]`). Either may be 0
/// where unknown. Linux 6.18 finds a namespace only when the handle carries
/// its exact type and inode, so there a 0 in either makes the call fail with
/// kind `NotFound`.
///
/// # Errors
///
/// - kind `Unsupported`: the kernel does not accept `FD_NSFS_ROOT`, as
///   before Linux 6.18.
/// - kind `NotFound`: no active namespace matches the id, type and inode.
/// - other kinds: the errno of open_by_handle_at(), such as EPERM for a
///   caller without CAP_SYS_ADMIN over the namespace's owner.
pub fn open_namespace_by_id(ns_id: u64, ns_type_clone_flag: u32, inode: u32) -> io::Result<OwnedFd> {
    // Kernels after 6.18 look a handle up by id alone when its type and inode
    // are both 0. Some of them reject a handle with only one of the two set
    // ("Either both are set or both are unset" in fs/nsfs.c). So a partial
    // request goes out with both 0, and the known field is checked after open.
    let exact = ns_type_clone_flag != 0 && inode != 0;
    let mut handle = if exact {
        NsfsFileHandle::new(ns_id, ns_type_clone_flag, inode)
    } else {
        NsfsFileHandle::new(ns_id, 0, 0)
    };
    let flags = libc::O_RDONLY | libc::O_CLOEXEC;

    // SAFETY: `handle` is a `struct file_handle` whose `handle_bytes` equals
    // the size of the nsfs handle that follows it, so the kernel reads only
    // memory that belongs to `handle`.
    let fd = unsafe { libc::open_by_handle_at(FD_NSFS_ROOT, (&raw mut handle).cast::<libc::file_handle>(), flags) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return Err(open_by_id_error(error, ns_id, ns_type_clone_flag, inode));
    }

    // SAFETY: open_by_handle_at() returned a new fd that nothing else owns.
    let namespace = unsafe { OwnedFd::from_raw_fd(fd) };
    if !exact {
        check_namespace_matches(namespace.as_fd(), ns_id, ns_type_clone_flag, inode)?;
    }
    Ok(namespace)
}

/// Checks the type and inode of an opened namespace, skipping each one that is 0.
///
/// NOTE: on Linux 6.18 only the tests reach this, because that kernel opens
/// no handle with a 0 type or inode.
fn check_namespace_matches(namespace: BorrowedFd<'_>, ns_id: u64, ns_type: u32, inode: u32) -> io::Result<()> {
    if ns_type != 0 {
        let actual = crate::nsfs::namespace_type(namespace)
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("ioctl NS_GET_NSTYPE on namespace id {ns_id} failed: {error}"),
                )
            })?
            .clone_flag();
        if actual != ns_type {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("namespace id {ns_id} has type {actual:#x}, not the requested {ns_type:#x}"),
            ));
        }
    }

    if inode != 0 {
        let actual = rustix::fs::fstat(namespace)
            .map_err(|errno| {
                let error = io::Error::from(errno);
                io::Error::new(error.kind(), format!("fstat on namespace id {ns_id} failed: {error}"))
            })?
            .st_ino;
        if actual != u64::from(inode) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("namespace id {ns_id} has inode {actual}, not the requested {inode}"),
            ));
        }
    }
    Ok(())
}

/// `struct ns_id_req` of Linux 6.19. In the uapi header `ns_type`, `spare2`
/// and `user_ns_id` sit in an anonymous struct, which does not change the
/// layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NsIdRequest {
    /// Size of this struct, for versioning: `NS_ID_REQ_SIZE_VER0`.
    size: u32,
    /// Reserved. The kernel rejects a nonzero value with EINVAL.
    spare: u32,
    /// Last id of the previous page, or 0 for the first page. The kernel
    /// lists ids greater than this one.
    ns_id: u64,
    /// Mask of `CLONE_NEW*` flags, or 0 for all namespace types.
    ns_type: u32,
    /// Reserved.
    spare2: u32,
    /// Id of the owning user namespace, or 0 for all owners.
    user_ns_id: u64,
}

const _: () = assert!(size_of::<NsIdRequest>() == NS_ID_REQ_SIZE_VER0 as usize);

impl NsIdRequest {
    /// Builds the request for namespaces of all types and owners with ids above `last_id`.
    fn all_after(last_id: u64) -> Self {
        Self {
            size: NS_ID_REQ_SIZE_VER0,
            ns_id: last_id,
            ..Self::default()
        }
    }
}

/// `struct file_handle` whose `f_handle` is a `struct nsfs_file_handle`
/// (`ns_id` u64, `ns_type` u32, `ns_inum` u32).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NsfsFileHandle {
    handle_bytes: u32,
    handle_type: i32,
    ns_id: u64,
    ns_type: u32,
    ns_inum: u32,
}

/// `NSFS_FILE_HANDLE_SIZE_VER0`: the size of `struct nsfs_file_handle`.
const NSFS_FILE_HANDLE_SIZE_VER0: u32 = 16;

impl NsfsFileHandle {
    fn new(ns_id: u64, ns_type: u32, ns_inum: u32) -> Self {
        Self {
            handle_bytes: NSFS_FILE_HANDLE_SIZE_VER0,
            handle_type: FILEID_NSFS,
            ns_id,
            ns_type,
            ns_inum,
        }
    }
}

fn listns(request: &NsIdRequest, ids: &mut [u64]) -> io::Result<usize> {
    // SAFETY: `request` points to an initialized `struct ns_id_req` of
    // `request.size` bytes. The kernel writes at most `ids.len()` u64 values
    // to `ids`, and the flags argument must be 0.
    let result = unsafe {
        libc::syscall(
            SYS_LISTNS,
            std::ptr::from_ref(request),
            ids.as_mut_ptr(),
            ids.len(),
            0 as libc::c_uint,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(result as usize)
}

/// Outcome of one pass of listns() calls from the start of the list.
enum Pass {
    Unsupported,
    Complete(Vec<u64>),
    /// listns() returned ENOENT for a page after `last_id`. Linux 6.19 looks
    /// up the smallest id above `last_id` and returns ENOENT when it finds no
    /// namespace, but also when that namespace is no longer active, even if
    /// active ones follow. So ENOENT does not prove the end of the list.
    LostPlace {
        seen: usize,
        last_id: u64,
    },
}

/// Lists all ids through `call`, which has the contract of the listns() system call.
///
/// When a page after the first fails with ENOENT, the listing starts over
/// with a first page large enough for all ids seen so far plus
/// `first_page_len`. In Linux 6.19 only requests with a nonzero id fail with
/// ENOENT, so a list that ended on a page boundary completes on the next pass.
fn collect_ids(
    mut call: impl FnMut(&NsIdRequest, &mut [u64]) -> io::Result<usize>,
    first_page_len: usize,
) -> io::Result<KernelList> {
    let mut page_len = first_page_len.clamp(1, LISTNS_MAX_IDS);
    for _ in 0..=MAX_RESTARTS {
        match list_one_pass(&mut call, page_len)? {
            Pass::Unsupported => return Ok(KernelList::Unsupported),
            Pass::Complete(ids) => return Ok(KernelList::Ids(ids)),
            Pass::LostPlace { seen, last_id } => {
                log::debug!(
                    "listns() returned ENOENT after namespace id {last_id} with {seen} ids \
                     listed; starting over with a first page of {} ids",
                    seen + first_page_len
                );
                page_len = (seen + first_page_len).min(LISTNS_MAX_IDS);
            }
        }
    }
    Err(io::Error::other(format!(
        "listns() returned ENOENT in the middle of the list on {} passes; namespaces \
         are being created and destroyed faster than they can be listed, so retry later",
        MAX_RESTARTS + 1
    )))
}

fn list_one_pass(
    call: &mut impl FnMut(&NsIdRequest, &mut [u64]) -> io::Result<usize>,
    page_len: usize,
) -> io::Result<Pass> {
    let mut ids = Vec::new();
    let mut page = vec![0u64; page_len];
    let mut last_id = 0;

    loop {
        let request = NsIdRequest::all_after(last_id);
        let count = match call(&request, &mut page) {
            Ok(count) => count,
            Err(error) if error.raw_os_error() == Some(libc::ENOSYS) => {
                return Ok(Pass::Unsupported);
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) && last_id != 0 => {
                return Ok(Pass::LostPlace {
                    seen: ids.len(),
                    last_id,
                });
            }
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("listns() for ids after {last_id} failed: {error}"),
                ));
            }
        };
        if count > page.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("listns() returned {count} ids for a buffer of {}", page.len()),
            ));
        }

        let listed = &page[..count];
        // The kernel lists ids in increasing order. Checking it here also
        // guarantees that every pass ends.
        let mut previous = last_id;
        for &id in listed {
            if id <= previous {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("listns() returned id {id} after id {previous}; expected increasing ids"),
                ));
            }
            previous = id;
        }
        ids.extend_from_slice(listed);

        if count < page.len() {
            return Ok(Pass::Complete(ids));
        }
        last_id = previous;
    }
}

fn open_by_id_error(error: io::Error, ns_id: u64, ns_type: u32, inode: u32) -> io::Error {
    let target = format!("namespace id {ns_id} (type {ns_type:#x}, inode {inode})");
    match error.raw_os_error() {
        // Kernels without nsfs file handles reject FD_NSFS_ROOT as a bad fd.
        Some(libc::EBADF) => io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "cannot open {target}: the kernel has no nsfs file handles ({error}); they \
                 need Linux 6.18, so find the namespace through /proc/PID/ns instead"
            ),
        ),
        Some(libc::ESTALE | libc::ENOENT) => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no active namespace matches {target} ({error}); it may have been \
                 destroyed, or on Linux 6.18 the type or inode is 0 or wrong"
            ),
        ),
        _ => io::Error::new(error.kind(), format!("cannot open {target}: {error}")),
    }
}

/// Adds the namespaces that only the kernel's own list (`listns()`, Linux
/// 6.19+) reports. Runs after the ids of the known namespaces are resolved.
pub fn scan(found: &mut super::Found) {
    use std::collections::HashSet;
    use std::os::fd::AsFd;

    let ids = match list_namespace_ids() {
        Ok(KernelList::Ids(ids)) => ids,
        Ok(KernelList::Unsupported) => {
            return found
                .note("kernel list: listns() is not available (Linux 6.19+); the /proc sources stand alone".into());
        }
        Err(err) => return found.note(format!("kernel list: listns() failed: {err}")),
    };
    let known: HashSet<u64> = found.namespaces.values().filter_map(|ns| ns.id).collect();
    let (mut added, mut unopened) = (0usize, 0usize);
    for id in ids.iter().copied().filter(|id| !known.contains(id)) {
        match open_namespace_by_id(id, 0, 0).and_then(|fd| Ok((crate::nsfs::key_of(fd.as_fd(), None)?, fd))) {
            Ok((key, fd)) => {
                added += 1;
                let entry = found.see_fd(key, fd);
                entry.kernel_listed = true;
            }
            Err(err) => {
                unopened += 1;
                log::debug!("namespace id {id} from listns() could not be opened: {err}");
            }
        }
    }
    found.note(format!(
        "kernel list: listns() reported {} namespaces, {added} not found by other sources, {unopened} could not be opened",
        ids.len()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsfs::namespace_id;

    use std::collections::BTreeSet;
    use std::fs::File;
    use std::mem::offset_of;
    use std::os::fd::{AsFd, AsRawFd};
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// The namespace files of /proc/PID/ns with their `CLONE_NEW*` flags.
    const NAMESPACE_FILES: [(&str, libc::c_int); 8] = [
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("ipc", libc::CLONE_NEWIPC),
        ("mnt", libc::CLONE_NEWNS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("time", libc::CLONE_NEWTIME),
        ("user", libc::CLONE_NEWUSER),
        ("uts", libc::CLONE_NEWUTS),
    ];

    /// Returns (major, minor) of the running kernel.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let major = numbers.next().unwrap_or(0);
        let minor = numbers.next().unwrap_or(0);
        (major, minor)
    }

    fn open_own_namespace(name: &str) -> File {
        let path = format!("/proc/self/ns/{name}");
        File::open(&path).unwrap_or_else(|error| panic!("failed to open {path}: {error}"))
    }

    fn inode_of(file: &File) -> u32 {
        let inode = rustix::fs::fstat(file).unwrap().st_ino;
        u32::try_from(inode).expect("nsfs inode numbers fit in 32 bits")
    }

    fn require_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test needs root: it creates network namespaces and opens nsfs file handles"
        );
    }

    /// Returns whether the kernel has `NS_GET_ID` and nsfs file handles,
    /// which Linux 6.18 added together. Where it lacks them, prints that
    /// `test` checks the fallback instead. Before 6.18, `NS_GET_ID` must fail
    /// with ENOTTY, and from 6.18 on it must work.
    fn has_namespace_ids(test: &str) -> bool {
        match namespace_id(open_own_namespace("net").as_fd()) {
            Ok(_) => true,
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::ENOTTY), "NS_GET_ID failed: {error}");
                assert!(
                    kernel_version() < (6, 18),
                    "NS_GET_ID failed with ENOTTY on Linux 6.18 or later"
                );
                eprintln!(
                    "{test}: this kernel lacks NS_GET_ID and nsfs file handles (Linux 6.18+), \
                     so the test checks that both fail as the fallbacks expect"
                );
                false
            }
        }
    }

    /// Asserts that `NS_GET_ID` fails with ENOTTY on `file`, as on kernels
    /// before 6.18, where the inode number is the key of a namespace.
    fn assert_no_namespace_id(file: &File, what: &str) {
        let error = namespace_id(file.as_fd()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTTY), "NS_GET_ID on {what}: {error}");
    }

    /// Asserts that opening by id fails with kind `Unsupported`, which
    /// callers take as the sign to open namespaces through `/proc/PID/ns`.
    fn assert_open_by_id_unsupported(file: &File) {
        let error = open_namespace_by_id(1, libc::CLONE_NEWNET as u32, inode_of(file)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
        assert!(error.to_string().contains("Linux 6.18"), "{error}");
    }

    /// A network namespace made with `ip netns add`, deleted on drop, also
    /// when the test panics.
    struct TestNetns {
        name: String,
        deleted: bool,
    }

    impl TestNetns {
        fn create() -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            require_root();
            let name = format!(
                "kernel-list-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            run_ip(&["netns", "add", &name]);
            Self { name, deleted: false }
        }

        fn open(&self) -> File {
            let path = format!("/run/netns/{}", self.name);
            File::open(&path).unwrap_or_else(|error| panic!("failed to open {path}: {error}"))
        }

        fn delete(&mut self) {
            self.deleted = true;
            run_ip(&["netns", "del", &self.name]);
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            if self.deleted {
                return;
            }
            let status = Command::new("ip").args(["netns", "del", &self.name]).status();
            if !matches!(status, Ok(status) if status.success()) {
                eprintln!("cleanup: ip netns del {} failed: {status:?}", self.name);
            }
        }
    }

    fn run_ip(arguments: &[&str]) {
        let output = Command::new("ip")
            .args(arguments)
            .output()
            .unwrap_or_else(|error| panic!("failed to run ip {arguments:?}: {error}"));
        assert!(
            output.status.success(),
            "ip {arguments:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    #[test]
    fn request_layout_matches_uapi() {
        assert_eq!(size_of::<NsIdRequest>(), 32);
        assert_eq!(offset_of!(NsIdRequest, size), 0);
        assert_eq!(offset_of!(NsIdRequest, spare), 4);
        assert_eq!(offset_of!(NsIdRequest, ns_id), 8);
        assert_eq!(offset_of!(NsIdRequest, ns_type), 16);
        assert_eq!(offset_of!(NsIdRequest, spare2), 20);
        assert_eq!(offset_of!(NsIdRequest, user_ns_id), 24);
    }

    #[test]
    fn request_encoding_for_all_namespaces() {
        let request = NsIdRequest::all_after(0x1122_3344_5566_7788);

        // SAFETY: NsIdRequest is repr(C), 32 bytes, with no padding.
        let bytes: [u8; 32] = unsafe { std::mem::transmute(request) };
        let mut expected = [0u8; 32];
        expected[0..4].copy_from_slice(&32u32.to_ne_bytes());
        expected[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn file_handle_layout_matches_uapi() {
        assert_eq!(size_of::<NsfsFileHandle>(), 24);
        assert_eq!(offset_of!(NsfsFileHandle, handle_bytes), 0);
        assert_eq!(offset_of!(NsfsFileHandle, handle_type), 4);
        assert_eq!(offset_of!(NsfsFileHandle, ns_id), 8);
        assert_eq!(offset_of!(NsfsFileHandle, ns_type), 16);
        assert_eq!(offset_of!(NsfsFileHandle, ns_inum), 20);
    }

    #[test]
    fn listns_matches_kernel_version() {
        let result = list_namespace_ids().unwrap();
        if kernel_version() < (6, 19) {
            assert_eq!(result, KernelList::Unsupported);
            return;
        }

        let KernelList::Ids(ids) = result else {
            panic!("listns() returned ENOSYS on Linux 6.19 or later");
        };
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "ids not increasing: {ids:?}"
        );
        for (name, _) in NAMESPACE_FILES {
            let id = namespace_id(open_own_namespace(name).as_fd()).unwrap();
            assert!(ids.contains(&id), "own {name} namespace id {id} missing from listns()");
        }
    }

    /// A model of listns() in `kernel/nstree.c` of Linux 6.19, for the
    /// paging logic that the 6.18 test kernel cannot run. It returns active
    /// namespaces with ids above `request.ns_id`, in increasing order. For a
    /// nonzero `request.ns_id` it fails with ENOENT when the next id is missing
    /// or inactive.
    struct ListnsModel {
        /// (id, active) in increasing id order.
        namespaces: Vec<(u64, bool)>,
        calls: usize,
    }

    impl ListnsModel {
        fn new(namespaces: &[(u64, bool)]) -> Self {
            Self {
                namespaces: namespaces.to_vec(),
                calls: 0,
            }
        }

        fn call(&mut self, request: &NsIdRequest, ids: &mut [u64]) -> io::Result<usize> {
            self.calls += 1;
            assert_eq!(request.size, NS_ID_REQ_SIZE_VER0);
            assert_eq!(request.ns_type, 0);
            assert_eq!(request.user_ns_id, 0);
            assert!(ids.len() <= LISTNS_MAX_IDS);

            let mut later = self.namespaces.iter().filter(|(id, _)| *id > request.ns_id);
            if request.ns_id != 0 && !matches!(later.clone().next(), Some((_, true))) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let mut count = 0;
            for (id, _) in later.by_ref().filter(|(_, active)| *active) {
                if count == ids.len() {
                    break;
                }
                ids[count] = *id;
                count += 1;
            }
            Ok(count)
        }

        fn active_ids(&self) -> Vec<u64> {
            self.namespaces
                .iter()
                .filter(|(_, active)| *active)
                .map(|(id, _)| *id)
                .collect()
        }
    }

    fn list_with_model(model: &mut ListnsModel, first_page_len: usize) -> KernelList {
        collect_ids(|request, ids| model.call(request, ids), first_page_len).unwrap()
    }

    #[test]
    fn paging_short_and_empty_lists() {
        let mut empty = ListnsModel::new(&[]);
        assert_eq!(list_with_model(&mut empty, 4), KernelList::Ids(vec![]));
        assert_eq!(empty.calls, 1);

        let mut short = ListnsModel::new(&[(1, true), (2, false), (7, true)]);
        assert_eq!(list_with_model(&mut short, 4), KernelList::Ids(vec![1, 7]));
        assert_eq!(short.calls, 1);
    }

    #[test]
    fn paging_across_several_pages() {
        let namespaces: Vec<(u64, bool)> = (1..=11).map(|id| (id * 10, true)).collect();
        let mut model = ListnsModel::new(&namespaces);

        assert_eq!(list_with_model(&mut model, 4), KernelList::Ids(model.active_ids()));
        assert_eq!(model.calls, 3);
    }

    #[test]
    fn paging_ends_on_page_boundary() {
        // 8 ids fill two pages exactly, so the third call fails with ENOENT
        // and one larger page from the start completes the list.
        let namespaces: Vec<(u64, bool)> = (1..=8).map(|id| (id, true)).collect();
        let mut model = ListnsModel::new(&namespaces);

        assert_eq!(list_with_model(&mut model, 4), KernelList::Ids(model.active_ids()));
        assert_eq!(model.calls, 4);
    }

    #[test]
    fn paging_past_inactive_namespace_at_boundary() {
        // Id 5 follows the first page and is inactive, so the second call
        // fails with ENOENT although ids 6 to 9 are active.
        let mut model = ListnsModel::new(&[
            (1, true),
            (2, true),
            (3, true),
            (4, true),
            (5, false),
            (6, true),
            (7, true),
            (8, true),
            (9, true),
        ]);

        assert_eq!(list_with_model(&mut model, 4), KernelList::Ids(model.active_ids()));
    }

    #[test]
    fn paging_maps_enosys_to_unsupported() {
        let result = collect_ids(|_, _| Err(io::Error::from_raw_os_error(libc::ENOSYS)), 4);
        assert_eq!(result.unwrap(), KernelList::Unsupported);
    }

    #[test]
    fn paging_reports_other_errors() {
        let error = collect_ids(|_, _| Err(io::Error::from_raw_os_error(libc::EINVAL)), 4).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

        let first_page_enoent = collect_ids(|_, _| Err(io::Error::from_raw_os_error(libc::ENOENT)), 4).unwrap_err();
        assert_eq!(first_page_enoent.kind(), io::ErrorKind::NotFound, "{first_page_enoent}");
    }

    #[test]
    fn paging_rejects_decreasing_ids() {
        let error = collect_ids(
            |_, ids| {
                ids[0] = 5;
                ids[1] = 3;
                Ok(2)
            },
            4,
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }

    #[test]
    fn paging_gives_up_after_restarts() {
        // Every page after the first fails with ENOENT, however large the
        // first page is, because the model always fills it.
        let mut calls = 0;
        let error = collect_ids(
            |request, ids| {
                calls += 1;
                if request.ns_id != 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOENT));
                }
                for (slot, id) in ids.iter_mut().zip(1..) {
                    *slot = id;
                }
                Ok(ids.len())
            },
            4,
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Other, "{error}");
        assert_eq!(calls, 2 * (MAX_RESTARTS + 1));
    }

    #[test]
    fn namespace_ids_distinct_per_type() {
        if !has_namespace_ids("namespace_ids_distinct_per_type") {
            for (name, _) in NAMESPACE_FILES {
                assert_no_namespace_id(&open_own_namespace(name), name);
            }
            return;
        }
        let mut ids = BTreeSet::new();
        for (name, _) in NAMESPACE_FILES {
            let id = namespace_id(open_own_namespace(name).as_fd()).unwrap();
            assert_ne!(id, 0, "{name} namespace id");
            assert!(ids.insert(id), "{name} namespace id {id} repeats another type's id");
        }
    }

    #[test]
    fn namespace_id_stable_across_opens() {
        if !has_namespace_ids("namespace_id_stable_across_opens") {
            // The inode number is the key instead, and as stable.
            for (name, _) in NAMESPACE_FILES {
                let first = inode_of(&open_own_namespace(name));
                let second = inode_of(&open_own_namespace(name));
                assert_eq!(first, second, "{name}");
            }
            return;
        }
        for (name, _) in NAMESPACE_FILES {
            let first = namespace_id(open_own_namespace(name).as_fd()).unwrap();
            let second = namespace_id(open_own_namespace(name).as_fd()).unwrap();
            assert_eq!(first, second, "{name}");
        }
    }

    #[test]
    fn namespace_id_of_new_netns() {
        let netns = TestNetns::create();
        if !has_namespace_ids("namespace_id_of_new_netns") {
            assert_no_namespace_id(&netns.open(), "a new network namespace");
            assert_ne!(inode_of(&netns.open()), inode_of(&open_own_namespace("net")));
            return;
        }
        let own = namespace_id(open_own_namespace("net").as_fd()).unwrap();
        let created = namespace_id(netns.open().as_fd()).unwrap();
        let again = namespace_id(netns.open().as_fd()).unwrap();

        assert_ne!(created, own);
        assert_eq!(created, again);
    }

    #[test]
    fn namespace_id_rejects_regular_file() {
        let file = File::open("/proc/self/status").unwrap();
        let error = namespace_id(file.as_fd()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTTY), "{error}");
    }

    #[test]
    fn handle_matches_name_to_handle_at() {
        require_root();
        let file = open_own_namespace("net");
        let ids = has_namespace_ids("handle_matches_name_to_handle_at");
        let expected = NsfsFileHandle::new(
            namespace_id(file.as_fd()).unwrap_or(0),
            libc::CLONE_NEWNET as u32,
            inode_of(&file),
        );

        let mut handle = NsfsFileHandle::new(0, 0, 0);
        handle.handle_bytes = NSFS_FILE_HANDLE_SIZE_VER0;
        handle.handle_type = 0;
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `handle` has room for `handle_bytes` bytes after its header,
        // and the path is an empty C string used with AT_EMPTY_PATH.
        let result = unsafe {
            libc::name_to_handle_at(
                file.as_raw_fd(),
                c"".as_ptr(),
                (&raw mut handle).cast::<libc::file_handle>(),
                &mut mount_id,
                libc::AT_EMPTY_PATH,
            )
        };
        if !ids {
            // nsfs has no file handles before Linux 6.18.
            let error = io::Error::last_os_error();
            assert_eq!(result, -1, "name_to_handle_at on nsfs succeeded: {handle:?}");
            assert_eq!(error.raw_os_error(), Some(libc::EOPNOTSUPP), "{error}");
            return;
        }
        assert_eq!(result, 0, "name_to_handle_at: {}", io::Error::last_os_error());
        assert_eq!(handle, expected);
    }

    #[test]
    fn open_own_namespaces_by_id() {
        require_root();
        if !has_namespace_ids("open_own_namespaces_by_id") {
            for (name, _) in NAMESPACE_FILES {
                assert_open_by_id_unsupported(&open_own_namespace(name));
            }
            return;
        }
        for (name, clone_flag) in NAMESPACE_FILES {
            let file = open_own_namespace(name);
            let id = namespace_id(file.as_fd()).unwrap();
            let inode = inode_of(&file);

            let opened =
                open_namespace_by_id(id, clone_flag as u32, inode).unwrap_or_else(|error| panic!("{name}: {error}"));
            let opened = File::from(opened);
            assert_eq!(inode_of(&opened), inode, "{name} inode");
            assert_eq!(namespace_id(opened.as_fd()).unwrap(), id, "{name} id");
        }
    }

    #[test]
    fn open_created_netns_by_id() {
        let netns = TestNetns::create();
        let file = netns.open();
        if !has_namespace_ids("open_created_netns_by_id") {
            assert_open_by_id_unsupported(&file);
            return;
        }
        let id = namespace_id(file.as_fd()).unwrap();
        let inode = inode_of(&file);
        drop(file);

        // The bind mount under /run/netns keeps the namespace active.
        let opened = File::from(open_namespace_by_id(id, libc::CLONE_NEWNET as u32, inode).unwrap());
        assert_eq!(inode_of(&opened), inode);
    }

    #[test]
    fn open_by_id_rejects_mismatches() {
        require_root();
        let file = open_own_namespace("net");
        if !has_namespace_ids("open_by_id_rejects_mismatches") {
            assert_open_by_id_unsupported(&file);
            return;
        }
        let id = namespace_id(file.as_fd()).unwrap();
        let inode = inode_of(&file);
        let net = libc::CLONE_NEWNET as u32;

        let cases = [
            ("wrong inode", id, net, inode.wrapping_add(1)),
            ("wrong type", id, libc::CLONE_NEWUTS as u32, inode),
            ("unknown id", u64::MAX, net, inode),
        ];
        for (case, case_id, case_type, case_inode) in cases {
            let error = open_namespace_by_id(case_id, case_type, case_inode).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{case}: {error}");
        }
    }

    #[test]
    fn open_by_id_with_zero_type_and_inode() {
        require_root();
        let file = open_own_namespace("net");
        if !has_namespace_ids("open_by_id_with_zero_type_and_inode") {
            let error = open_namespace_by_id(1, 0, 0).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
            return;
        }
        let id = namespace_id(file.as_fd()).unwrap();

        let result = open_namespace_by_id(id, 0, 0);
        if kernel_version() < (6, 19) {
            // Linux 6.18 looks the id up in the tree of the given type only.
            let error = result.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        } else {
            let opened = File::from(result.unwrap());
            assert_eq!(inode_of(&opened), inode_of(&file));
        }
    }

    #[test]
    fn open_by_id_with_type_only() {
        require_root();
        let file = open_own_namespace("net");
        if !has_namespace_ids("open_by_id_with_type_only") {
            let error = open_namespace_by_id(1, libc::CLONE_NEWNET as u32, 0).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
            return;
        }
        let id = namespace_id(file.as_fd()).unwrap();
        let net = libc::CLONE_NEWNET as u32;

        let result = open_namespace_by_id(id, net, 0);
        if kernel_version() < (6, 19) {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        } else {
            let opened = File::from(result.unwrap());
            assert_eq!(inode_of(&opened), inode_of(&file));

            let error = open_namespace_by_id(id, libc::CLONE_NEWUTS as u32, 0).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        }
    }

    #[test]
    fn opened_namespace_check_cases() {
        let file = open_own_namespace("net");
        // The check compares type and inode only, and the id appears only in
        // messages, so kernels without NS_GET_ID run it with id 0.
        let id = namespace_id(file.as_fd()).unwrap_or(0);
        let inode = inode_of(&file);
        let net = libc::CLONE_NEWNET as u32;

        let accepted = [
            ("nothing known", 0, 0),
            ("type", net, 0),
            ("inode", 0, inode),
            ("both", net, inode),
        ];
        for (case, ns_type, case_inode) in accepted {
            let result = check_namespace_matches(file.as_fd(), id, ns_type, case_inode);
            assert!(result.is_ok(), "{case}: {result:?}");
        }

        let rejected = [
            ("wrong type", libc::CLONE_NEWUTS as u32, 0),
            ("wrong inode", 0, inode.wrapping_add(1)),
        ];
        for (case, ns_type, case_inode) in rejected {
            let error = check_namespace_matches(file.as_fd(), id, ns_type, case_inode).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::NotFound, "{case}: {error}");
        }
    }

    #[test]
    fn open_by_id_after_netns_deleted() {
        let mut netns = TestNetns::create();
        let file = netns.open();
        if !has_namespace_ids("open_by_id_after_netns_deleted") {
            assert_open_by_id_unsupported(&file);
            drop(file);
            netns.delete();
            return;
        }
        let id = namespace_id(file.as_fd()).unwrap();
        let inode = inode_of(&file);
        drop(file);
        netns.delete();

        // `ip netns del` detaches the bind mount lazily, so the last
        // reference may go away shortly after the command returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match open_namespace_by_id(id, libc::CLONE_NEWNET as u32, inode) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                Err(error) => panic!("expected NotFound, got {error}"),
                Ok(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(_) => panic!("namespace id {id} still opens 5 s after ip netns del"),
            }
        }
    }

    #[test]
    fn open_error_kinds_by_errno() {
        let cases = [
            (libc::EBADF, io::ErrorKind::Unsupported),
            (libc::ESTALE, io::ErrorKind::NotFound),
            (libc::ENOENT, io::ErrorKind::NotFound),
            (libc::EPERM, io::ErrorKind::PermissionDenied),
        ];
        for (errno, kind) in cases {
            let error = open_by_id_error(io::Error::from_raw_os_error(errno), 9, 0, 0);
            assert_eq!(error.kind(), kind, "errno {errno}: {error}");
            assert!(error.to_string().contains("namespace id 9"), "{error}");
        }
    }
}
