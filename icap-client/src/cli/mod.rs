//! The `icap-client` binary's own modules (not part of the library), each importing only
//! what lies below it:
//!
//! ```text
//!  args.rs      Cli, Command (the subcommands; bench's are in src/bench)
//!  settings.rs  the configuration file with the flags merged over it
//!  scan.rs      `scan` · options.rs `options` · doctor.rs `doctor`
//!  progress.rs  the live line of `scan` on a terminal
//!  conn.rs      ConnArgs, the connection flags of every command
//!  files.rs     the files to scan, the EICAR sample
//!  output.rs    escaping of names from files and servers, durations
//! ```

pub(crate) mod args;
pub(crate) mod conn;
pub(crate) mod doctor;
pub(crate) mod files;
pub(crate) mod options;
pub(crate) mod output;
pub(crate) mod progress;
pub(crate) mod scan;
pub(crate) mod settings;
