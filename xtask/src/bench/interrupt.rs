//! SIGINT (Ctrl-C), SIGTERM and SIGHUP handling for the benchmark: the handler
//! only records the signal, and the benchmark stops at its next [`check`], so
//! that the guards on the way out release and reap every task it started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::{io, mem, ptr};

use anyhow::{Context, Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP in this process.
pub fn install() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `action` is zero-initialised and then filled in, and the
        // handler only stores to an atomic, which is async-signal-safe.
        let result = unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = record_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, ptr::null_mut())
        };
        if result != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("failed to install a handler for signal {signal}"));
        }
    }
    Ok(())
}

/// Fails once SIGINT, SIGTERM or SIGHUP has arrived.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("benchmark interrupted by a signal");
    }
    Ok(())
}
