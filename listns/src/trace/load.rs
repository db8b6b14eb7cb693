//! Loading the eBPF object, passing it the kernel's struct offsets, and
//! attaching the hooks of `hooks.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aya::maps::{PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, FEntry, KProbe, ProgramError, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use listns_common::trace::KernelOffsets;

use super::events::EventReader;
use super::hooks::{Attachment, HOOKS, Hook, Program, Target};
use super::offsets;

/// The eBPF object built by `build.rs` from the `listns-ebpf` crate.
pub(crate) static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/listns-ebpf"));

/// Default size of the event ring buffer. 4 MiB has room for 20,164 events
/// of 208 bytes. At the fastest storm measured on a 2-core VM (89,000
/// events/s from two threads creating uts namespaces, `trace_bench`), that
/// covers a reader pause of 0.23 s.
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 4 << 20;

/// Default unread amount that wakes the reader: 1/16 of the default ring
/// buffer, about 1,260 events. Below it the reader learns of events only by
/// polling, at least every [`POLL_INTERVAL`].
pub const DEFAULT_WAKEUP_BYTES: u32 = DEFAULT_RING_BUFFER_BYTES / 16;

/// How often a reader must drain the ring buffer even without a wakeup,
/// because records below the wakeup threshold send none. It bounds the delay
/// of an event.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Settings for [`Tracer::load`].
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Size of the event ring buffer in bytes: a power of two and a multiple
    /// of the page size.
    pub ring_buffer_bytes: u32,
    /// Unread bytes from which each new record wakes the reader; below it
    /// the reader must poll (see [`POLL_INTERVAL`]). 0 wakes it for every
    /// record, for the lowest latency at a higher cost per event.
    pub wakeup_bytes: u32,
    /// Mount tracefs on `/sys/kernel/tracing` when no tracefs is mounted;
    /// classic tracepoints cannot be attached without it.
    pub mount_tracefs: bool,
    /// Names of hooks (from [`HOOKS`]) not to attach, to trade what is seen
    /// for overhead: any system call hook slows every system call.
    pub skip_hooks: Vec<String>,
    /// Names of programs (in the eBPF object) not to try, so that a hook
    /// falls back to its next attachment. Tests use it to run fallbacks.
    pub skip_programs: Vec<String>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            wakeup_bytes: DEFAULT_WAKEUP_BYTES,
            mount_tracefs: true,
            skip_hooks: Vec::new(),
            skip_programs: Vec::new(),
        }
    }
}

/// Outcome of attaching one hook.
#[derive(Debug, Clone)]
pub struct HookStatus {
    pub hook: &'static Hook,
    /// Index into `hook.attachments` of the attachment in use, if any.
    pub attached: Option<usize>,
    /// Reasons why the attachments tried before the one in use (or all of
    /// them) failed.
    pub failures: Vec<String>,
}

/// Loaded and attached programs with their event reader. Dropping it
/// detaches every program.
pub struct Tracer {
    /// Owns the programs and their links.
    _ebpf: Ebpf,
    pub events: EventReader,
    pub hooks: Vec<HookStatus>,
    pub offsets: KernelOffsets,
    /// Time from the start of [`Tracer::load`] until every hook was tried.
    pub load_time: Duration,
}

impl HookStatus {
    /// Returns the attach points in use, e.g. `tp_btf/sched_process_fork`,
    /// or `None` when the hook is not attached.
    pub fn targets(&self) -> Option<String> {
        let attachment = &self.hook.attachments[self.attached?];
        let targets: Vec<String> = attachment.programs.iter().map(|p| p.target.to_string()).collect();
        Some(targets.join(", "))
    }
}

impl Tracer {
    /// Returns whether the hook named `name` (from [`HOOKS`]) is attached.
    pub fn hook_attached(&self, name: &str) -> bool {
        self.hooks
            .iter()
            .any(|status| status.hook.name == name && status.attached.is_some())
    }

    /// Resolves offsets, loads the eBPF object and attaches every hook it can.
    /// Fails only when nothing could be attached or the object itself does
    /// not load. A hook that does not attach is logged and reported in
    /// [`Tracer::hooks`].
    pub fn load(options: &TraceOptions) -> Result<Tracer> {
        let start = Instant::now();
        if EBPF_OBJECT.is_empty() {
            bail!(
                "this listns was built without its eBPF programs (bpf-linker was missing or AYA_BUILD_SKIP was set); \
                 run `cargo xtask setup` and rebuild to use live tracing"
            );
        }
        let size = options.ring_buffer_bytes;
        let page = rustix::param::page_size() as u32;
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            bail!(
                "ring buffer size {size} is invalid: use a power of two that is a multiple of the page size ({page})"
            );
        }

        if options.wakeup_bytes >= size {
            bail!(
                "wakeup threshold {} is invalid: it must be below the ring buffer size {size}, or the reader is never woken",
                options.wakeup_bytes
            );
        }

        let offsets = offsets::from_running_kernel().context("cannot resolve kernel struct offsets")?;
        log::debug!("kernel offsets resolved after {:?}: {offsets:?}", start.elapsed());
        raise_memlock_limit();
        if options.mount_tracefs {
            ensure_tracefs()?;
        }

        // aya parses the kernel's BTF for its own use (tp_btf and fentry
        // attach points); one parse serves the loader and the programs.
        let btf = match Btf::from_sys_fs() {
            Ok(btf) => Some(btf),
            Err(err) => {
                log::warn!("aya cannot parse the kernel's BTF ({err}); tp_btf and fentry programs will not load");
                None
            }
        };
        log::debug!("aya parsed the kernel's BTF after {:?}", start.elapsed());
        let mut ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            .override_global("KERNEL_OFFSETS", &offsets, true)
            .override_global("WAKEUP_BYTES", &u64::from(options.wakeup_bytes), true)
            .map_max_entries("EVENTS", size)
            .load(EBPF_OBJECT)
            .context("cannot load the eBPF object (maps and program sections)")?;

        log::debug!("eBPF object loaded after {:?}", start.elapsed());
        for name in &options.skip_hooks {
            if !HOOKS.iter().any(|hook| hook.name == name) {
                bail!("unknown hook {name:?} to skip; hooks are named {}", hook_names());
            }
        }
        let mut hooks = Vec::with_capacity(HOOKS.len());
        for hook in HOOKS {
            if options.skip_hooks.iter().any(|name| name == hook.name) {
                log::info!("hook {} skipped on request, so {}", hook.name, hook.without);
                hooks.push(HookStatus {
                    hook,
                    attached: None,
                    failures: vec!["skipped on request".to_owned()],
                });
                continue;
            }
            hooks.push(attach_hook(&mut ebpf, hook, btf.as_ref(), &options.skip_programs));
        }
        if hooks.iter().all(|status| status.attached.is_none()) {
            let reasons: Vec<String> = hooks.iter().flat_map(|status| status.failures.clone()).collect();
            bail!("no hook could be attached:\n{}", reasons.join("\n"));
        }

        let ring = ebpf.take_map("EVENTS").context("the eBPF object has no EVENTS map")?;
        let ring = RingBuf::try_from(ring).context("EVENTS is not a ring buffer")?;
        let counters = ebpf
            .take_map("COUNTERS")
            .context("the eBPF object has no COUNTERS map")?;
        let counters = PerCpuArray::try_from(counters).context("COUNTERS is not a per-CPU array of u64")?;

        Ok(Tracer {
            _ebpf: ebpf,
            events: EventReader::new(ring, counters),
            hooks,
            offsets,
            load_time: start.elapsed(),
        })
    }
}

fn hook_names() -> String {
    HOOKS.iter().map(|hook| hook.name).collect::<Vec<_>>().join(", ")
}

/// Tries each attachment of a hook in order and logs the outcome.
fn attach_hook(ebpf: &mut Ebpf, hook: &'static Hook, btf: Option<&Btf>, skip_programs: &[String]) -> HookStatus {
    let mut status = HookStatus {
        hook,
        attached: None,
        failures: Vec::new(),
    };
    for (index, attachment) in hook.attachments.iter().enumerate() {
        let skipped = attachment
            .programs
            .iter()
            .find(|p| skip_programs.iter().any(|name| name == p.name));
        if let Some(program) = skipped {
            log::debug!("hook {}: {} skipped on request", hook.name, program.name);
            status.failures.push(format!("{} skipped on request", program.name));
            continue;
        }
        match attach_all(ebpf, attachment, btf) {
            Ok(()) => {
                let targets: Vec<String> = attachment.programs.iter().map(|p| p.target.to_string()).collect();
                log::debug!("hook {}: attached {}", hook.name, targets.join(", "));
                status.attached = Some(index);
                return status;
            }
            Err(err) => {
                let (major, minor) = attachment.min_kernel;
                let first = attachment.programs.first().map_or("", |p| p.name);
                let message = if crate::discover::defaults::kernel_at_least(major, minor) {
                    format!("{first}: {err:#}")
                } else {
                    format!("{first} (needs Linux {major}.{minor}+, this kernel is older): {err:#}")
                };
                log::debug!("hook {}: cannot attach {message}", hook.name);
                status.failures.push(message);
            }
        }
    }
    log::debug!("hook {} is not attached, so {}", hook.name, hook.without);
    status
}

/// Returns the log level for a hook or attachment that failed: a warning,
/// unless user space finds the same facts later without the hook.
pub(crate) fn missing_level(hook: &Hook) -> log::Level {
    if hook.optional {
        log::Level::Info
    } else {
        log::Level::Warn
    }
}

/// Loads and attaches every program of an attachment; on failure, unloads
/// the ones already loaded so that half an entry/exit pair never runs.
fn attach_all(ebpf: &mut Ebpf, attachment: &Attachment, btf: Option<&Btf>) -> Result<()> {
    for (done, program) in attachment.programs.iter().enumerate() {
        if let Err(err) = attach_program(ebpf, program, btf) {
            for loaded in &attachment.programs[..=done] {
                unload_program(ebpf, loaded);
            }
            return Err(err);
        }
    }
    Ok(())
}

fn attach_program(ebpf: &mut Ebpf, program: &Program, btf: Option<&Btf>) -> Result<()> {
    let name = program.name;
    let loaded = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} is missing from the eBPF object"))?;
    match program.target {
        Target::TracePoint {
            category,
            name: tracepoint,
        } => {
            let tp: &mut TracePoint = loaded
                .try_into()
                .with_context(|| format!("{name} is not a tracepoint program"))?;
            tp.load()
                .map_err(load_error)
                .with_context(|| format!("cannot load {name}"))?;
            tp.attach(category, tracepoint)
                .with_context(|| format!("cannot attach {name} to tracepoint {category}/{tracepoint}"))?;
        }
        Target::BtfTracePoint { name: tracepoint } => {
            let kernel_btf = btf.context("tp_btf programs need the kernel's BTF, which aya could not parse")?;
            let tp: &mut BtfTracePoint = loaded
                .try_into()
                .with_context(|| format!("{name} is not a tp_btf program"))?;
            tp.load(tracepoint, kernel_btf)
                .map_err(load_error)
                .with_context(|| format!("cannot load {name}"))?;
            tp.attach()
                .with_context(|| format!("cannot attach {name} to tp_btf/{tracepoint}"))?;
        }
        Target::RawTracePoint { name: tracepoint } => {
            let tp: &mut RawTracePoint = loaded
                .try_into()
                .with_context(|| format!("{name} is not a raw tracepoint program"))?;
            tp.load()
                .map_err(load_error)
                .with_context(|| format!("cannot load {name}"))?;
            tp.attach(tracepoint)
                .with_context(|| format!("cannot attach {name} to raw_tp/{tracepoint}"))?;
        }
        Target::FEntry { function } => {
            let kernel_btf = btf.context("fentry programs need the kernel's BTF, which aya could not parse")?;
            let fentry: &mut FEntry = loaded
                .try_into()
                .with_context(|| format!("{name} is not an fentry program"))?;
            fentry
                .load(function, kernel_btf)
                .map_err(load_error)
                .with_context(|| format!("cannot load {name} for fentry/{function}"))?;
            fentry
                .attach()
                .with_context(|| format!("cannot attach {name} to fentry/{function}"))?;
        }
        Target::KProbe { function } => {
            let kprobe: &mut KProbe = loaded
                .try_into()
                .with_context(|| format!("{name} is not a kprobe program"))?;
            kprobe
                .load()
                .map_err(load_error)
                .with_context(|| format!("cannot load {name}"))?;
            kprobe
                .attach(function, 0)
                .with_context(|| format!("cannot attach {name} to kprobe/{function}"))?;
        }
    }
    Ok(())
}

fn unload_program(ebpf: &mut Ebpf, program: &Program) {
    let Some(loaded) = ebpf.program_mut(program.name) else {
        return;
    };
    let result = match program.target {
        Target::TracePoint { .. } => <&mut TracePoint>::try_from(loaded).map(|p| p.unload()),
        Target::BtfTracePoint { .. } => <&mut BtfTracePoint>::try_from(loaded).map(|p| p.unload()),
        Target::RawTracePoint { .. } => <&mut RawTracePoint>::try_from(loaded).map(|p| p.unload()),
        Target::FEntry { .. } => <&mut FEntry>::try_from(loaded).map(|p| p.unload()),
        Target::KProbe { .. } => <&mut KProbe>::try_from(loaded).map(|p| p.unload()),
    };
    // NotLoaded is expected for the program whose load failed.
    if let Ok(Err(err)) = result {
        log::debug!("unloading {}: {err}", program.name);
    }
}

/// Returns whether this process has the capabilities to load tracing
/// and iterator programs: CAP_SYS_ADMIN (21), or CAP_BPF (39) with CAP_PERFMON (38).
pub fn may_load_bpf() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| effective & (1 << bit) != 0;
    has(21) || (has(39) && has(38))
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK, whose default
/// (often 8 MiB) is too small for the ring buffer. Newer kernels ignore it.
fn raise_memlock_limit() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(err) = setrlimit(Resource::Memlock, unlimited) {
        log::debug!("cannot raise RLIMIT_MEMLOCK: {err}; kernels before 5.11 may refuse the ring buffer");
    }
}

/// Mount point that tracing tools use for tracefs.
const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs on `/sys/kernel/tracing` unless a tracefs with events is
/// already there or under `/sys/kernel/debug/tracing`. Classic tracepoints
/// are attached by the ids in `events/*/*/id`.
///
/// It must run before the first tracepoint is attached, because aya looks
/// for tracefs once per process and caches the result.
pub fn ensure_tracefs() -> Result<()> {
    let has_events = |dir: &str| Path::new(dir).join("events").is_dir();
    if has_events(TRACEFS) || has_events("/sys/kernel/debug/tracing") {
        return Ok(());
    }
    log::info!("mounting tracefs on {TRACEFS}, which classic tracepoints need");
    rustix::mount::mount("nodev", TRACEFS, "tracefs", rustix::mount::MountFlags::empty(), None).with_context(|| {
        format!("cannot mount tracefs on {TRACEFS}; mount it by hand: mount -t tracefs nodev {TRACEFS}")
    })?;
    Ok(())
}

/// Converts a failed program load into an error that shows the verifier's
/// log only when the kernel wrote one. aya's message prints the log even
/// when it is empty, as after EPERM.
fn load_error(err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError { io_error, verifier_log } if verifier_log.to_string().trim().is_empty() => {
            anyhow::Error::new(io_error).context("BPF_PROG_LOAD failed")
        }
        other => other.into(),
    }
}
