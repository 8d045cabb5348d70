//! How a command fails: [`Failure`], an error or an interruption.

/// Why a command ended without doing its job.
#[derive(Debug)]
pub enum Failure {
    /// Something went wrong: one line for the user.
    Error(String),
    /// Ctrl-C or SIGTERM stopped it before it was done; the words say what was left.
    Interrupted(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Error(message)
    }
}
