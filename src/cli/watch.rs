//! `-o auto_unmount`: a watcher process removes the mount when its daemon dies without
//! unmounting (killed, crashed). fusermount3's own auto_unmount, which libfuse and fuser
//! use, unmounts only when the mount point answers ENOTCONN; while the kernel tears the
//! connection down it answers ECONNABORTED, and a killed daemon's mount could stay.

use super::mounts;
use anyhow::{bail, Result};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// The watcher's name in `ps` and /proc/PID/comm (its command line is the daemon's).
const NAME: &std::ffi::CStr = c"zarrfs-watch";

/// How long the watcher waits for the connection to be torn down.
const TEARDOWN: Duration = Duration::from_secs(10);

/// Starts the watcher of the mount on `point`: a child process that waits until this
/// process is gone, then lazily unmounts `point` if it is still a zarrfs mount whose daemon
/// is gone. Must be called before this process starts any thread (the child is a fork).
pub fn start(point: &Path) -> Result<()> {
    let (alive, write_end) = super::mount::pipe()?;
    // SAFETY: no other thread runs in this process (see above).
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(write_end);
            watch(point, alive)
        }
        _watcher => {
            drop(alive);
            // Held open until this process ends, however it ends.
            std::mem::forget(write_end);
            Ok(())
        }
    }
}

/// The watcher: waits for the end of the pipe's other side, then unmounts a dead mount.
fn watch(point: &Path, alive: OwnedFd) -> ! {
    // SAFETY: plain syscalls on this process's own descriptors and name; the watcher keeps
    // only the pipe and its stdio (so it holds no store lock), and ignores the terminal's
    // signals meant for the daemon.
    unsafe {
        libc::dup2(alive.as_raw_fd(), 3);
        libc::close_range(4, u32::MAX, 0);
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    std::mem::forget(alive);
    // SAFETY: descriptor 3 is the pipe, duplicated above and owned by nothing else now.
    let mut alive = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(3) };
    // Nothing is ever written: the read ends when the daemon's end closes.
    let _ = alive.read(&mut [0u8; 1]);
    let deadline = Instant::now() + TEARDOWN;
    while Instant::now() < deadline {
        if !mounts::find(point).is_some_and(|entry| entry.is_zarrfs()) {
            break; // unmounted cleanly, or replaced
        }
        match std::fs::metadata(point) {
            Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {
                let result = mounts::unmount(point, true);
                super::output::error(&match result {
                    Ok(()) => format!(
                        "auto_unmount: {} unmounted, its daemon gone",
                        point.display()
                    ),
                    Err(err) => format!("auto_unmount: cannot unmount {}: {err}", point.display()),
                });
                break;
            }
            // Still being torn down.
            Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => {}
            _ => break, // served again, or gone
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: _exit ends this process without running the daemon's exit handlers.
    unsafe { libc::_exit(0) }
}
