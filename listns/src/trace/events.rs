//! Decoding the records of the `EVENTS` ring buffer, and reading the
//! in-kernel counters of lost events.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, SystemTime};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use listns_common::NsType;
use listns_common::trace::{
    EXIT_GROUP_DEAD, EventKind, LINK_SLOTS, RawEvent, RawForkEvent, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN,
    TaskNamespaces, counter, slot_name,
};

use crate::model::NsKey;

/// One namespace link of a task: nsfs inode and, on Linux 6.18+, the 64-bit
/// namespace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsRef {
    pub inode: u64,
    /// `None` where the kernel has no `ns_common.ns_id`.
    pub id: Option<u64>,
}

/// The namespace links of a task at the time of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NsLinks {
    /// Indexed by [`NsType::index`]; `None` where the kernel lacks the type
    /// or the read failed.
    pub member: [Option<NsRef>; 8],
    pub pid_for_children: Option<NsRef>,
    pub time_for_children: Option<NsRef>,
}

impl NsLinks {
    fn from_raw(raw: &TaskNamespaces) -> NsLinks {
        let link = |slot: usize| {
            (raw.inum[slot] != 0).then(|| NsRef {
                inode: u64::from(raw.inum[slot]),
                id: (raw.id[slot] != 0).then_some(raw.id[slot]),
            })
        };
        NsLinks {
            member: std::array::from_fn(link),
            pid_for_children: link(SLOT_PID_FOR_CHILDREN),
            time_for_children: link(SLOT_TIME_FOR_CHILDREN),
        }
    }

    /// Returns the namespace of this type that the task is a member of.
    pub fn get(&self, ty: NsType) -> Option<NsRef> {
        self.member[ty.index()]
    }

    /// Returns the link in slot order: the eight types by [`NsType::index`],
    /// then `pid_for_children` and `time_for_children`.
    pub fn slot(&self, slot: usize) -> Option<NsRef> {
        match slot {
            SLOT_PID_FOR_CHILDREN => self.pid_for_children,
            SLOT_TIME_FOR_CHILDREN => self.time_for_children,
            _ => self.member.get(slot).copied().flatten(),
        }
    }

    /// Returns the member key of this type, as the snapshot names it.
    pub fn key(&self, ty: NsType) -> Option<NsKey> {
        self.get(ty).map(|ns| NsKey { ty, inode: ns.inode })
    }
}

/// Task identity and credentials carried by every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub tgid: u32,
    pub tid: u32,
    /// Thread-group id of the real parent.
    pub ppid: u32,
    /// Real UID, in the initial user namespace; `u32::MAX` when unread.
    pub uid: u32,
    /// Effective UID, in the initial user namespace; `u32::MAX` when unread.
    pub euid: u32,
    /// `task->comm` as raw bytes: a process can set any bytes, so escape
    /// it before showing it.
    pub comm: Vec<u8>,
}

/// System call of a [`Detail::Mount`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountCall {
    Mount,
    MoveMount,
    Umount,
}

/// The kind-specific part of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// A new task (described by [`Event::task`]) whose namespaces differ
    /// from those of the task that created it.
    Fork {
        creator_tgid: u32,
        creator_tid: u32,
        /// Boxed: forks are rare and this keeps every other event small.
        creator_namespaces: Box<NsLinks>,
    },
    Unshare {
        flags: u64,
    },
    Setns {
        fd: i32,
        nstype: u32,
    },
    Exec {
        /// Thread id before exec: a non-leader thread that execs takes over
        /// the thread-group id.
        old_tid: u32,
    },
    Exit {
        /// Whether this was the last thread of its thread group.
        group_dead: bool,
    },
    Mount {
        call: MountCall,
        flags: u64,
        /// Return value: 0 or a negative errno.
        ret: i64,
    },
    /// The kernel gave an inode number back to its proc inode allocator
    /// (`proc_free_inum`): a namespace with this nsfs inode number was freed,
    /// or a `/proc` entry was removed. [`Event::task`] is whichever task ran
    /// the free (often a kernel worker), and [`Event::namespaces`] is empty.
    FreeInum {
        inode: u64,
    },
}

/// One decoded kernel event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_BOOTTIME in nanoseconds; see [`BootClock`] for wall time.
    pub boot_ns: u64,
    /// System call number on this architecture; `None` for scheduler events.
    pub syscall_nr: Option<i32>,
    pub task: TaskInfo,
    /// The task's namespaces after the event (for an exit: at exit).
    pub namespaces: NsLinks,
    pub detail: Detail,
}

impl Event {
    /// Returns the kind of event.
    pub fn kind(&self) -> EventKind {
        match self.detail {
            Detail::Fork { .. } => EventKind::Fork,
            Detail::Unshare { .. } => EventKind::Unshare,
            Detail::Setns { .. } => EventKind::Setns,
            Detail::Exec { .. } => EventKind::Exec,
            Detail::Exit { .. } => EventKind::Exit,
            Detail::Mount {
                call: MountCall::Mount, ..
            } => EventKind::Mount,
            Detail::Mount {
                call: MountCall::MoveMount,
                ..
            } => EventKind::MoveMount,
            Detail::Mount {
                call: MountCall::Umount,
                ..
            } => EventKind::Umount,
            Detail::FreeInum { .. } => EventKind::FreeInum,
        }
    }
}

/// Derives the `CLONE_NEW*` flags of the clone behind a fork event from the
/// child's and the creator's namespaces, because the fork tracepoint does
/// not pass the flags.
///
/// A child that merely starts in the pid or time namespace its creator
/// prepared for its children (after `unshare(CLONE_NEWPID)` or
/// `unshare(CLONE_NEWTIME)`) gets no flag for it: the clone created nothing.
pub fn derived_clone_flags(child: &NsLinks, creator: &NsLinks) -> u32 {
    let mut flags = 0;
    for ty in NsType::ALL {
        let created = match ty {
            // CLONE_NEWPID puts the child in a new pid namespace, which is
            // neither its creator's own nor the creator's pid_for_children.
            NsType::Pid => child.get(ty) != creator.get(ty) && child.get(ty) != creator.pid_for_children,
            // CLONE_NEWTIME creates a new time_for_children, which the child
            // enters at once unless it shares memory with the creator.
            NsType::Time => child.time_for_children != creator.time_for_children,
            _ => child.get(ty) != creator.get(ty),
        };
        if created {
            flags |= ty.clone_flag();
        }
    }
    flags
}

/// A record that is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than its kind requires.
    Truncated { len: usize, expected: usize },
    /// The kind field contains no known [`EventKind`].
    UnknownKind(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { len, expected } => {
                write!(f, "event record of {len} bytes is shorter than the expected {expected}")
            }
            DecodeError::UnknownKind(kind) => write!(
                f,
                "event record has unknown kind {kind}; the eBPF object and listns were built from different sources"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

fn read_record<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            expected: size_of::<T>(),
        });
    }
    // SAFETY: the length was checked; T is a #[repr(C)] record of integers,
    // valid for every bit pattern; read_unaligned allows any alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let raw: RawEvent = read_record(bytes)?;
    let kind = EventKind::from_raw(raw.kind).ok_or(DecodeError::UnknownKind(raw.kind))?;
    let detail = match kind {
        EventKind::Fork => {
            let fork: RawForkEvent = read_record(bytes)?;
            Detail::Fork {
                creator_tgid: fork.creator_tgid,
                creator_tid: fork.creator_tid,
                creator_namespaces: Box::new(NsLinks::from_raw(&fork.creator_ns)),
            }
        }
        EventKind::Unshare => Detail::Unshare { flags: raw.args[0] },
        EventKind::Setns => Detail::Setns {
            fd: raw.args[0] as u32 as i32,
            nstype: raw.args[1] as u32,
        },
        EventKind::Exec => Detail::Exec { old_tid: raw.aux },
        EventKind::Exit => Detail::Exit {
            group_dead: raw.aux & EXIT_GROUP_DEAD != 0,
        },
        EventKind::Mount | EventKind::MoveMount | EventKind::Umount => Detail::Mount {
            call: match kind {
                EventKind::Mount => MountCall::Mount,
                EventKind::MoveMount => MountCall::MoveMount,
                _ => MountCall::Umount,
            },
            flags: raw.args[0],
            ret: raw.ret,
        },
        EventKind::FreeInum => Detail::FreeInum {
            inode: u64::from(raw.aux),
        },
    };
    let comm_len = raw.comm.iter().position(|&b| b == 0).unwrap_or(raw.comm.len());
    Ok(Event {
        boot_ns: raw.boot_ns,
        syscall_nr: (raw.syscall_nr >= 0).then_some(raw.syscall_nr),
        task: TaskInfo {
            tgid: raw.tgid,
            tid: raw.tid,
            ppid: raw.ppid,
            uid: raw.uid,
            euid: raw.euid,
            comm: raw.comm[..comm_len].to_vec(),
        },
        namespaces: NsLinks::from_raw(&raw.ns),
        detail,
    })
}

/// Totals of the in-kernel counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events dropped because the ring buffer was full.
    pub lost_events: u64,
    /// System calls whose arguments found no room in the per-thread map,
    /// so their exit sent no event.
    pub pending_map_full: u64,
    /// Events sent with some fields unread (zeros).
    pub read_failed: u64,
}

/// Converts `CLOCK_BOOTTIME` stamps of events to wall-clock time.
///
/// The offset between `CLOCK_REALTIME` and `CLOCK_BOOTTIME` is sampled once.
/// It changes when the wall clock is stepped (by NTP or by hand), so
/// long-running callers should [`BootClock::resample`] now and then.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    /// Realtime minus boottime, in nanoseconds.
    offset_ns: i128,
}

impl BootClock {
    /// Samples the offset now.
    pub fn new() -> BootClock {
        let mut clock = BootClock { offset_ns: 0 };
        clock.resample();
        clock
    }

    /// Samples the offset again. Of three samples, it keeps the one whose two
    /// boottime readings lie closest together, which bounds the error.
    pub fn resample(&mut self) {
        use rustix::time::{ClockId, clock_gettime};
        let nanos = |t: rustix::time::Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..3 {
            let before = nanos(clock_gettime(ClockId::Boottime));
            let real = nanos(clock_gettime(ClockId::Realtime));
            let after = nanos(clock_gettime(ClockId::Boottime));
            let width = after - before;
            let offset = real - (before + width / 2);
            if best.is_none_or(|(best_width, _)| width < best_width) {
                best = Some((width, offset));
            }
        }
        self.offset_ns = best.map_or(0, |(_, offset)| offset);
    }

    /// Returns the wall-clock time of a `CLOCK_BOOTTIME` stamp.
    pub fn to_system_time(&self, boot_ns: u64) -> SystemTime {
        let real = i128::from(boot_ns) + self.offset_ns;
        if real >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_nanos(real as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_nanos(real.unsigned_abs() as u64)
        }
    }
}

impl Default for BootClock {
    fn default() -> Self {
        BootClock::new()
    }
}

/// Reads events from the ring buffer and the loss counters.
///
/// Blocking callers use [`EventReader::wait`]; async callers wrap the reader
/// in `tokio::io::unix::AsyncFd`, which works because it implements `AsRawFd`.
/// Either way, drain at least every [`POLL_INTERVAL`](super::POLL_INTERVAL):
/// records below the wakeup threshold do not make the fd readable.
pub struct EventReader {
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
}

impl EventReader {
    pub(crate) fn new(ring: RingBuf<MapData>, counters: PerCpuArray<MapData, u64>) -> EventReader {
        EventReader { ring, counters }
    }

    /// Decodes every record available now and passes it to `handle`;
    /// returns the number of records. A record that fails to decode is
    /// logged and skipped.
    pub fn drain(&mut self, mut handle: impl FnMut(Event)) -> usize {
        let mut records = 0;
        while let Some(item) = self.ring.next() {
            records += 1;
            match decode(&item) {
                Ok(event) => handle(event),
                Err(err) => log::warn!("skipping an event record: {err}"),
            }
        }
        records
    }

    /// Waits until the reader is woken or `timeout` passes; returns whether
    /// it was woken. Records below the wakeup threshold do not wake it, so
    /// drain after a timeout too, and wait no longer than
    /// [`POLL_INTERVAL`](super::POLL_INTERVAL) at a time.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut fds = [PollFd::new(&self.ring, PollFlags::IN)];
        let timeout = rustix::time::Timespec::try_from(timeout).map_err(io::Error::other)?;
        let ready = poll(&mut fds, Some(&timeout)).map_err(io::Error::from)?;
        Ok(ready > 0)
    }

    /// Reads the in-kernel counters, summed over CPUs.
    pub fn counters(&self) -> io::Result<Counters> {
        let sum = |index: u32| -> io::Result<u64> {
            let values = self.counters.get(&index, 0).map_err(io::Error::other)?;
            Ok(values.iter().sum())
        };
        Ok(Counters {
            lost_events: sum(counter::LOST_EVENTS)?,
            pending_map_full: sum(counter::PENDING_MAP_FULL)?,
            read_failed: sum(counter::READ_FAILED)?,
        })
    }
}

impl AsRawFd for EventReader {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl AsFd for EventReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

/// Shows an event as one line of text, for debugging and hand checks.
///
/// The command name is escaped (`\xNN` for bytes outside printable ASCII),
/// so no process can forge a line.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = &self.task;
        write!(
            f,
            "{boot_ns} {kind} tgid={tgid} tid={tid} ppid={ppid} uid={uid} euid={euid} comm=\"{comm}\"",
            boot_ns = self.boot_ns,
            kind = self.kind().name(),
            tgid = task.tgid,
            tid = task.tid,
            ppid = task.ppid,
            uid = task.uid,
            euid = task.euid,
            comm = task.comm.escape_ascii(),
        )?;
        if let Some(nr) = self.syscall_nr {
            write!(f, " nr={nr}")?;
        }
        match &self.detail {
            Detail::Fork {
                creator_tgid,
                creator_tid,
                creator_namespaces,
            } => {
                write!(f, " creator={creator_tgid}/{creator_tid}")?;
                write!(f, " changed=")?;
                let mut first = true;
                for slot in 0..LINK_SLOTS {
                    if self.namespaces.slot(slot) != creator_namespaces.slot(slot) {
                        write!(f, "{}{}", if first { "" } else { "," }, slot_name(slot))?;
                        first = false;
                    }
                }
            }
            Detail::Unshare { flags } => write!(f, " flags={flags:#x}")?,
            Detail::Setns { fd, nstype } => write!(f, " fd={fd} nstype={nstype:#x}")?,
            Detail::Exec { old_tid } => write!(f, " old_tid={old_tid}")?,
            Detail::Exit { group_dead } => write!(f, " group_dead={group_dead}")?,
            Detail::Mount { flags, ret, .. } => write!(f, " flags={flags:#x} ret={ret}")?,
            Detail::FreeInum { inode } => write!(f, " inode={inode}")?,
        }
        for slot in 0..LINK_SLOTS {
            if let Some(ns) = self.namespaces.slot(slot) {
                write!(f, " {}={}", slot_name(slot), ns.inode)?;
                if let Some(id) = ns.id {
                    write!(f, "#{id}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_event(kind: EventKind) -> RawEvent {
        let mut ns = TaskNamespaces::default();
        ns.inum[NsType::Net.index()] = 4026531840;
        ns.id[NsType::Net.index()] = 7;
        RawEvent {
            kind: kind as u32,
            syscall_nr: 272,
            boot_ns: 5,
            tgid: 10,
            tid: 11,
            ppid: 1,
            uid: 0,
            euid: 0,
            aux: 0,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
            args: [0x4000_0000, 0],
            ret: 0,
            ns,
        }
    }

    fn bytes_of<T>(value: &T) -> &[u8] {
        // SAFETY: reading the bytes of a #[repr(C)] record without padding.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
    }

    #[test]
    fn unshare_record_decodes() {
        let raw = raw_event(EventKind::Unshare);
        let event = decode(bytes_of(&raw)).unwrap();
        assert_eq!(event.detail, Detail::Unshare { flags: 0x4000_0000 });
        assert_eq!(event.task.comm, b"unshare");
        assert_eq!(event.syscall_nr, Some(272));
        let net = event.namespaces.get(NsType::Net).expect("net link");
        assert_eq!(
            net,
            NsRef {
                inode: 4026531840,
                id: Some(7)
            }
        );
        assert_eq!(event.namespaces.get(NsType::Uts), None);
    }

    #[test]
    fn free_inum_record_decodes() {
        let mut raw = raw_event(EventKind::FreeInum);
        raw.syscall_nr = -1;
        raw.args = [0, 0];
        raw.ns = TaskNamespaces::default();
        // Inode numbers from the proc allocator start at 0xF0000000, above
        // i32::MAX, so a sign mix-up would show here.
        raw.aux = 0xF000_01A2;
        raw.comm = *b"kworker/0:1\0\0\0\0\0";

        let event = decode(bytes_of(&raw)).unwrap();
        assert_eq!(event.kind(), EventKind::FreeInum);
        assert_eq!(event.detail, Detail::FreeInum { inode: 0xF000_01A2 });
        assert_eq!(event.syscall_nr, None);
        assert_eq!(event.namespaces, NsLinks::default());
        assert_eq!(event.task.comm, b"kworker/0:1");
        assert!(event.to_string().contains("free_inum"), "{event}");
        assert!(event.to_string().contains("inode=4026532258"), "{event}");
    }

    #[test]
    fn fork_record_needs_full_length() {
        let raw = raw_event(EventKind::Fork);
        let err = decode(bytes_of(&raw)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                len: size_of::<RawEvent>(),
                expected: size_of::<RawForkEvent>()
            }
        );
    }

    fn links(inodes: &[(NsType, u64)], pid_for_children: u64, time_for_children: u64) -> NsLinks {
        let mut links = NsLinks::default();
        for &(ty, inode) in inodes {
            links.member[ty.index()] = Some(NsRef { inode, id: None });
        }
        links.pid_for_children = Some(NsRef {
            inode: pid_for_children,
            id: None,
        });
        links.time_for_children = Some(NsRef {
            inode: time_for_children,
            id: None,
        });
        links
    }

    #[test]
    fn clone_flags_from_new_namespaces() {
        let creator = links(&[(NsType::Net, 1), (NsType::Pid, 2), (NsType::Time, 3)], 2, 3);
        let child = links(&[(NsType::Net, 10), (NsType::Pid, 20), (NsType::Time, 30)], 20, 30);
        let expected = NsType::Net.clone_flag() | NsType::Pid.clone_flag() | NsType::Time.clone_flag();
        assert_eq!(derived_clone_flags(&child, &creator), expected);
    }

    #[test]
    fn clone_flags_skip_prepared_namespaces() {
        // The creator unshared pid and time namespaces for its children.
        let creator = links(&[(NsType::Pid, 2), (NsType::Time, 3)], 20, 30);
        let child = links(&[(NsType::Pid, 20), (NsType::Time, 30)], 20, 30);
        assert_eq!(derived_clone_flags(&child, &creator), 0);
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut raw = raw_event(EventKind::Exit);
        raw.kind = 99;
        assert_eq!(decode(bytes_of(&raw)).unwrap_err(), DecodeError::UnknownKind(99));
    }

    #[test]
    fn boot_clock_is_near_now() {
        let clock = BootClock::new();
        let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let boot_ns = boot.tv_sec as u64 * 1_000_000_000 + boot.tv_nsec as u64;
        let wall = clock.to_system_time(boot_ns);
        let skew = SystemTime::now()
            .duration_since(wall)
            .unwrap_or_else(|err| err.duration());
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
    }
}
