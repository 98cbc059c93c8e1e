//! The `zarrfs` command.

fn main() {
    let cli = zarrfs::cli::parse();
    std::process::exit(zarrfs::cli::run(cli));
}
