//! The `zarrfs` command.

use clap::Parser;

fn main() {
    let cli = zarrfs::cli::Cli::parse();
    std::process::exit(zarrfs::cli::run(cli));
}
