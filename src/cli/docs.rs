//! `zarrfs completions SHELL` and `zarrfs man`, generated from the clap definitions.

use super::{output, Cli};
use anyhow::{anyhow, Context};
use clap::CommandFactory;
use std::path::Path;

/// Prints the completion script of `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "zarrfs", &mut script);
    output::raw(&script)
}

/// Prints the manual page of zarrfs (`subcommand` None) or of one subcommand; with
/// `out_dir`, writes every page there instead.
pub fn man(subcommand: Option<&str>, out_dir: Option<&Path>) -> anyhow::Result<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    if let Some(dir) = out_dir {
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
        return output::line(format_args!("wrote manual pages into {}", dir.display()));
    }
    // Built, subcommands are named as their pages are (zarrfs-mount).
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => command
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| anyhow!("no subcommand {name:?}"))?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    output::raw(&roff)
}
