use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = segd::cli::Cli::parse();
    match segd::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            segd::cli::exit::usage()
        }
    }
}
