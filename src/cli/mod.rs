//! The command line: `icl-lab <command>`. Parsing here, one file per command.

mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A terminal lab notebook for in-context-learning research.
#[derive(Debug, Parser)]
#[command(name = "icl-lab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one experiment and print its ICL curve.
    Run(run::RunArgs),
}

/// Exit codes: 0 ok, 1 the run failed, 2 bad input (spec, flags), 130 interrupted by Ctrl-C.
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                let _ = e.print(); // --help, --version
                return ExitCode::SUCCESS;
            }
            // One line, like every other bad-input error; the usage hint adds nothing here.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    match cli.command {
        Some(Command::Run(args)) => run::run(args),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::SUCCESS
        }
    }
}
