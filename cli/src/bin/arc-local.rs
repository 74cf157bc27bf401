//! `arc-local`: a whole benchmark run on a laptop. See `arc-local --help`.

use arc_cli::exit::{self, CliError};
use arc_cli::local::{self, Options};
use clap::Parser;

fn main() {
    let opts = Options::parse();
    let code = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => match rt.block_on(local::run(opts)) {
            Ok(()) => exit::OK,
            Err(e) => exit::report("arc-local", &e),
        },
        Err(e) => exit::report("arc-local", &CliError::failed(format!("cannot start the async runtime: {e}"))),
    };
    std::process::exit(code);
}
