//! What the edge makes of a request the nodes would refuse (the client's
//! mistake, answered here) and of a node's error answer (an HTTP status).

use crate::http::BackendError;
use hypha_net::{ErrorCode, Message};
use std::sync::Mutex;

/// A request the nodes would refuse is the client's mistake: answered here
/// with 413 or 400 and the limit it broke, never sent, never counted
/// against a node's health.
pub(super) fn client_fault(m: &Message) -> Result<(), BackendError> {
    if m.writes_system_key() {
        return Err(BackendError::BadRequest(
            "keys starting with the byte 0xff followed by \"hypha/\" are the system's; use \
             another key"
                .into(),
        ));
    }
    match m.validate() {
        Ok(()) => Ok(()),
        Err(hypha_net::DecodeError::LimitExceeded { what, len, max, .. }) => {
            // Said for a curl user: what and how much, not the wire's names.
            let thing = match what {
                w if w.ends_with("key") || w.ends_with("prefix") => "the key",
                w if w.ends_with("value") => "the value",
                w => w,
            };
            Err(BackendError::TooLarge(format!(
                "{thing} is {len} bytes; the limit is {max}"
            )))
        }
        Err(e) => Err(BackendError::BadRequest(e.to_string())),
    }
}

/// A node's answer that is not the one asked for, as the edge's error.
pub(super) fn to_error(m: Message) -> BackendError {
    match m {
        Message::Error { code, message, .. } => match code {
            ErrorCode::TooLarge => BackendError::TooLarge(message),
            ErrorCode::BadRequest | ErrorCode::NotFound => BackendError::BadRequest(message),
            ErrorCode::Timeout => BackendError::Timeout(message),
            ErrorCode::ReadOnly => BackendError::ReadOnly(message),
            ErrorCode::SyncFailed { confirmed, wanted } => {
                BackendError::SyncFailed { confirmed, wanted }
            }
            ErrorCode::Unavailable | ErrorCode::NotMaster => BackendError::Unavailable(message),
            ErrorCode::Compacted { earliest } => BackendError::Compacted {
                earliest,
                why: message,
            },
            ErrorCode::OutcomeUnknown => BackendError::Unavailable(format!(
                "the write's outcome is unknown: {message}; read the key to find out before \
                 writing it again"
            )),
            _ => BackendError::Internal(message),
        },
        other => BackendError::Internal(format!("unexpected answer {}", other.name())),
    }
}

/// Keeps the master's last refusal of a write for its storage (`/status`
/// `master.storage_error`: a full disk says how much space it needs) until a
/// write goes through.
pub(super) fn note_storage(refusal: &Mutex<Option<String>>, answer: &Message, written: bool) {
    let mut r = refusal.lock().unwrap_or_else(|p| p.into_inner());
    match answer {
        Message::Error {
            code: ErrorCode::ReadOnly,
            message,
            ..
        } => *r = Some(message.clone()),
        _ if written => *r = None,
        _ => {}
    }
}
