//! Why a command did not succeed, and the exit status that says so: 0 when
//! the reader of the output went away (`| head`), 1 when the query ran and
//! failed, 2 for a usage or configuration error, 130 on Ctrl-C.

use std::process::ExitCode;

use loupe_core::{Error, ErrorKind};

/// Why a command did not succeed, and the exit status that says so.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Wrong arguments or configuration: exit 2.
    Usage(String),
    /// The query ran and failed: exit 1.
    Failed(String),
    /// The reader of standard output went away: not a failure, exit 0.
    ClosedPipe,
    /// Interrupted with Ctrl-C: exit 130, as shells expect.
    Interrupted,
}

impl Failure {
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Self::Usage(message) => {
                eprintln!("loupe: {message}");
                ExitCode::from(2)
            }
            Self::Failed(message) => {
                eprintln!("loupe: {message}");
                ExitCode::from(1)
            }
            Self::ClosedPipe => ExitCode::SUCCESS,
            Self::Interrupted => {
                eprintln!("loupe: interrupted; the query was cancelled");
                ExitCode::from(130)
            }
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        if e.is_broken_pipe() {
            return Self::ClosedPipe;
        }
        let message = describe(&e);
        // By kind: input the user gave wrong (a template, a parameter, a
        // setting, an unknown kind) is a usage error, unless it is the
        // datasource that reported it about the query it ran.
        match e.kind() {
            ErrorKind::InvalidInput if e.as_query_error().is_none() => Self::Usage(message),
            _ => Self::Failed(message),
        }
    }
}

/// The error's message and the chain of causes that add something.
fn describe(e: &Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
