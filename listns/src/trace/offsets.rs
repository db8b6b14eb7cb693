//! Struct offsets for the eBPF programs, resolved from the running kernel's
//! BTF at start-up.
//!
//! Rust eBPF has no CO-RE relocations, and the layout of `task_struct`,
//! `nsproxy` and the namespace structs changes between kernel versions and
//! configurations, so no offset is compiled in. The result is written into
//! the programs' read-only data before they are loaded (see `load.rs`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use listns_common::NsType;
use listns_common::trace::{KernelOffsets, LINK_SLOTS, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN};

use super::btf::{Btf, Kind};

/// Path of the running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Reads `/sys/kernel/btf/vmlinux` and resolves every offset.
pub fn from_running_kernel() -> Result<KernelOffsets> {
    let btf = Btf::from_file(Path::new(VMLINUX_BTF))?;
    resolve(&btf)
}

/// Expected type of a member, so that its size can be checked.
#[derive(Clone, Copy)]
enum Expect {
    Pointer,
    /// An integer, or a struct wrapping one (`atomic_t`, `kuid_t`), of this size.
    Scalar(u32),
    /// A `char` array of at least this many bytes.
    Bytes(u32),
    /// Anything: only the offset is used.
    Any,
}

/// Looks up struct members by name and checks their sizes.
struct Resolver<'a> {
    btf: &'a Btf,
}

impl Resolver<'_> {
    fn composite(&self, name: &str, meaning: &str) -> Result<u32> {
        self.btf.find_composite(name).with_context(|| {
            format!("struct {name} ({meaning}) is missing from the kernel's BTF; live tracing needs it")
        })
    }

    /// Returns the byte offset of `member` in struct `name`, or `None` when
    /// the struct or member is absent (for optional kernel features).
    fn optional(&self, name: &str, member: &str, expect: Expect) -> Result<Option<u32>> {
        let Some(id) = self.btf.find_composite(name) else {
            return Ok(None);
        };
        let Some(found) = self.btf.member(id, member)? else {
            return Ok(None);
        };
        let size = self.btf.size_of(found.type_id)?;
        let kind = self.btf.kind(found.type_id)?;
        let ok = match expect {
            Expect::Pointer => kind == Kind::Pointer,
            Expect::Scalar(expected) => size == expected && kind != Kind::Pointer,
            Expect::Bytes(min) => kind == Kind::Array && size >= min,
            Expect::Any => true,
        };
        if !ok {
            let expected = match expect {
                Expect::Pointer => "a pointer".to_owned(),
                Expect::Scalar(n) => format!("a {n}-byte value"),
                Expect::Bytes(n) => format!("an array of at least {n} bytes"),
                Expect::Any => unreachable!("Expect::Any accepts every type"),
            };
            bail!(
                "{name}.{member} in the kernel's BTF is {kind:?} of {size} bytes, expected {expected}; \
                 listns does not support this kernel's layout"
            );
        }
        Ok(Some(found.offset))
    }

    /// Returns the byte offset of a member the programs cannot do without.
    fn required(&self, name: &str, member: &str, expect: Expect, meaning: &str) -> Result<u32> {
        self.composite(name, meaning)?;
        self.optional(name, member, expect)?.with_context(|| {
            format!("{name}.{member} ({meaning}) is missing from the kernel's BTF; live tracing needs it")
        })
    }

    fn size(&self, name: &str, meaning: &str) -> Result<u32> {
        let id = self.composite(name, meaning)?;
        Ok(self.btf.size_of(id)?)
    }
}

/// For each link slot: the `struct nsproxy` member that points to the
/// namespace (`None` for user and pid, which live elsewhere), and the struct
/// that embeds its `struct ns_common ns`.
const SLOT_SOURCES: [(Option<&str>, &str); LINK_SLOTS] = {
    let mut table = [(None, ""); LINK_SLOTS];
    table[NsType::Cgroup.index()] = (Some("cgroup_ns"), "cgroup_namespace");
    table[NsType::Ipc.index()] = (Some("ipc_ns"), "ipc_namespace");
    table[NsType::Mnt.index()] = (Some("mnt_ns"), "mnt_namespace");
    table[NsType::Net.index()] = (Some("net_ns"), "net");
    table[NsType::Pid.index()] = (None, "pid_namespace");
    table[NsType::Time.index()] = (Some("time_ns"), "time_namespace");
    table[NsType::User.index()] = (None, "user_namespace");
    table[NsType::Uts.index()] = (Some("uts_ns"), "uts_namespace");
    table[SLOT_PID_FOR_CHILDREN] = (Some("pid_ns_for_children"), "pid_namespace");
    table[SLOT_TIME_FOR_CHILDREN] = (Some("time_ns_for_children"), "time_namespace");
    table
};

/// Namespace types that a kernel may be built without. The others exist on
/// every kernel listns supports.
fn slot_is_optional(slot: usize) -> bool {
    slot == NsType::Time.index() || slot == SLOT_TIME_FOR_CHILDREN || slot == NsType::Cgroup.index()
}

/// Resolves every offset the eBPF programs read.
pub fn resolve(btf: &Btf) -> Result<KernelOffsets> {
    let r = Resolver { btf };
    let task = "task_struct";
    let mut offsets = KernelOffsets {
        task_pid: r.required(task, "pid", Expect::Scalar(4), "thread id")?,
        task_tgid: r.required(task, "tgid", Expect::Scalar(4), "process id")?,
        task_real_parent: r.required(task, "real_parent", Expect::Pointer, "parent process")?,
        task_comm: r.required(task, "comm", Expect::Bytes(16), "command name")?,
        task_nsproxy: r.required(task, "nsproxy", Expect::Pointer, "the task's namespaces")?,
        task_real_cred: r.required(
            task,
            "real_cred",
            Expect::Pointer,
            "credentials with the user namespace",
        )?,
        task_thread_pid: r.required(
            task,
            "thread_pid",
            Expect::Pointer,
            "the pid that gives the active pid namespace",
        )?,
        task_signal: r.required(task, "signal", Expect::Pointer, "thread-group state")?,
        signal_live: r.required(
            "signal_struct",
            "live",
            Expect::Scalar(4),
            "count of live threads, to spot a group's last exit",
        )?,
        cred_uid: r.required("cred", "uid", Expect::Scalar(4), "real UID")?,
        cred_euid: r.required("cred", "euid", Expect::Scalar(4), "effective UID")?,
        cred_user_ns: r.required("cred", "user_ns", Expect::Pointer, "the task's user namespace")?,
        pid_level: r.required("pid", "level", Expect::Scalar(4), "depth of the pid namespace")?,
        pid_numbers: r.required("pid", "numbers", Expect::Any, "the pid's number in each pid namespace")?,
        upid_size: r.size("upid", "one pid number with its namespace")?,
        upid_ns: r.required("upid", "ns", Expect::Pointer, "the pid namespace of a pid number")?,
        ns_common_inum: r.required(
            "ns_common",
            "inum",
            Expect::Scalar(4),
            "the namespace's nsfs inode number",
        )?,
        ns_common_ns_id: 0,
        nsproxy_member: [0; LINK_SLOTS],
        ns_common_in: [0; LINK_SLOTS],
        slots_present: 0,
        ..KernelOffsets::PLACEHOLDER
    };
    resolve_iterator_offsets(&r, &mut offsets)?;

    // ns_common.ns_id appeared in Linux 6.18; events carry id 0 before that.
    if let Some(offset) = r.optional("ns_common", "ns_id", Expect::Scalar(8))? {
        offsets.ns_common_ns_id = offset;
        offsets.has_ns_id = 1;
    }

    r.composite("nsproxy", "the namespaces a task shares with its children")?;
    for (slot, (nsproxy_member, ns_struct)) in SLOT_SOURCES.into_iter().enumerate() {
        let name = listns_common::trace::slot_name(slot);
        let member = match nsproxy_member {
            Some(member) => r.optional("nsproxy", member, Expect::Pointer)?,
            None => Some(0),
        };
        let ns = r.optional(ns_struct, "ns", Expect::Any)?;
        match (member, ns) {
            (Some(member), Some(ns)) => {
                offsets.nsproxy_member[slot] = member;
                offsets.ns_common_in[slot] = ns;
                offsets.slots_present |= 1 << slot;
            }
            _ if slot_is_optional(slot) => {
                log::info!(
                    "the kernel has no {name} namespaces (struct {ns_struct} or its nsproxy member is missing); events report inode 0 for them"
                );
            }
            _ => bail!(
                "struct {ns_struct}.ns or nsproxy.{} is missing from the kernel's BTF; listns cannot read {name} namespaces on this kernel",
                nsproxy_member.unwrap_or("-")
            ),
        }
    }
    Ok(offsets)
}

/// Resolves the offsets that only the BPF iterators read: task flags and
/// cgroup, and the file, inode, socket and tun structs behind an fd.
fn resolve_iterator_offsets(r: &Resolver<'_>, offsets: &mut KernelOffsets) -> Result<()> {
    let task = "task_struct";
    offsets.task_flags = r.required(task, "flags", Expect::Scalar(4), "PF_* flags")?;
    offsets.task_exit_state = r.required(task, "exit_state", Expect::Scalar(4), "zombie state")?;
    offsets.task_cgroups = r.required(task, "cgroups", Expect::Pointer, "the task's css_set")?;
    offsets.css_set_dfl_cgrp = r.required("css_set", "dfl_cgrp", Expect::Pointer, "the cgroup v2 cgroup")?;
    offsets.cgroup_kn = r.required("cgroup", "kn", Expect::Pointer, "the cgroup's kernfs node")?;
    offsets.kernfs_node_id = r.required("kernfs_node", "id", Expect::Scalar(8), "the cgroup id")?;
    offsets.pid_ns_child_reaper = r.required(
        "pid_namespace",
        "child_reaper",
        Expect::Pointer,
        "the init process of a pid namespace",
    )?;
    offsets.file_f_inode = r.required("file", "f_inode", Expect::Pointer, "the inode of an open file")?;
    offsets.file_private_data = r.required("file", "private_data", Expect::Pointer, "the socket of a file")?;
    offsets.inode_i_mode = r.required("inode", "i_mode", Expect::Scalar(2), "the file type")?;
    offsets.inode_i_rdev = r.required("inode", "i_rdev", Expect::Scalar(4), "the device number")?;
    offsets.inode_i_ino = r.required("inode", "i_ino", Expect::Scalar(8), "the inode number")?;
    offsets.inode_i_sb = r.required("inode", "i_sb", Expect::Pointer, "the file system")?;
    offsets.inode_i_private = r.required("inode", "i_private", Expect::Pointer, "the namespace of an nsfs inode")?;
    offsets.super_block_s_magic = r.required("super_block", "s_magic", Expect::Scalar(8), "the file system type")?;
    offsets.socket_sk = r.required("socket", "sk", Expect::Pointer, "the sock of a socket")?;
    let common = r.required("sock", "__sk_common", Expect::Any, "the common part of a sock")?;
    let net = r.required("sock_common", "skc_net", Expect::Any, "the socket's network namespace")?;
    offsets.sock_net = common + net;

    offsets.task_mm = r.required(task, "mm", Expect::Pointer, "the process's memory map")?;
    offsets.mm_arg_start = r.required(
        "mm_struct",
        "arg_start",
        Expect::Scalar(8),
        "where the command line starts",
    )?;
    offsets.mm_arg_end = r.required("mm_struct", "arg_end", Expect::Scalar(8), "where the command line ends")?;

    // ns_common.ns_type appeared in Linux 6.18; before, user space reads the
    // type of an nsfs fd through /proc.
    if let Some(offset) = r.optional("ns_common", "ns_type", Expect::Scalar(4))? {
        offsets.ns_common_ns_type = offset;
        offsets.has_ns_type = 1;
    }

    // The tun driver's structs are in vmlinux BTF only when tun is built in.
    // As a module its BTF is separate, and the fd iterator then reports tun
    // fds without their namespace, which user space asks the fd for.
    let tun = (
        r.optional("tun_file", "tun", Expect::Pointer)?,
        r.optional("tun_struct", "dev", Expect::Pointer)?,
        r.optional("net_device", "nd_net", Expect::Any)?,
    );
    if let (Some(tun_file_tun), Some(tun_struct_dev), Some(net_device_nd_net)) = tun {
        offsets.tun_file_tun = tun_file_tun;
        offsets.tun_struct_dev = tun_struct_dev;
        offsets.net_device_nd_net = net_device_nd_net;
        offsets.has_tun = 1;
    } else {
        log::info!(
            "the kernel's BTF lacks the tun driver's structs, as when tun is a module; the fd iterator reports \
             tun fds without their network namespace, which listns then asks each fd for"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_offsets_resolve() {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: {VMLINUX_BTF} is missing");
            return;
        }
        let offsets = from_running_kernel().unwrap();
        // Every kernel listns supports has these slots.
        for ty in [
            NsType::Ipc,
            NsType::Mnt,
            NsType::Net,
            NsType::Pid,
            NsType::User,
            NsType::Uts,
        ] {
            assert_ne!(offsets.slots_present & (1 << ty.index()), 0, "{ty:?} slot missing");
        }
        assert_ne!(offsets.task_nsproxy, 0);
        assert_ne!(offsets.task_pid, offsets.task_tgid);
        assert!(offsets.upid_size >= 12, "struct upid is int + pointer");
    }
}
