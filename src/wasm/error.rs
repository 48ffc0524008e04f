//! Core errors as JS `Error`s.
//!
//! Every failure of an SDK call rejects with an `Error` whose `name` is `"DataPilotError"` and
//! which carries what a caller decides on: `kind`, a stable `code` (the server's problem code
//! such as `gate_not_passed`, or a local one: `invalid_request`, `transport_error`, `timeout`,
//! `decode_error`, `verification_failed`), `status`, `requestId`, `retryable` (the core's own
//! retry rule), `sent` (`"no" | "maybe" | "yes"`: could the request have taken effect?),
//! `detail`, `errors` (field errors) and `retryAfterMs`. Messages are redacted of tokens by the
//! core; they are redacted once more here because a message may also come from JS.
//!
//! `isDataPilotError` recognises these errors by a registered symbol
//! (`Symbol.for("@animus/datapilot/error")`), so an error thrown by the CommonJS copy of the
//! package is recognised by the ESM copy too (the dual-package hazard).

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::{redact, Error, Sent};

const BRAND: &str = "@animus/datapilot/error";

fn brand() -> JsValue {
    js_sys::Symbol::for_(BRAND).into()
}

fn set(target: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

fn opt_str(v: Option<&str>) -> JsValue {
    v.map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

struct Fields<'a> {
    kind: &'a str,
    code: String,
    message: String,
    status: Option<u16>,
    request_id: Option<&'a str>,
    retryable: bool,
    sent: Sent,
    detail: Option<&'a str>,
    retry_after_ms: Option<f64>,
}

fn make(f: Fields<'_>, field_errors: Array) -> JsValue {
    let err = js_sys::Error::new(&redact(&f.message));
    err.set_name("DataPilotError");
    let o: &Object = err.as_ref();
    set(o, "kind", f.kind);
    set(o, "code", f.code.as_str());
    set(
        o,
        "status",
        f.status
            .map(|s| JsValue::from(s as u32))
            .unwrap_or(JsValue::NULL),
    );
    set(o, "requestId", opt_str(f.request_id));
    set(o, "retryable", f.retryable);
    set(
        o,
        "sent",
        match f.sent {
            Sent::No => "no",
            Sent::Maybe => "maybe",
            _ => "yes",
        },
    );
    set(o, "detail", opt_str(f.detail.map(redact).as_deref()));
    set(o, "errors", field_errors);
    set(
        o,
        "retryAfterMs",
        f.retry_after_ms.map(JsValue::from).unwrap_or(JsValue::NULL),
    );
    let _ = Reflect::set(o, &brand(), &JsValue::TRUE);
    err.into()
}

/// Converts a core error into a `DataPilotError`.
pub(crate) fn to_js_error(e: &Error) -> JsValue {
    let errors = Array::new();
    let (kind, code) = match e {
        Error::Build { .. } => ("invalid_request", "invalid_request".to_owned()),
        Error::Transport { .. } => ("transport", "transport_error".to_owned()),
        Error::Timeout { .. } => ("timeout", "timeout".to_owned()),
        Error::Api(api) => {
            for fe in &api.errors {
                let o = Object::new();
                set(&o, "field", fe.field.as_str());
                set(&o, "message", redact(&fe.message));
                errors.push(&o);
            }
            (
                "api",
                api.code
                    .clone()
                    .unwrap_or_else(|| format!("http_{}", api.status)),
            )
        }
        Error::Decode { .. } => ("decode", "decode_error".to_owned()),
        Error::Verification(_) => ("verification", "verification_failed".to_owned()),
    };
    make(
        Fields {
            kind,
            code,
            message: e.to_string(),
            status: e.status(),
            request_id: e.request_id(),
            retryable: e.is_retryable(),
            sent: e.sent(),
            detail: e.api().and_then(|a| a.detail.as_deref()),
            retry_after_ms: e.retry_after().map(|d| d.as_millis() as f64),
        },
        errors,
    )
}

/// A `DataPilotError` for a bad argument (nothing was sent).
pub(crate) fn invalid_argument(message: &str) -> JsValue {
    make(
        Fields {
            kind: "invalid_request",
            code: "invalid_request".to_owned(),
            message: format!("invalid argument: {message}"),
            status: None,
            request_id: None,
            retryable: false,
            sent: Sent::No,
            detail: None,
            retry_after_ms: None,
        },
        Array::new(),
    )
}

/// A `DataPilotError` for a failed local verification (bad signature, proof, digest).
pub(crate) fn verification_failed(message: &str) -> JsValue {
    to_js_error(&Error::Verification(message.to_owned()))
}

/// `isDataPilotError(value)`: whether `value` is an error thrown by this SDK (any copy of it).
#[wasm_bindgen(js_name = isDataPilotError, skip_typescript)]
pub fn is_datapilot_error(value: &JsValue) -> bool {
    value.is_object()
        && Reflect::get(value, &brand())
            .map(|v| v.is_truthy())
            .unwrap_or(false)
}
