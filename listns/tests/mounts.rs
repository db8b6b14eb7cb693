//! Root tests against the real kernel. Each test builds its own mount
//! namespace that no process is in, with a network and a UTS namespace pinned
//! inside it by bind mounts, and checks only the namespaces it made. Without
//! root the tests print a note and pass.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::kernel_version;
use listns::discover::mounts::{
    NsfsMount, all_mount_namespaces, listmount_nsfs, mount_namespace_id, nsfs_mounts_by_entering, read_nsfs_mounts,
};
use listns::inventory::Route;
use listns::model::{Holder, NsKey, NsType};
use rustix::mount::{MountPropagationFlags, UnmountFlags};
use rustix::thread::UnshareFlags;

/// Serializes the fixtures, so that one test's new mount namespace does not
/// copy another test's mounts and keep them alive.
static FIXTURE_LOCK: Mutex<()> = Mutex::new(());
static FIXTURE_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn running_as_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: this test needs root to create namespaces and mounts");
    false
}

fn inode_of(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).expect("fstat of a namespace fd").st_ino
}

/// A mount namespace with no process in it, held by `mnt_ns` and by a bind
/// mount at `mnt_pin` in the test's own mount namespace. Inside it, a network
/// namespace is pinned at `net_pin` (a name with a space) and a UTS namespace
/// at `uts_pin`. Drop removes every mount and file it made.
struct PinnedMountNamespace {
    dir: PathBuf,
    mnt_ns: Option<OwnedFd>,
    mnt_ns_inode: u64,
    net_inode: u64,
    uts_inode: u64,
    net_pin: PathBuf,
    uts_pin: PathBuf,
    mnt_pin: PathBuf,
    /// Mounts made in the test's own mount namespace, in mount order.
    own_mounts: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl PinnedMountNamespace {
    fn create() -> Self {
        let number = FIXTURE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("listns-mounts-test-{}-{number}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));

        let mut fixture = Self {
            net_pin: dir.join("pinned net"),
            uts_pin: dir.join("pinned-uts"),
            mnt_pin: dir.join("pinned-mnt"),
            dir,
            mnt_ns: None,
            mnt_ns_inode: 0,
            net_inode: 0,
            uts_inode: 0,
            own_mounts: Vec::new(),
            files: Vec::new(),
        };

        // A private bind mount of the directory onto itself: a mount
        // namespace file may only be bind-mounted where no propagation can
        // copy the mount into that namespace itself.
        rustix::mount::mount_bind(&fixture.dir, &fixture.dir).expect("bind-mount the test directory");
        fixture.own_mounts.push(fixture.dir.clone());
        rustix::mount::mount_change(&fixture.dir, MountPropagationFlags::PRIVATE)
            .expect("make the test directory private");

        for file in [&fixture.net_pin, &fixture.uts_pin, &fixture.mnt_pin] {
            File::create(file).unwrap_or_else(|error| panic!("create {}: {error}", file.display()));
            fixture.files.push(file.clone());
        }

        let net_pin = fixture.net_pin.clone();
        let uts_pin = fixture.uts_pin.clone();
        let (mnt_ns, net_inode, uts_inode) = std::thread::spawn(move || build_namespace_in_thread(&net_pin, &uts_pin))
            .join()
            .expect("namespace thread panicked")
            .expect("build the pinned mount namespace");
        // The thread has exited, so no task is in the new mount namespace.

        fixture.mnt_ns_inode = inode_of(&mnt_ns);
        fixture.net_inode = net_inode;
        fixture.uts_inode = uts_inode;
        let source = format!("/proc/self/fd/{}", mnt_ns.as_raw_fd());
        rustix::mount::mount_bind(&source, &fixture.mnt_pin).expect("pin the mount namespace by a bind mount");
        fixture.own_mounts.push(fixture.mnt_pin.clone());
        fixture.mnt_ns = Some(mnt_ns);
        fixture
    }

    fn mnt_ns(&self) -> std::os::fd::BorrowedFd<'_> {
        self.mnt_ns
            .as_ref()
            .expect("mount namespace fd already dropped")
            .as_fd()
    }

    fn expected_inner_pins(&self) -> Vec<(Vec<u8>, &'static str, u64)> {
        vec![
            (self.net_pin.as_os_str().as_bytes().to_vec(), "net", self.net_inode),
            (self.uts_pin.as_os_str().as_bytes().to_vec(), "uts", self.uts_inode),
        ]
    }
}

/// Runs on a thread of its own, because `unshare(CLONE_NEWNS)` moves only the
/// calling thread: the namespaces outlive it through the returned fd and the
/// bind mounts. Returns the mount namespace fd and the net and UTS inodes.
fn build_namespace_in_thread(net_pin: &Path, uts_pin: &Path) -> io::Result<(OwnedFd, u64, u64)> {
    // SAFETY: CLONE_NEWNS also unshares this thread's fs_struct (root and
    // cwd), which no other thread relies on. The thread exits right after.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }?;
    // Keep every mount made below inside the new namespace.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)?;
    // SAFETY: new network and UTS namespaces affect only this thread.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET | UnshareFlags::NEWUTS) }?;

    rustix::mount::mount_bind("/proc/thread-self/ns/net", net_pin)?;
    rustix::mount::mount_bind("/proc/thread-self/ns/uts", uts_pin)?;
    let net_inode = inode_of(File::open("/proc/thread-self/ns/net")?);
    let uts_inode = inode_of(File::open("/proc/thread-self/ns/uts")?);
    let mnt_ns = File::open("/proc/thread-self/ns/mnt")?;
    Ok((mnt_ns.into(), net_inode, uts_inode))
}

impl Drop for PinnedMountNamespace {
    fn drop(&mut self) {
        // Closing the fd and removing the pin frees the namespace and, with
        // it, the network and UTS namespaces pinned inside.
        drop(self.mnt_ns.take());
        for mount in self.own_mounts.iter().rev() {
            if let Err(error) = rustix::mount::unmount(mount, UnmountFlags::empty()) {
                eprintln!("unmount {} failed ({error}), detaching it", mount.display());
                if let Err(error) = rustix::mount::unmount(mount, UnmountFlags::DETACH) {
                    eprintln!("detaching {} failed: {error}", mount.display());
                }
            }
        }
        for file in &self.files {
            if let Err(error) = std::fs::remove_file(file) {
                eprintln!("remove {} failed: {error}", file.display());
            }
        }
        if let Err(error) = std::fs::remove_dir(&self.dir) {
            eprintln!("remove {} failed: {error}", self.dir.display());
        }
    }
}

fn lock_fixtures() -> std::sync::MutexGuard<'static, ()> {
    FIXTURE_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).expect("PID fits in i32")
}

fn own_mount_namespace() -> File {
    File::open("/proc/thread-self/ns/mnt").expect("open /proc/thread-self/ns/mnt")
}

fn assert_contains_pin(mounts: &[NsfsMount], mount_point: &[u8], ns_type: &str, ns_inode: u64) {
    let matching: Vec<&NsfsMount> = mounts.iter().filter(|mount| mount.mount_point == mount_point).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one nsfs mount at {:?} in {mounts:?}",
        String::from_utf8_lossy(mount_point)
    );
    assert_eq!(matching[0].ns_type, ns_type, "type of {matching:?}");
    assert_eq!(matching[0].ns_inode, ns_inode, "inode of {matching:?}");
}

/// Returns whether the kernel has the mount namespace ioctls
/// (`NS_MNT_GET_INFO`, `NS_MNT_GET_NEXT`, Linux 6.12), which give the ids that
/// listmount needs. Where it lacks them, prints that `test` checks the
/// fallback instead: the ioctls fail with kind `Unsupported`, and a forked
/// child enters the mount namespace and reads its mountinfo.
fn has_mount_namespace_ids(test: &str) -> bool {
    match mount_namespace_id(own_mount_namespace().as_fd()) {
        Ok(_) => true,
        Err(error) => {
            assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
            assert!(
                kernel_version() < (6, 12),
                "NS_MNT_GET_INFO is missing on Linux 6.12 or later: {error}"
            );
            eprintln!(
                "{test}: this kernel lacks NS_MNT_GET_INFO and NS_MNT_GET_NEXT (Linux 6.12+), \
                 so the test checks the fallback by entering the namespace"
            );
            false
        }
    }
}

/// Asserts that listmount(2) in another mount namespace is unavailable, as
/// before Linux 6.11 (no `mnt_ns_id`) or 6.8 (no listmount), so that callers
/// fall back to entering the namespace.
fn assert_listmount_unsupported() {
    if kernel_version() >= (6, 11) {
        // listmount with mnt_ns_id exists, only the ioctls that give the id are missing.
        return;
    }
    let error = listmount_nsfs(u64::MAX - 1).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
}

/// Asserts that the walk over all mount namespaces fails with kind
/// `Unsupported` when it starts from `start`.
fn assert_walk_unsupported(start: std::os::fd::BorrowedFd<'_>) {
    let error = all_mount_namespaces(start).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
}

fn sorted(mut mounts: Vec<NsfsMount>) -> Vec<NsfsMount> {
    mounts.sort_by(|a, b| (a.mount_id, &a.mount_point).cmp(&(b.mount_id, &b.mount_point)));
    mounts
}

#[test]
fn mount_namespace_id_of_pinned_namespace() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    if !has_mount_namespace_ids("mount_namespace_id_of_pinned_namespace") {
        let error = mount_namespace_id(fixture.mnt_ns()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported, "{error}");
        return;
    }

    let own_id = mount_namespace_id(own_mount_namespace().as_fd()).unwrap();
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    assert_ne!(own_id, 0);
    assert_ne!(pinned_id, 0);
    assert_ne!(own_id, pinned_id);
}

#[test]
fn mount_namespace_id_rejects_other_fds() {
    let net = File::open("/proc/self/ns/net").unwrap();
    let error = mount_namespace_id(net.as_fd()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

    let regular = File::open("/proc/self/mountinfo").unwrap();
    let error = mount_namespace_id(regular.as_fd()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
}

#[test]
fn read_nsfs_mounts_finds_mnt_pin() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();

    let mounts = read_nsfs_mounts(own_pid()).unwrap();

    assert_contains_pin(
        &mounts,
        fixture.mnt_pin.as_os_str().as_bytes(),
        "mnt",
        fixture.mnt_ns_inode,
    );
}

#[test]
fn read_nsfs_mounts_of_thread_id() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();

    let mounts = read_nsfs_mounts(rustix::thread::gettid().as_raw_nonzero().get()).unwrap();

    assert_contains_pin(
        &mounts,
        fixture.mnt_pin.as_os_str().as_bytes(),
        "mnt",
        fixture.mnt_ns_inode,
    );
}

#[test]
fn read_nsfs_mounts_bad_pids() {
    let error = read_nsfs_mounts(0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");

    // Above the kernel's PID_MAX_LIMIT (4194304), so no such task exists.
    let error = read_nsfs_mounts(i32::MAX).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("/proc/2147483647/mountinfo"), "{error}");
}

#[test]
fn all_mount_namespaces_finds_pinned_namespace() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    let own = own_mount_namespace();
    if !has_mount_namespace_ids("all_mount_namespaces_finds_pinned_namespace") {
        assert_walk_unsupported(own.as_fd());
        return;
    }
    let own_id = mount_namespace_id(own.as_fd()).unwrap();
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    let namespaces = all_mount_namespaces(own.as_fd()).unwrap();

    let ids: Vec<u64> = namespaces.iter().map(|(_, id)| *id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids not ascending: {ids:?}"
    );
    let own_entry = namespaces.iter().find(|(_, id)| *id == own_id);
    assert!(own_entry.is_some(), "start namespace {own_id} missing from {ids:?}");
    assert_eq!(inode_of(&own_entry.unwrap().0), inode_of(&own));
    let pinned_entry = namespaces.iter().find(|(_, id)| *id == pinned_id);
    assert!(
        pinned_entry.is_some(),
        "pinned namespace {pinned_id} missing from {ids:?}"
    );
    assert_eq!(inode_of(&pinned_entry.unwrap().0), fixture.mnt_ns_inode);
    for (fd, id) in &namespaces {
        assert_eq!(mount_namespace_id(fd.as_fd()).unwrap(), *id);
    }
}

#[test]
fn all_mount_namespaces_from_pinned_start() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    if !has_mount_namespace_ids("all_mount_namespaces_from_pinned_start") {
        assert_walk_unsupported(fixture.mnt_ns());
        return;
    }
    let own_id = mount_namespace_id(own_mount_namespace().as_fd()).unwrap();
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    let ids: Vec<u64> = all_mount_namespaces(fixture.mnt_ns())
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();

    assert!(ids.contains(&pinned_id), "start {pinned_id} missing from {ids:?}");
    assert!(ids.contains(&own_id), "own namespace {own_id} missing from {ids:?}");
}

#[test]
fn all_mount_namespaces_rejects_net_fd() {
    let net = File::open("/proc/self/ns/net").unwrap();

    let error = all_mount_namespaces(net.as_fd()).unwrap_err();

    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
}

#[test]
fn listmount_nsfs_finds_inner_pins() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    if !has_mount_namespace_ids("listmount_nsfs_finds_inner_pins") {
        assert_listmount_unsupported();
        let mounts = nsfs_mounts_by_entering(fixture.mnt_ns()).unwrap();
        for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
            assert_contains_pin(&mounts, &mount_point, ns_type, ns_inode);
        }
        return;
    }
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    let mounts = listmount_nsfs(pinned_id).unwrap();

    for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
        assert_contains_pin(&mounts, &mount_point, ns_type, ns_inode);
    }
}

#[test]
fn listmount_nsfs_matches_own_mountinfo() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    let pin = fixture.mnt_pin.as_os_str().as_bytes();
    if !has_mount_namespace_ids("listmount_nsfs_matches_own_mountinfo") {
        assert_listmount_unsupported();
        let by_entering = nsfs_mounts_by_entering(own_mount_namespace().as_fd()).unwrap();
        let from_mountinfo = read_nsfs_mounts(own_pid()).unwrap();
        assert_contains_pin(&by_entering, pin, "mnt", fixture.mnt_ns_inode);
        let entered = by_entering.iter().find(|mount| mount.mount_point == pin);
        let read = from_mountinfo.iter().find(|mount| mount.mount_point == pin);
        assert_eq!(entered, read, "entering and mountinfo disagree on the pin");
        return;
    }
    let own_id = mount_namespace_id(own_mount_namespace().as_fd()).unwrap();

    let from_listmount = listmount_nsfs(own_id).unwrap();
    let from_mountinfo = read_nsfs_mounts(own_pid()).unwrap();

    assert_contains_pin(&from_listmount, pin, "mnt", fixture.mnt_ns_inode);
    let listed = from_listmount.iter().find(|mount| mount.mount_point == pin);
    let read = from_mountinfo.iter().find(|mount| mount.mount_point == pin);
    assert_eq!(listed, read, "listmount and mountinfo disagree on the pin");
}

#[test]
fn listmount_nsfs_unknown_namespace() {
    if !running_as_root() {
        return;
    }
    if !has_mount_namespace_ids("listmount_nsfs_unknown_namespace") {
        assert_listmount_unsupported();
        return;
    }

    let error = listmount_nsfs(u64::MAX - 1).unwrap_err();

    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
}

#[test]
fn entering_finds_inner_pins() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();

    let mounts = nsfs_mounts_by_entering(fixture.mnt_ns()).unwrap();

    for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
        assert_contains_pin(&mounts, &mount_point, ns_type, ns_inode);
    }
}

#[test]
fn entering_matches_listmount() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    if !has_mount_namespace_ids("entering_matches_listmount") {
        assert_listmount_unsupported();
        let by_entering = nsfs_mounts_by_entering(fixture.mnt_ns()).unwrap();
        for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
            assert_contains_pin(&by_entering, &mount_point, ns_type, ns_inode);
        }
        return;
    }
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    let by_entering = nsfs_mounts_by_entering(fixture.mnt_ns()).unwrap();
    let by_listmount = listmount_nsfs(pinned_id).unwrap();

    assert!(!by_entering.is_empty());
    assert_eq!(sorted(by_entering), sorted(by_listmount));
}

#[test]
fn entering_rejects_net_fd() {
    let net = File::open("/proc/self/ns/net").unwrap();

    let error = nsfs_mounts_by_entering(net.as_fd()).unwrap_err();

    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
}

/// The real use: a mount namespace held only by a bind mount, found through
/// the ioctl walk and read through the fd that the walk returns.
#[test]
fn namespace_held_only_by_bind_mount() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let mut fixture = PinnedMountNamespace::create();
    if !has_mount_namespace_ids("namespace_held_only_by_bind_mount") {
        // Without the walk, the bind mount itself is the way in.
        drop(fixture.mnt_ns.take());
        assert_walk_unsupported(own_mount_namespace().as_fd());
        let pinned = File::open(&fixture.mnt_pin).expect("open the bind mount of the mount namespace");
        assert_eq!(inode_of(&pinned), fixture.mnt_ns_inode);
        let by_entering = nsfs_mounts_by_entering(pinned.as_fd()).unwrap();
        for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
            assert_contains_pin(&by_entering, &mount_point, ns_type, ns_inode);
        }
        return;
    }
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();
    drop(fixture.mnt_ns.take());

    let namespaces = all_mount_namespaces(own_mount_namespace().as_fd()).unwrap();
    let (fd, _) = namespaces
        .iter()
        .find(|(_, id)| *id == pinned_id)
        .expect("namespace held by the bind mount not found");
    let by_entering = nsfs_mounts_by_entering(fd.as_fd()).unwrap();
    let by_listmount = listmount_nsfs(pinned_id).unwrap();

    for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
        assert_contains_pin(&by_entering, &mount_point, ns_type, ns_inode);
        assert_contains_pin(&by_listmount, &mount_point, ns_type, ns_inode);
    }
}

/// The snapshot lists the namespaces pinned inside a mount namespace that no
/// task is in: through `NS_MNT_GET_NEXT` where the kernel has it, else by
/// entering the mount namespace through the fd and bind mount that hold it.
#[test]
fn snapshot_finds_pins_in_namespace_without_task() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    let mnt_ns = NsKey {
        ty: NsType::Mnt,
        inode: fixture.mnt_ns_inode,
    };

    let inventory = listns::inventory::scan_with(Route::Proc).expect("scan");

    for (mount_point, ns_type, ns_inode) in fixture.expected_inner_pins() {
        let ty = NsType::from_name(ns_type).expect("a namespace type name");
        let key = NsKey { ty, inode: ns_inode };
        let path = String::from_utf8(mount_point).expect("the fixture's paths are UTF-8");
        let ns = inventory.namespaces.get(&key).unwrap_or_else(|| {
            panic!(
                "{key}, pinned at {path:?} in {mnt_ns}, is missing; notes: {:?}",
                inventory.notes
            )
        });
        let expected = Holder::BindMount {
            path: path.clone(),
            mnt_ns: Some(mnt_ns),
            usual: false,
        };
        assert!(
            ns.holders.contains(&expected),
            "{key} lacks the holder {expected:?}: {:?}; notes: {:?}",
            ns.holders,
            inventory.notes
        );
        assert!(ns.tasks.is_empty(), "{key} has tasks: {:?}", ns.tasks);
    }
}

/// What an unprivileged caller gets, checked on a thread that drops its
/// capabilities by switching its own user ids to 65534 (nobody).
#[test]
fn unprivileged_thread_is_limited() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let fixture = PinnedMountNamespace::create();
    let pinned_copy = fixture.mnt_ns().try_clone_to_owned().unwrap();
    if !has_mount_namespace_ids("unprivileged_thread_is_limited") {
        let (walk_error, entering_error) = std::thread::spawn(move || {
            drop_to_nobody();
            let walk_error = all_mount_namespaces(own_mount_namespace().as_fd()).unwrap_err();
            let entering_error = nsfs_mounts_by_entering(pinned_copy.as_fd()).unwrap_err();
            (walk_error, entering_error)
        })
        .join()
        .expect("unprivileged thread panicked");
        assert_eq!(walk_error.kind(), io::ErrorKind::Unsupported, "{walk_error}");
        assert_eq!(
            entering_error.kind(),
            io::ErrorKind::PermissionDenied,
            "{entering_error}"
        );
        return;
    }
    let pinned_id = mount_namespace_id(fixture.mnt_ns()).unwrap();

    let (walk, own_id, listmount_error, entering_error) = std::thread::spawn(move || {
        drop_to_nobody();
        let own = own_mount_namespace();
        let own_id = mount_namespace_id(own.as_fd()).unwrap();
        let walk: Vec<u64> = all_mount_namespaces(own.as_fd())
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let listmount_error = listmount_nsfs(pinned_id).unwrap_err();
        let entering_error = nsfs_mounts_by_entering(pinned_copy.as_fd()).unwrap_err();
        (walk, own_id, listmount_error, entering_error)
    })
    .join()
    .expect("unprivileged thread panicked");

    // Every neighbour belongs to the initial user namespace, where user 65534
    // has no CAP_SYS_ADMIN, so the walk stops at once in both directions.
    assert_eq!(walk, vec![own_id]);
    // Linux 6.18 hides a mount namespace the caller has no privilege over:
    // listmount returns ENOENT, not EPERM.
    assert_eq!(listmount_error.kind(), io::ErrorKind::NotFound, "{listmount_error}");
    assert_eq!(
        entering_error.kind(),
        io::ErrorKind::PermissionDenied,
        "{entering_error}"
    );
}

/// Switches the calling thread's user ids to 65534 (nobody), which drops
/// its capabilities.
fn drop_to_nobody() {
    const NOBODY: libc::uid_t = 65534;
    // The raw system call changes only this thread's credentials, unlike
    // libc's setresuid, which changes every thread of the process.
    // SAFETY: setresuid takes three integers and touches no memory.
    let result = unsafe { libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY) };
    assert_eq!(result, 0, "setresuid: {}", io::Error::last_os_error());
}

/// The fixture's Drop must remove its mounts and files when a test panics.
#[test]
fn fixture_cleans_up_after_panic() {
    if !running_as_root() {
        return;
    }
    let _lock = lock_fixtures();
    let created_dir: Mutex<Option<PathBuf>> = Mutex::new(None);

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fixture = PinnedMountNamespace::create();
        *created_dir.lock().unwrap() = Some(fixture.dir.clone());
        panic!("deliberate panic with the fixture alive");
    }));

    assert!(outcome.is_err());
    let dir = created_dir.lock().unwrap().clone().expect("fixture was not created");
    assert!(!dir.exists(), "{} still exists", dir.display());
    let mountinfo = std::fs::read(format!("/proc/{}/mountinfo", own_pid())).unwrap();
    let dir_bytes = dir.as_os_str().as_bytes();
    let leftover = mountinfo
        .split(|&byte| byte == b'\n')
        .find(|line| line.windows(dir_bytes.len()).any(|window| window == dir_bytes));
    assert!(
        leftover.is_none(),
        "mount left behind: {}",
        String::from_utf8_lossy(leftover.unwrap_or_default())
    );
}
