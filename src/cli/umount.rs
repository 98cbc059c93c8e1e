//! `zarrfs umount`: unmounts zarrfs mounts only. What was written is stored first, unless
//! the daemon is gone (a dead mount is cleared without a write-back) or `--discard` drops
//! what cannot be stored; `--lazy` detaches a busy mount point.

use super::mounts::{self, FS_TYPE};
use super::{output, UmountArgs};
use crate::tree::DISCARD_FILE;
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// `zarrfs umount MOUNTPOINT [--lazy] [--discard]`.
pub fn run(args: &UmountArgs) -> Result<()> {
    let given = args.mountpoint.display();
    let point =
        mounts::resolve(&args.mountpoint).map_err(|e| anyhow!("mount point {given}: {e}"))?;
    let shown = point.display();
    let entry = mounts::find(&point).ok_or_else(|| anyhow!("{shown} is not mounted"))?;
    if !entry.is_zarrfs() {
        bail!(
            "{shown} is a {} mount of {}, not a zarrfs one ({FS_TYPE}); refused",
            entry.fstype,
            entry.source
        );
    }
    if mounts::is_dead(&point) {
        // Nothing can be written back: the daemon, and whatever it held, is gone.
        mounts::unmount(&point, args.lazy)
            .map_err(|e| anyhow!("cannot clear the dead mount {shown}: {e}"))?;
        output::error(&format!(
            "{shown}: its daemon was gone (Transport endpoint is not connected); unmounted \
             without write-back"
        ));
    } else {
        write_back(&point, args.discard)?;
        mounts::unmount(&point, args.lazy).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => anyhow!(
                "cannot unmount {shown}: files are open in it (zarrfs umount --lazy detaches it \
                 now and the daemon serves them until they close)"
            ),
            _ => anyhow!("cannot unmount {shown}: {e}"),
        })?;
    }
    if !mounts::wait_until_unmounted(&point) {
        bail!("{shown} is still mounted");
    }
    Ok(())
}

/// Asks the daemon to store every unsaved chunk (an fsync of the mount root). When that
/// fails the mount stays, so that nothing written is lost, unless `discard`: then the
/// unsaved chunks are dropped, each named.
fn write_back(point: &Path, discard: bool) -> Result<()> {
    let synced = File::open(point).and_then(|root| root.sync_all());
    let Err(err) = synced else {
        return Ok(());
    };
    if !discard {
        bail!(
            "write-back before unmounting {} failed: {err}; still mounted (zarrfs umount \
             --discard drops what was not written back)",
            point.display()
        );
    }
    for chunk in discard_unsaved(point)? {
        output::error(&format!(
            "dropped unsaved chunk {chunk} (write-back failed: {err})"
        ));
    }
    Ok(())
}

/// Drops every unsaved chunk of the mount through its control file; returns their paths in
/// the mount.
fn discard_unsaved(point: &Path) -> Result<Vec<String>> {
    let path = point.join(DISCARD_FILE);
    let mut control = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    control
        .write_all(b"discard\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut dropped = String::new();
    control
        .rewind()
        .and_then(|()| control.read_to_string(&mut dropped))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(dropped.lines().map(str::to_string).collect())
}
