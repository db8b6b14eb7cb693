//! Types shared by the kernel-side and user-space parts of listns.
//!
//! This crate is `no_std` so that the eBPF programs can use the same namespace
//! type numbering as user space. [`trace`] defines the records that the eBPF
//! programs write to the ring buffer and the kernel offsets they read;
//! [`iter`] defines the records of the BPF iterators.
#![no_std]

pub mod iter;
pub mod trace;

/// Kind of a Linux namespace, in the order of `/proc/PID/ns` listings.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsType {
    Cgroup = 0,
    Ipc = 1,
    Mnt = 2,
    Net = 3,
    Pid = 4,
    Time = 5,
    User = 6,
    Uts = 7,
}

impl NsType {
    /// Every namespace type, in index order.
    pub const ALL: [NsType; 8] = [
        NsType::Cgroup,
        NsType::Ipc,
        NsType::Mnt,
        NsType::Net,
        NsType::Pid,
        NsType::Time,
        NsType::User,
        NsType::Uts,
    ];

    /// Returns the name the kernel uses in `/proc/PID/ns` and in nsfs link text.
    pub const fn name(self) -> &'static str {
        match self {
            NsType::Cgroup => "cgroup",
            NsType::Ipc => "ipc",
            NsType::Mnt => "mnt",
            NsType::Net => "net",
            NsType::Pid => "pid",
            NsType::Time => "time",
            NsType::User => "user",
            NsType::Uts => "uts",
        }
    }

    /// Returns the `CLONE_NEW*` flag of this type, as `clone`, `unshare`,
    /// `setns` and `NS_GET_NSTYPE` use it.
    pub const fn clone_flag(self) -> u32 {
        match self {
            NsType::Cgroup => 0x0200_0000,
            NsType::Ipc => 0x0800_0000,
            NsType::Mnt => 0x0002_0000,
            NsType::Net => 0x4000_0000,
            NsType::Pid => 0x2000_0000,
            NsType::Time => 0x0000_0080,
            NsType::User => 0x1000_0000,
            NsType::Uts => 0x0400_0000,
        }
    }

    /// Returns the fixed inode number of the initial namespace of this type.
    ///
    /// The kernel reserves 0xEFFFFFFx for initial namespaces (`PROC_*_INIT_INO`)
    /// and allocates every other nsfs inode from 0xF0000000 upwards, so a
    /// match is unambiguous. Net and mnt got fixed numbers only in Linux 6.18;
    /// on older kernels their initial namespaces have dynamic numbers.
    pub const fn initial_inode(self) -> u64 {
        match self {
            NsType::Ipc => 0xEFFF_FFFF,
            NsType::Uts => 0xEFFF_FFFE,
            NsType::User => 0xEFFF_FFFD,
            NsType::Pid => 0xEFFF_FFFC,
            NsType::Cgroup => 0xEFFF_FFFB,
            NsType::Time => 0xEFFF_FFFA,
            NsType::Net => 0xEFFF_FFF9,
            NsType::Mnt => 0xEFFF_FFF8,
        }
    }

    /// Returns the type with this `/proc/PID/ns` name.
    pub fn from_name(name: &str) -> Option<NsType> {
        NsType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Returns the type with this `CLONE_NEW*` flag.
    pub fn from_clone_flag(flag: u32) -> Option<NsType> {
        NsType::ALL.into_iter().find(|t| t.clone_flag() == flag)
    }

    /// Returns the index of this type in [`NsType::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::NsType;

    #[test]
    fn type_names_round_trip() {
        for t in NsType::ALL {
            assert_eq!(NsType::from_name(t.name()), Some(t));
            assert_eq!(NsType::from_clone_flag(t.clone_flag()), Some(t));
            assert_eq!(NsType::ALL[t.index()], t);
        }
    }

    #[test]
    fn initial_inodes_are_distinct() {
        for a in NsType::ALL {
            for b in NsType::ALL {
                if a != b {
                    assert_ne!(a.initial_inode(), b.initial_inode(), "{a:?} vs {b:?}");
                }
            }
        }
    }
}
