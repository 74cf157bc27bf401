//! `arcctl`: the operator CLI. See `arcctl --help`.

use arc_cli::ctl::{self, Cli};
use arc_cli::exit::{self, CliError};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let code = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => match rt.block_on(ctl::run(cli)) {
            Ok(()) => exit::OK,
            Err(e) => exit::report("arcctl", &e),
        },
        Err(e) => exit::report("arcctl", &CliError::failed(format!("cannot start the async runtime: {e}"))),
    };
    std::process::exit(code);
}
