//! The forms in which mount(8) runs zarrfs, turned into `zarrfs mount --mount-helper …`:
//!
//! - for the type `fuse.zarrfs` (fstab, `mount -t fuse.zarrfs`, systemd `.mount` units),
//!   mount(8) runs mount.fuse3, which runs `zarrfs STORE MNT -o OPTS`;
//! - for the type `zarrfs`, mount(8) runs `/sbin/mount.zarrfs STORE MNT [-sfnv] [-o OPTS]
//!   [-t TYPE]`: zarrfs installed (or linked) under that name, or as `mount.fuse.zarrfs`
//!   to be run for `fuse.zarrfs` without mount.fuse3.

use super::Cli;
use clap::CommandFactory;
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The name a mount helper has: `mount.` followed by the file system type.
const HELPER_PREFIX: &str = "mount.";

/// Rewrites the process's arguments into the `zarrfs mount` form when they are in one of
/// the forms mount(8) uses; other arguments are returned unchanged.
pub fn normalize(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(program) = args.first() else {
        return Ok(args);
    };
    let name = Path::new(program)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    if name.starts_with(HELPER_PREFIX) {
        return helper_arguments(&name, &args[1..]);
    }
    match args.get(1).and_then(|a| a.to_str()) {
        Some(first) if !first.starts_with('-') && !is_subcommand(first) => {
            let mut out = vec![program.clone(), "mount".into(), "--mount-helper".into()];
            out.extend(args[1..].iter().cloned());
            Ok(out)
        }
        _ => Ok(args),
    }
}

/// Whether `word` names a subcommand (a store named so must be written `./NAME`).
fn is_subcommand(word: &str) -> bool {
    word == "help" || Cli::command().find_subcommand(word).is_some()
}

/// The `zarrfs mount` arguments for a run as the mount helper `name`: the store, the mount
/// point and `-o` are kept; `-s` (sloppy), `-n` (no mtab), `-v` (verbose) and `-t TYPE`
/// change nothing; `-f` (fake) checks without mounting.
fn helper_arguments(name: &str, args: &[OsString]) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = vec![name.into(), "mount".into(), "--mount-helper".into()];
    let mut positional = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "-o" | "-t" => {
                let value = rest
                    .next()
                    .ok_or_else(|| format!("{name}: {text} needs a value"))?;
                if text == "-o" {
                    out.extend(["-o".into(), value.clone()]);
                }
            }
            _ if text.starts_with("-o") => out.extend(["-o".into(), OsStr::new(&text[2..]).into()]),
            _ if text.starts_with("-t") => {}
            _ if text.starts_with('-') && text.len() > 1 => {
                for flag in text[1..].chars() {
                    match flag {
                        's' | 'n' | 'v' => {}
                        'f' => out.push("--fake".into()),
                        _ => return Err(format!("{name}: unknown option -{flag}")),
                    }
                }
            }
            _ => positional.push(arg.clone()),
        }
    }
    if positional.len() != 2 {
        return Err(format!(
            "usage: {name} STORE MOUNTPOINT [-sfnv] [-o OPTIONS]"
        ));
    }
    out.extend(positional);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Vec<String>, String> {
        normalize(args.iter().map(OsString::from).collect())
            .map(|out| out.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn subcommands_are_left_alone() {
        for args in [
            &["zarrfs", "mount", "s", "m"][..],
            &["zarrfs", "info", "s"],
            &["zarrfs", "--version"],
            &["zarrfs", "help"],
            &["zarrfs"],
        ] {
            assert_eq!(run(args).unwrap(), args);
        }
    }

    #[test]
    fn the_mount_fuse3_form_is_a_mount() {
        assert_eq!(
            run(&["/usr/bin/zarrfs", "/data/x.zarr", "/mnt/x", "-o", "ro,dev"]).unwrap(),
            [
                "/usr/bin/zarrfs",
                "mount",
                "--mount-helper",
                "/data/x.zarr",
                "/mnt/x",
                "-o",
                "ro,dev"
            ]
        );
    }

    #[test]
    fn the_mount_helper_form_follows_mount8() {
        assert_eq!(
            run(&[
                "/sbin/mount.zarrfs",
                "s",
                "m",
                "-n",
                "-sv",
                "-o",
                "ro",
                "-t",
                "zarrfs"
            ])
            .unwrap(),
            [
                "mount.zarrfs",
                "mount",
                "--mount-helper",
                "-o",
                "ro",
                "s",
                "m"
            ]
        );
        assert_eq!(
            run(&["mount.fuse.zarrfs", "s", "m", "-f", "-oallow_other"]).unwrap(),
            [
                "mount.fuse.zarrfs",
                "mount",
                "--mount-helper",
                "--fake",
                "-o",
                "allow_other",
                "s",
                "m"
            ]
        );
        assert!(run(&["mount.zarrfs", "s"]).unwrap_err().contains("usage"));
        assert!(run(&["mount.zarrfs", "s", "m", "-N", "1"])
            .unwrap_err()
            .contains("-N"));
    }
}
