use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = segd::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return segd::cli::exit::usage();
        }
    };
    match runtime.block_on(segd::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            segd::cli::report(&e);
            e.exit_code()
        }
    }
}
