//! Errors at a place in the configuration text, and the places of the statements that
//! the semantic checks refer to: shared by the parser and the checks, so that neither
//! depends on the other for them.

use std::collections::BTreeMap;

use crate::config::Pos;

/// An error at a place in the text: `LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ConfigError {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        ConfigError { line: pos.line, column: pos.column, message: message.into() }
    }
}

/// Positions of the statements that semantic checks refer to (key -> position).
pub type Positions = BTreeMap<String, Pos>;
