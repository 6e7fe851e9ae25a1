//! The `logrelay` command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = logrelay::cli::Cli::parse();
    match logrelay::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(logrelay::app::exit_code(&e))
        }
    }
}
