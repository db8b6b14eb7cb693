//! Container detection from the cgroup paths in `/proc/PID/cgroup`.
//!
//! Container runtimes name the cgroups they create after the container, so a
//! task's cgroup path identifies the runtime and the container. Only the names
//! that runtimes create by default are recognized. A container started with a
//! custom cgroup parent that drops those names (for example Amazon ECS
//! `/ecs/<task>/<id>` or containerd's `/<namespace>/<id>`) is reported as no
//! container.
//!
//! When runtimes nest, for example Docker inside an LXC container or
//! Kubernetes inside Docker ("kind"), the innermost container wins, because
//! that is the one whose namespaces the task uses.

/// Container runtime that manages a task's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    Lxc,
    Nspawn,
}

impl Runtime {
    /// Short lowercase name used in JSON and tags: "docker", "containerd", "cri-o", "podman", "lxc", "systemd-nspawn".
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::Nspawn => "systemd-nspawn",
        }
    }
}

/// Container that a task runs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Container {
    pub runtime: Runtime,
    /// Container id (64 hex digits for docker/containerd/cri-o/podman) or container/machine name (lxc, nspawn).
    pub id: String,
    /// Kubernetes pod UID (with dashes, as the API server shows it) when the cgroup path is under kubepods.
    ///
    /// NOTE: for a static pod this is the MD5 hash (32 hex digits) that the
    /// kubelet computes from the manifest, its file path and the node name.
    /// The API server shows that value in the mirror pod's
    /// `kubernetes.io/config.mirror` annotation, not as its `metadata.uid`.
    pub pod_uid: Option<String>,
}

impl Container {
    /// Tag for human output: "k8s" when pod_uid is set, else the runtime's short tag: "docker", "containerd", "crio", "podman", "lxc", "nspawn".
    pub fn tag(&self) -> &'static str {
        if self.pod_uid.is_some() {
            return "k8s";
        }
        match self.runtime {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "crio",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::Nspawn => "nspawn",
        }
    }
}

/// Parses the text of /proc/PID/cgroup (cgroup v1 lines `ID:controllers:/path`, v2 line `0::/path`, or hybrid) and returns the container, if any.
///
/// Lines that do not have the form `ID:controllers:/path` are skipped. When
/// lines name different containers, the choice does not depend on line order.
/// A container with a pod UID wins over one without, then the container whose
/// cgroup lies deeper in its hierarchy, then the greater `(runtime, id)`.
pub fn container_from_cgroup(text: &str) -> Option<Container> {
    text.lines()
        .filter_map(path_from_cgroup_line)
        .filter_map(find_container)
        .max_by(|left, right| left.rank().cmp(&right.rank()))
        .map(|found| found.container)
}

/// Same, for one cgroup path.
///
/// The path is the third field of a `/proc/PID/cgroup` line, without the
/// ` (deleted)` suffix that the kernel appends for a removed cgroup.
pub fn container_from_path(path: &str) -> Option<Container> {
    find_container(path).map(|found| found.container)
}

/// Number of hex digits in the container ids that Docker, containerd, CRI-O
/// and Podman generate (32 random bytes).
const CONTAINER_ID_LEN: usize = 64;

/// Name prefixes of the cgroups that runtimes create for a container, followed
/// by the container id and, for a systemd scope, `.scope`.
///
/// CRI-O and Podman use the same `crio-<id>` and `libpod-<id>` names with the
/// cgroupfs driver, without `.scope`.
const ID_PREFIXES: [(&str, Runtime); 5] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    // nerdctl with the systemd driver. With cgroupfs it uses `/<namespace>/<id>`, which is not recognized.
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

/// Container found in one cgroup path.
struct Found {
    container: Container,
    /// Index of the path component that names the container.
    depth: usize,
}

impl Found {
    /// Sort key for the lines of a hybrid cgroup file. The greatest key marks
    /// the most specific container.
    fn rank(&self) -> (bool, usize, Runtime, &str, Option<&str>) {
        (
            self.container.pod_uid.is_some(),
            self.depth,
            self.container.runtime,
            &self.container.id,
            self.container.pod_uid.as_deref(),
        )
    }
}

/// Returns the path of a `/proc/PID/cgroup` line, or `None` if the line is malformed.
fn path_from_cgroup_line(line: &str) -> Option<&str> {
    // The path is the last field, and cgroup names may contain ':'.
    let mut fields = line.splitn(3, ':');
    let hierarchy_id = fields.next()?;
    let _controllers = fields.next()?;
    let path = fields.next()?;

    if hierarchy_id.is_empty() || !hierarchy_id.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }

    // The kernel appends " (deleted)" on the unified hierarchy when the cgroup
    // was removed before the task was reaped. The path still names the container.
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.starts_with('/').then_some(path)
}

/// Finds the innermost container named by a cgroup path.
fn find_container(path: &str) -> Option<Found> {
    let components: Vec<&str> = path.split('/').filter(|name| !name.is_empty()).collect();

    // Scan every component and keep the last match, because a container
    // nested in another one has the deeper cgroup. Components below the
    // container's own cgroup (`init.scope`, `container`, `payload`) are the
    // container's sub-cgroups.
    let mut innermost = None;
    for depth in 0..components.len() {
        let Some((runtime, id)) = match_component(&components, depth) else {
            continue;
        };
        let container = Container {
            runtime,
            id,
            pod_uid: pod_uid_above(&components[..depth]),
        };
        innermost = Some(Found { container, depth });
    }
    innermost
}

/// Returns the runtime and container id if `components[index]` is the cgroup
/// of a container.
fn match_component(components: &[&str], index: usize) -> Option<(Runtime, String)> {
    let name = components[index];
    let parent = index.checked_sub(1).map(|parent| components[parent]);
    let child = components.get(index + 1).copied();

    if let Some(found) = match_prefixed_id(name) {
        return Some(found);
    }

    if is_container_id(name) {
        // Docker with the cgroupfs driver: `/docker/<id>`.
        if parent == Some("docker") {
            return Some((Runtime::Docker, name.to_owned()));
        }
        // A bare id under a pod cgroup comes from the kubelet's cgroupfs
        // driver, which containerd and Docker (dockershim) both use.
        // NOTE: the path does not tell them apart, so a bare id is reported as
        // containerd, the usual runtime since Kubernetes 1.24 removed dockershim.
        if pod_uid_above(&components[..index]).is_some() {
            return Some((Runtime::Containerd, name.to_owned()));
        }
    }

    if let Some(name) = match_lxc(name, parent) {
        return Some((Runtime::Lxc, name));
    }
    if let Some(name) = match_nspawn(name, child) {
        return Some((Runtime::Nspawn, name));
    }
    None
}

/// Matches `<prefix><id>` and `<prefix><id>.scope` for the prefixes in [`ID_PREFIXES`].
fn match_prefixed_id(name: &str) -> Option<(Runtime, String)> {
    let name = name.strip_suffix(".scope").unwrap_or(name);
    for (prefix, runtime) in ID_PREFIXES {
        // The conmon monitors of Podman and CRI-O run in `libpod-conmon-<id>`
        // and `crio-conmon-<id>`. They are not the container, and the id check
        // rejects them because "conmon-<id>" is not a hex id.
        if let Some(id) = name.strip_prefix(prefix)
            && is_container_id(id)
        {
            return Some((runtime, id.to_owned()));
        }
    }
    None
}

/// Returns the LXC container name for the payload cgroup of a container.
///
/// LXC before 3.1 uses `/lxc/<name>`. LXC 3.1 and 3.2 split it into
/// `/lxc.payload/<name>` and `/lxc.monitor/<name>`, and LXC 4.0 and later use
/// `/lxc.payload.<name>` and `/lxc.monitor.<name>`. LXD and Incus run their
/// containers through liblxc and get the same names. The monitor cgroups
/// contain the LXC monitor process, not the container, so they never match.
fn match_lxc(name: &str, parent: Option<&str>) -> Option<String> {
    if let Some(container) = name.strip_prefix("lxc.payload.") {
        return (!container.is_empty()).then(|| container.to_owned());
    }
    match parent {
        Some("lxc" | "lxc.payload") => Some(name.to_owned()),
        _ => None,
    }
}

/// Returns the machine name for the cgroup of a systemd-nspawn container.
///
/// `machinectl start` runs the container in `systemd-nspawn@<name>.service`.
/// A container started from a shell gets the scope `machine-<name>.scope` from
/// systemd-machined, which escapes `-` in the name as `\x2d`.
fn match_nspawn(name: &str, child: Option<&str>) -> Option<String> {
    if let Some(instance) = name
        .strip_prefix("systemd-nspawn@")
        .and_then(|rest| rest.strip_suffix(".service"))
    {
        // Inside its own service unit (--keep-unit), systemd-nspawn moves
        // itself to the `supervisor` sub-cgroup and the container to `payload`.
        if child == Some("supervisor") {
            return None;
        }
        return unescape_unit_name(instance);
    }

    let escaped = name.strip_prefix("machine-")?.strip_suffix(".scope")?;
    let machine = unescape_unit_name(escaped)?;
    // libvirt registers its guests with machined as `qemu-<id>-<name>` (a VM)
    // and `lxc-<pid>-<name>` (libvirt-lxc, not the LXC project).
    // NOTE: an nspawn machine whose name starts with "qemu-" or "lxc-" is
    // missed. A VM from systemd-vmspawn gets a `machine-<name>.scope` too and
    // is reported as an nspawn container.
    if machine.starts_with("qemu-") || machine.starts_with("lxc-") {
        return None;
    }
    Some(machine)
}

/// Returns the pod UID if the last of `ancestors` is a Kubernetes pod cgroup.
///
/// The kubelet's cgroupfs driver names it `pod<uid>` below a `kubepods`
/// cgroup. Its systemd driver names it `kubepods[-<qos>]-pod<uid>.slice`
/// (kind adds a `kubelet-` prefix) and writes `_` in place of each `-` of the
/// UID, because `-` separates the parent slices in a slice name.
fn pod_uid_above(ancestors: &[&str]) -> Option<String> {
    let (pod, above) = ancestors.split_last()?;

    if let Some(uid) = pod.strip_prefix("pod") {
        return above.contains(&"kubepods").then(|| parse_pod_uid(uid, '-')).flatten();
    }

    let slice = pod.strip_suffix(".slice")?;
    let (parents, last) = slice.rsplit_once('-')?;
    let uid = last.strip_prefix("pod")?;
    if !parents.split('-').any(|parent| parent == "kubepods") {
        return None;
    }
    parse_pod_uid(uid, '_')
}

/// Parses a pod UID whose groups are joined by `separator` and returns it with dashes.
///
/// Accepts the UUID form that the API server assigns and the 32 hex digits
/// that the kubelet computes for a static pod.
fn parse_pod_uid(uid: &str, separator: char) -> Option<String> {
    if uid.len() == 32 && is_lower_hex(uid) {
        return Some(uid.to_owned());
    }

    let groups: Vec<&str> = uid.split(separator).collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    if lengths != [8, 4, 4, 4, 12] || !groups.iter().all(|group| is_lower_hex(group)) {
        return None;
    }
    Some(groups.join("-"))
}

/// Checks for a full container id. The runtimes write lowercase hex, so an
/// uppercase digit means the name is something else.
fn is_container_id(name: &str) -> bool {
    name.len() == CONTAINER_ID_LEN && is_lower_hex(name)
}

fn is_lower_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Decodes the `\xNN` escapes of a systemd unit name. Returns `None` for an
/// empty result or one that is not UTF-8.
///
/// Any other backslash is kept as it is. systemd's escaping also turns `/`
/// into `-`, but machine names cannot contain `/`, so a `-` stays a `-`.
fn unescape_unit_name(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if let Some(byte) = decode_hex_escape(&bytes[index..]) {
            decoded.push(byte);
            index += 4;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }

    let decoded = String::from_utf8(decoded).ok()?;
    (!decoded.is_empty()).then_some(decoded)
}

/// Returns the byte of a `\xNN` escape at the start of `bytes`.
fn decode_hex_escape(bytes: &[u8]) -> Option<u8> {
    let [b'\\', b'x', high, low, ..] = *bytes else {
        return None;
    };
    let high = (high as char).to_digit(16)?;
    let low = (low as char).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "712281730cd4009c78ec746cf665d968ff9efa5c25df34af6e60b7a8ec210cf2";
    const ID_B: &str = "f7210a1f62df601805ccce0377f08d4112a9069078df473cdf4310b58eb9d820";
    const ID_C: &str = "f715f1aa8847905e4f4685ac00e7212fb3ebaa0fba996251a3a82c02606676b5";
    const UID: &str = "24d5fc38-1f87-4dd8-b349-08ec9e08204a";
    const UID_SYSTEMD: &str = "24d5fc38_1f87_4dd8_b349_08ec9e08204a";
    const STATIC_UID: &str = "042908e4559657e42e65e825b7662686";

    fn container(runtime: Runtime, id: &str) -> Option<Container> {
        Some(Container {
            runtime,
            id: id.to_owned(),
            pod_uid: None,
        })
    }

    fn pod_container(runtime: Runtime, id: &str, pod_uid: &str) -> Option<Container> {
        Some(Container {
            runtime,
            id: id.to_owned(),
            pod_uid: Some(pod_uid.to_owned()),
        })
    }

    /// Checks `container_from_path` on each path, and the same path as a v1
    /// line and as a v2 line through `container_from_cgroup`.
    fn check_paths(cases: &[(String, Option<Container>)]) {
        for (path, expected) in cases {
            assert_eq!(&container_from_path(path), expected, "path {path:?}");

            let v1_line = format!("4:memory:{path}\n");
            assert_eq!(&container_from_cgroup(&v1_line), expected, "cgroup text {v1_line:?}");

            let v2_line = format!("0::{path}\n");
            assert_eq!(&container_from_cgroup(&v2_line), expected, "cgroup text {v2_line:?}");
        }
    }

    #[test]
    fn test_ids_are_well_formed() {
        for id in [ID_A, ID_B, ID_C] {
            assert!(is_container_id(id), "test id {id:?} is not 64 lowercase hex digits");
        }
    }

    #[test]
    fn runtime_names_and_tags() {
        let cases = [
            (Runtime::Docker, "docker", "docker"),
            (Runtime::Containerd, "containerd", "containerd"),
            (Runtime::CriO, "cri-o", "crio"),
            (Runtime::Podman, "podman", "podman"),
            (Runtime::Lxc, "lxc", "lxc"),
            (Runtime::Nspawn, "systemd-nspawn", "nspawn"),
        ];
        for (runtime, name, tag) in cases {
            assert_eq!(runtime.name(), name, "name of {runtime:?}");

            let plain = container(runtime, "c1").unwrap();
            assert_eq!(plain.tag(), tag, "tag of {plain:?}");

            let in_pod = pod_container(runtime, "c1", UID).unwrap();
            assert_eq!(in_pod.tag(), "k8s", "tag of {in_pod:?}");
        }
    }

    #[test]
    fn docker_v1_and_v2_paths() {
        check_paths(&[
            // cgroupfs driver, v1 and v2.
            (format!("/docker/{ID_A}"), container(Runtime::Docker, ID_A)),
            // systemd driver.
            (
                format!("/system.slice/docker-{ID_A}.scope"),
                container(Runtime::Docker, ID_A),
            ),
            // systemd inside a privileged container.
            (
                format!("/system.slice/docker-{ID_A}.scope/init.scope"),
                container(Runtime::Docker, ID_A),
            ),
            (
                format!("/docker/{ID_A}/system.slice/cron.service"),
                container(Runtime::Docker, ID_A),
            ),
            // Rootless Docker under the user's service manager.
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID_A}.scope"),
                container(Runtime::Docker, ID_A),
            ),
            // Docker in Docker: the inner container wins.
            (
                format!("/docker/{ID_A}/docker/{ID_B}"),
                container(Runtime::Docker, ID_B),
            ),
            // Docker in Kubernetes with the systemd driver (dockershim).
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/docker-{ID_A}.scope"
                ),
                pod_container(Runtime::Docker, ID_A, UID),
            ),
        ]);
    }

    #[test]
    fn containerd_v1_and_v2_paths() {
        check_paths(&[
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/cri-containerd-{ID_A}.scope"
                ),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID_A}.scope"
                ),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            // Guaranteed QoS has no QoS slice.
            (
                format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/cri-containerd-{ID_A}.scope"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            // Bare ids from the kubelet's cgroupfs driver.
            (
                format!("/kubepods/burstable/pod{UID}/{ID_A}"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/{ID_A}"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            (
                format!("/kubepods/pod{UID}/{ID_A}"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            // kind: the kubelet runs in a Docker container named by the outer path.
            (
                format!(
                    "/system.slice/docker-{ID_B}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID_A}.scope"
                ),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            (
                format!("/docker/{ID_B}/kubepods/burstable/pod{UID}/{ID_A}"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            // nerdctl with the systemd driver.
            (
                format!("/system.slice/nerdctl-{ID_A}.scope"),
                container(Runtime::Containerd, ID_A),
            ),
        ]);
    }

    #[test]
    fn crio_v1_and_v2_paths() {
        check_paths(&[
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/crio-{ID_A}.scope"
                ),
                pod_container(Runtime::CriO, ID_A, UID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/crio-{ID_A}.scope"),
                pod_container(Runtime::CriO, ID_A, UID),
            ),
            // crun's sub-cgroup for the container processes.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice/crio-{ID_A}.scope/container"
                ),
                pod_container(Runtime::CriO, ID_A, UID),
            ),
            // cgroupfs driver.
            (
                format!("/kubepods/burstable/pod{UID}/crio-{ID_A}"),
                pod_container(Runtime::CriO, ID_A, UID),
            ),
            (
                format!("/kubepods/pod{UID}/crio-{ID_A}"),
                pod_container(Runtime::CriO, ID_A, UID),
            ),
        ]);
    }

    #[test]
    fn podman_v1_and_v2_paths() {
        check_paths(&[
            (
                format!("/machine.slice/libpod-{ID_A}.scope"),
                container(Runtime::Podman, ID_A),
            ),
            (
                format!("/machine.slice/libpod-{ID_A}.scope/container"),
                container(Runtime::Podman, ID_A),
            ),
            // A container in a Podman pod.
            (
                format!("/machine.slice/machine-libpod_pod_{ID_B}.slice/libpod-{ID_A}.scope"),
                container(Runtime::Podman, ID_A),
            ),
            // Rootless.
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID_A}.scope/container"),
                container(Runtime::Podman, ID_A),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/user-libpod_pod_{ID_B}.slice/libpod-{ID_A}.scope"
                ),
                container(Runtime::Podman, ID_A),
            ),
            // cgroupfs driver.
            (
                format!("/libpod_parent/libpod-{ID_A}"),
                container(Runtime::Podman, ID_A),
            ),
        ]);
    }

    #[test]
    fn lxc_all_cgroup_layouts() {
        check_paths(&[
            // LXC before 3.1.
            ("/lxc/web1".to_owned(), container(Runtime::Lxc, "web1")),
            ("/lxc/web1/init.scope".to_owned(), container(Runtime::Lxc, "web1")),
            // LXC 3.1 and 3.2.
            ("/lxc.payload/web1".to_owned(), container(Runtime::Lxc, "web1")),
            // LXC 4.0 and later.
            ("/lxc.payload.web1".to_owned(), container(Runtime::Lxc, "web1")),
            (
                "/lxc.payload.web1/system.slice/ssh.service".to_owned(),
                container(Runtime::Lxc, "web1"),
            ),
            ("/lxc.payload.web1/.lxc".to_owned(), container(Runtime::Lxc, "web1")),
            // LXD instance in a non-default project.
            (
                "/lxc.payload.staging_web1".to_owned(),
                container(Runtime::Lxc, "staging_web1"),
            ),
            // Nested LXC: the inner container wins.
            (
                "/lxc.payload.outer/lxc.payload.inner".to_owned(),
                container(Runtime::Lxc, "inner"),
            ),
            // Docker inside LXC.
            (
                format!("/lxc.payload.web1/system.slice/docker-{ID_A}.scope"),
                container(Runtime::Docker, ID_A),
            ),
        ]);
    }

    #[test]
    fn nspawn_service_and_scope_paths() {
        check_paths(&[
            (
                "/machine.slice/systemd-nspawn@debian.service".to_owned(),
                container(Runtime::Nspawn, "debian"),
            ),
            (
                "/machine.slice/systemd-nspawn@debian.service/payload/system.slice/systemd-journald.service".to_owned(),
                container(Runtime::Nspawn, "debian"),
            ),
            (
                "/machine.slice/systemd-nspawn@fedora-40.service/payload".to_owned(),
                container(Runtime::Nspawn, "fedora-40"),
            ),
            (
                r"/machine.slice/systemd-nspawn@fedora\x2d40.service".to_owned(),
                container(Runtime::Nspawn, "fedora-40"),
            ),
            (
                "/machine.slice/machine-debian.scope".to_owned(),
                container(Runtime::Nspawn, "debian"),
            ),
            (
                r"/machine.slice/machine-fedora\x2d40.scope/payload".to_owned(),
                container(Runtime::Nspawn, "fedora-40"),
            ),
            (
                r"/machine.slice/machine-my\x2dbox\x2d1.scope/payload/init.scope".to_owned(),
                container(Runtime::Nspawn, "my-box-1"),
            ),
            // Podman inside an nspawn machine.
            (
                format!("/machine.slice/machine-debian.scope/payload/machine.slice/libpod-{ID_A}.scope"),
                container(Runtime::Podman, ID_A),
            ),
        ]);
    }

    #[test]
    fn pod_uid_forms() {
        check_paths(&[
            // Static pods get the kubelet's 32-digit hash as UID.
            (
                format!("/kubepods/burstable/pod{STATIC_UID}/{ID_A}"),
                pod_container(Runtime::Containerd, ID_A, STATIC_UID),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice/crio-{ID_A}.scope"
                ),
                pod_container(Runtime::CriO, ID_A, STATIC_UID),
            ),
            // A pod cgroup that is not the container's parent gives no UID.
            (
                format!("/kubepods/burstable/pod{UID}/{ID_A}/docker/{ID_B}"),
                container(Runtime::Docker, ID_B),
            ),
            // Sub-cgroups of the container do not hide the pod.
            (
                format!("/kubepods/besteffort/pod{UID}/{ID_A}/sub"),
                pod_container(Runtime::Containerd, ID_A, UID),
            ),
            // A UID with the wrong separator for its form gives no UID.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice/cri-containerd-{ID_A}.scope"
                ),
                container(Runtime::Containerd, ID_A),
            ),
            (
                format!("/kubepods/burstable/pod{UID_SYSTEMD}/crio-{ID_A}"),
                container(Runtime::CriO, ID_A),
            ),
            // A pod slice without "kubepods" is not a pod.
            (
                format!("/other.slice/other-pod{UID_SYSTEMD}.slice/crio-{ID_A}.scope"),
                container(Runtime::CriO, ID_A),
            ),
        ]);
    }

    #[test]
    fn host_paths_give_none() {
        let paths = [
            "/",
            "/init.scope",
            "/user.slice/user-1000.slice/session-2.scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service",
            "/system.slice/sshd.service",
            "/system.slice/docker.service",
            "/system.slice/containerd.service",
            "/system.slice/crio.service",
            "/system.slice/lxc@web1.service",
            "/system.slice/snap.lxd.daemon.service",
            "/machine.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
            // The pod's own cgroup, above its containers.
            "/kubepods/burstable/pod24d5fc38-1f87-4dd8-b349-08ec9e08204a",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod24d5fc38_1f87_4dd8_b349_08ec9e08204a.slice",
            // Path relative to the reader's cgroup namespace.
            "/../../system.slice/cron.service",
            "",
        ];
        for path in paths {
            check_paths(&[(path.to_owned(), None)]);
        }
    }

    #[test]
    fn monitor_cgroups_give_none() {
        check_paths(&[
            (format!("/machine.slice/libpod-conmon-{ID_A}.scope"), None),
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID_A}.scope"),
                None,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/crio-conmon-{ID_A}.scope"
                ),
                None,
            ),
            (format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID_A}"), None),
            ("/lxc.monitor.web1".to_owned(), None),
            ("/lxc.monitor/web1".to_owned(), None),
            ("/lxc.pivot".to_owned(), None),
            (
                "/machine.slice/systemd-nspawn@debian.service/supervisor".to_owned(),
                None,
            ),
            // A monitor inside a container belongs to that container.
            (
                "/lxc.payload.outer/lxc.monitor.inner".to_owned(),
                container(Runtime::Lxc, "outer"),
            ),
            (
                format!("/docker/{ID_A}/machine.slice/systemd-nspawn@debian.service/supervisor"),
                container(Runtime::Docker, ID_A),
            ),
        ]);
    }

    #[test]
    fn malformed_ids_give_none() {
        let truncated = &ID_A[..12];
        let short = &ID_A[..63];
        let long = format!("{ID_A}0");
        let uppercase = ID_A.to_uppercase();
        let non_hex = ID_A.replace('a', "g");
        let paths = [
            format!("/docker/{truncated}"),
            format!("/docker/{short}"),
            format!("/docker/{long}"),
            format!("/docker/{uppercase}"),
            format!("/docker/{non_hex}"),
            format!("/system.slice/docker-{truncated}.scope"),
            format!("/system.slice/docker-{non_hex}.scope"),
            format!("/system.slice/docker-{ID_A}.service"),
            format!("/system.slice/docker-{ID_A}.scope.extra"),
            format!("/machine.slice/libpod-{short}.scope"),
            format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/cri-containerd-{long}.scope"),
            format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/crio-{uppercase}.scope"),
            // A bare id needs a docker or pod parent.
            format!("/{ID_A}"),
            format!("/ecs/task1/{ID_A}"),
            format!("/kubepods/burstable/{ID_A}"),
            // Bare ids under malformed pod names.
            format!("/kubepods/burstable/pod24d5fc38-1f87-4dd8-b349/{ID_A}"),
            format!("/kubepods/burstable/pod24D5FC38-1f87-4dd8-b349-08ec9e08204a/{ID_A}"),
            format!("/kubepods/burstable/pod24d5fc381f874dd8b34908ec9e08204a00/{ID_A}"),
            format!("/kubepods/burstable/pod/{ID_A}"),
            // A pod directory outside kubepods.
            format!("/burstable/pod{UID}/{ID_A}"),
            // Empty names.
            "/lxc.payload.".to_owned(),
            "/machine.slice/systemd-nspawn@.service".to_owned(),
            "/machine.slice/machine-.scope".to_owned(),
            // libvirt guests registered with machined.
            r"/machine.slice/machine-qemu\x2d1\x2dubuntu.scope/libvirt/emulator".to_owned(),
            r"/machine.slice/machine-lxc\x2d4242\x2dweb.scope".to_owned(),
        ];
        for path in paths {
            check_paths(&[(path, None)]);
        }
    }

    #[test]
    fn cgroup_text_v1_docker() {
        let text = format!(
            "12:hugetlb:/docker/{ID_A}\n\
             11:memory:/docker/{ID_A}\n\
             10:cpu,cpuacct:/docker/{ID_A}\n\
             9:pids:/docker/{ID_A}\n\
             8:devices:/docker/{ID_A}\n\
             1:name=systemd:/docker/{ID_A}\n\
             0::/system.slice/containerd.service\n"
        );
        assert_eq!(
            container_from_cgroup(&text),
            container(Runtime::Docker, ID_A),
            "text {text:?}"
        );
    }

    #[test]
    fn cgroup_text_v2_kubernetes() {
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/cri-containerd-{ID_A}.scope\n"
        );
        assert_eq!(
            container_from_cgroup(&text),
            pod_container(Runtime::Containerd, ID_A, UID),
            "text {text:?}"
        );
    }

    #[test]
    fn hybrid_text_prefers_container() {
        let text = format!(
            "12:cpuset:/\n\
             11:memory:/system.slice/docker-{ID_A}.scope\n\
             1:name=systemd:/system.slice/docker-{ID_A}.scope\n\
             0::/\n"
        );
        assert_eq!(
            container_from_cgroup(&text),
            container(Runtime::Docker, ID_A),
            "text {text:?}"
        );
    }

    #[test]
    fn hybrid_text_prefers_pod() {
        // The pod wins although the Docker container lies deeper.
        let lines = [
            format!("4:memory:/docker/{ID_C}/docker/{ID_B}"),
            format!("1:name=systemd:/kubepods/pod{UID}/{ID_A}"),
        ];
        let expected = pod_container(Runtime::Containerd, ID_A, UID);

        let forward = format!("{}\n{}\n", lines[0], lines[1]);
        assert_eq!(container_from_cgroup(&forward), expected, "text {forward:?}");

        let backward = format!("{}\n{}\n", lines[1], lines[0]);
        assert_eq!(container_from_cgroup(&backward), expected, "text {backward:?}");
    }

    #[test]
    fn hybrid_text_prefers_deeper() {
        let lines = [
            format!("4:memory:/docker/{ID_B}"),
            format!("1:name=systemd:/docker/{ID_B}/docker/{ID_A}"),
        ];
        let expected = container(Runtime::Docker, ID_A);

        let forward = format!("{}\n{}\n", lines[0], lines[1]);
        assert_eq!(container_from_cgroup(&forward), expected, "text {forward:?}");

        let backward = format!("{}\n{}\n", lines[1], lines[0]);
        assert_eq!(container_from_cgroup(&backward), expected, "text {backward:?}");
    }

    #[test]
    fn hybrid_tie_ignores_line_order() {
        // With equal depth and no pod, the greater (runtime, id) wins, so Podman beats Docker.
        let lines = [
            format!("4:memory:/docker/{ID_C}"),
            format!("1:name=systemd:/libpod_parent/libpod-{ID_A}"),
        ];
        let expected = container(Runtime::Podman, ID_A);

        let forward = format!("{}\n{}\n", lines[0], lines[1]);
        assert_eq!(container_from_cgroup(&forward), expected, "text {forward:?}");

        let backward = format!("{}\n{}\n", lines[1], lines[0]);
        assert_eq!(container_from_cgroup(&backward), expected, "text {backward:?}");
    }

    #[test]
    fn deleted_suffix_is_stripped() {
        let text = format!("0::/system.slice/docker-{ID_A}.scope (deleted)\n");
        assert_eq!(
            container_from_cgroup(&text),
            container(Runtime::Docker, ID_A),
            "text {text:?}"
        );

        // A line whose path is only " (deleted)" names no container.
        assert_eq!(container_from_cgroup("0:: (deleted)\n"), None);
    }

    #[test]
    fn cgroup_text_crlf_and_colons() {
        let text = format!("0::/docker/{ID_A}\r\n");
        assert_eq!(
            container_from_cgroup(&text),
            container(Runtime::Docker, ID_A),
            "text {text:?}"
        );

        // A colon in a cgroup name stays in the path.
        let text = "0::/lxc.payload.web:1\n";
        assert_eq!(
            container_from_cgroup(text),
            container(Runtime::Lxc, "web:1"),
            "text {text:?}"
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let good = format!("0::/docker/{ID_A}");
        let bad_lines = [
            format!("/docker/{ID_B}"),
            format!("x::/docker/{ID_B}"),
            format!("::/docker/{ID_B}"),
            format!("-1::/docker/{ID_B}"),
            format!("0:/docker/{ID_B}"),
            format!("0::docker/{ID_B}"),
            format!(" 0::/docker/{ID_B}"),
        ];
        for bad in &bad_lines {
            let alone = format!("{bad}\n");
            assert_eq!(container_from_cgroup(&alone), None, "text {alone:?}");

            let mixed = format!("{bad}\n{good}\n");
            assert_eq!(
                container_from_cgroup(&mixed),
                container(Runtime::Docker, ID_A),
                "text {mixed:?}"
            );
        }
    }

    #[test]
    fn empty_text_gives_none() {
        for text in ["", "\n", "\n\n", "   "] {
            assert_eq!(container_from_cgroup(text), None, "text {text:?}");
        }
    }

    /// Cgroups and a `sleep` child created by one test. Drop kills and reaps
    /// the child, then removes the cgroups deepest first, also when an assert fails.
    struct CgroupFixture {
        child: Option<std::process::Child>,
        created_dirs: Vec<std::path::PathBuf>,
    }

    impl CgroupFixture {
        /// Creates `root/<components...>` one directory at a time and records
        /// each new one for removal.
        fn create_cgroup(
            &mut self,
            root: &std::path::Path,
            components: &[&str],
        ) -> std::io::Result<std::path::PathBuf> {
            let mut path = root.to_path_buf();
            for component in components {
                path.push(component);
                std::fs::create_dir(&path)?;
                self.created_dirs.push(path.clone());
            }
            Ok(path)
        }
    }

    impl Drop for CgroupFixture {
        fn drop(&mut self) {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            for dir in self.created_dirs.iter().rev() {
                // A cgroup that the test already removed returns NotFound here.
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    /// Returns the mount point of the cgroup v2 hierarchy: `/sys/fs/cgroup`
    /// on a unified system, `/sys/fs/cgroup/unified` on a hybrid one.
    fn cgroup2_root() -> Option<std::path::PathBuf> {
        ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|root| root.join("cgroup.controllers").exists())
    }

    /// Returns the state letter from `/proc/PID/stat`, for example `Z` for a zombie.
    fn process_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name in brackets may contain spaces, so the state is
        // the first field after the last ')'.
        let (_, after_name) = stat.rsplit_once(')')?;
        after_name.trim_start().chars().next()
    }

    #[test]
    fn real_kernel_cgroup_file() {
        let Some(v2_root) = cgroup2_root() else {
            eprintln!("skipping real_kernel_cgroup_file: no cgroup v2 hierarchy is mounted under /sys/fs/cgroup");
            return;
        };
        let pids_root = std::path::Path::new("/sys/fs/cgroup/pids");
        let has_v1_pids = pids_root.join("tasks").exists();

        let mut fixture = CgroupFixture {
            child: None,
            created_dirs: Vec::new(),
        };
        let test_root = format!("listns-containers-test-{}", std::process::id());
        let pod_slice = format!("kubepods-burstable-pod{UID_SYSTEMD}.slice");
        let scope = format!("cri-containerd-{ID_A}.scope");
        let v2_components = [
            test_root.as_str(),
            "kubepods.slice",
            "kubepods-burstable.slice",
            &pod_slice,
            &scope,
        ];
        let v2_leaf = match fixture.create_cgroup(&v2_root, &v2_components) {
            Ok(leaf) => leaf,
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("skipping real_kernel_cgroup_file: creating a cgroup under {v2_root:?} needs root ({error})");
                return;
            }
            Err(error) => panic!("failed to create test cgroups under {v2_root:?}: {error}"),
        };

        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("failed to start `sleep 60`; check that coreutils is installed");
        let pid = child.id();
        fixture.child = Some(child);

        std::fs::write(v2_leaf.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|error| panic!("failed to move PID {pid} into {v2_leaf:?}: {error}"));

        // On a hybrid system, put the child into a Docker-named v1 cgroup too,
        // so that the file has two lines naming different containers.
        if has_v1_pids {
            let v1_leaf = fixture
                .create_cgroup(pids_root, &[test_root.as_str(), "docker", ID_B])
                .unwrap_or_else(|error| panic!("failed to create test cgroups under {pids_root:?}: {error}"));
            std::fs::write(v1_leaf.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|error| panic!("failed to move PID {pid} into {v1_leaf:?}: {error}"));
        }

        let cgroup_file = format!("/proc/{pid}/cgroup");
        let text = std::fs::read_to_string(&cgroup_file)
            .unwrap_or_else(|error| panic!("failed to read {cgroup_file}: {error}"));
        let expected = pod_container(Runtime::Containerd, ID_A, UID);
        assert_eq!(container_from_cgroup(&text), expected, "text {text:?}");

        if has_v1_pids {
            let pids_path = text
                .lines()
                .find_map(|line| line.split_once(":pids:").map(|(_, path)| path))
                .unwrap_or_else(|| panic!("no pids line in {text:?}"));
            assert_eq!(
                container_from_path(pids_path),
                container(Runtime::Docker, ID_B),
                "pids path {pids_path:?}"
            );
        }

        // Kill the child without reaping it and remove its v2 cgroup. The
        // kernel then prints the zombie's v2 path with " (deleted)" and its
        // v1 paths as "/".
        fixture
            .child
            .as_mut()
            .unwrap()
            .kill()
            .expect("failed to kill the sleep child");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_state(pid) != Some('Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "PID {pid} did not become a zombie within 5 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::remove_dir(&v2_leaf).unwrap_or_else(|error| panic!("failed to remove {v2_leaf:?}: {error}"));

        let text = std::fs::read_to_string(&cgroup_file)
            .unwrap_or_else(|error| panic!("failed to read {cgroup_file}: {error}"));
        assert!(text.contains(" (deleted)"), "no \" (deleted)\" suffix in {text:?}");
        assert_eq!(container_from_cgroup(&text), expected, "text {text:?}");
    }

    #[test]
    fn unit_name_unescaping() {
        let cases = [
            (r"fedora\x2d40", Some("fedora-40")),
            (r"a\x2D\x2db", Some("a--b")),
            ("plain-dash", Some("plain-dash")),
            // Incomplete or invalid escapes stay as they are.
            (r"bad\x2", Some(r"bad\x2")),
            (r"bad\xzz", Some(r"bad\xzz")),
            (r"bad\x+f", Some(r"bad\x+f")),
            (r"back\slash", Some(r"back\slash")),
            // A lone escaped byte that is not UTF-8.
            (r"\xff", None),
            ("", None),
        ];
        for (escaped, expected) in cases {
            assert_eq!(unescape_unit_name(escaped).as_deref(), expected, "escaped {escaped:?}");
        }
    }
}
