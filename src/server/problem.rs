//! RFC 9457 problem details. Every refusal carries a stable `type`
//! (`urn:custody:problem:<rule>`, the same rule names as the core's errors), an HTTP status
//! that says whose fault it is, and never internal details for a server fault.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::core::error::{DecodeError, RuleError};
use crate::core::ids::EventHash;
use crate::ledger::AppendError;
use crate::log::LogError;

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable rule name (the suffix of `type`).
    pub rule: String,
    /// For conflicts: the event already in the log that this one conflicts with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts_with: Option<EventHash>,
}

impl Problem {
    #[must_use]
    pub fn new(status: StatusCode, rule: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:custody:problem:{rule}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            rule: rule.to_owned(),
            conflicts_with: None,
        }
    }

    /// A server-side fault: logged in full, answered without internals.
    #[must_use]
    pub fn internal(what: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what}; the operator's logs have the cause"),
        )
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<DecodeError> for Problem {
    fn from(e: DecodeError) -> Self {
        let (status, rule) = match &e {
            DecodeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            DecodeError::Json { .. } => (StatusCode::BAD_REQUEST, "malformed_json"),
            DecodeError::NotNormalForm { .. } => (StatusCode::BAD_REQUEST, "not_normal_form"),
            DecodeError::Shape { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "shape"),
        };
        Self::new(status, rule, e.to_string())
    }
}

/// Rules whose refusal means "someone else got there first": 409 with the event in the way.
fn conflict(e: &RuleError) -> Option<Option<EventHash>> {
    match e {
        RuleError::ChainBroken { expected, .. } | RuleError::PartyChainBroken { expected, .. } => {
            Some(Some(*expected))
        }
        RuleError::TransferPending { transfer, .. } => Some(Some(*transfer)),
        RuleError::UnitExists { .. }
        | RuleError::PartyExists { .. }
        | RuleError::HandleTaken { .. }
        | RuleError::KeyInUse { .. } => Some(None),
        _ => None,
    }
}

impl From<&RuleError> for Problem {
    fn from(e: &RuleError) -> Self {
        match conflict(e) {
            Some(with) => {
                let mut p = Self::new(StatusCode::CONFLICT, e.rule(), e.to_string());
                p.conflicts_with = with;
                p
            }
            None => Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.rule(), e.to_string()),
        }
    }
}

impl From<AppendError> for Problem {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Rule(r) => Self::from(r.as_ref()),
            AppendError::Failed(_) | AppendError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the ledger is not accepting events (storage failure or shutting down); retry later",
            ),
            AppendError::Store(s) => Self::internal("storage error while appending", &s),
            AppendError::Empty => Self::new(StatusCode::NOT_FOUND, "not_found", "the log is empty"),
            r @ AppendError::ReadOnly(_) => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "read_only", r.to_string())
            }
        }
    }
}

impl From<LogError> for Problem {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Store(s) => Self::internal("storage error while reading the log", &s),
            LogError::UnknownEvent(_) | LogError::NoCheckpoint(_) | LogError::NoCheckpointYet => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            LogError::IndexOutOfRange { .. } | LogError::SizesOutOfOrder { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "out_of_range", e.to_string())
            }
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal("storage error", &e)
    }
}
