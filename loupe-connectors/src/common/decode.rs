//! The error a column decoder reports for a value that does not have the
//! shape its type promises.

/// A value that cannot be decoded; the message names the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

pub(crate) type DecodeResult<T = ()> = Result<T, DecodeError>;
