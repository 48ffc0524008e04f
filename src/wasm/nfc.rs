//! Unicode NFC for DPM-1 paths on wasm32, through the host's `String.prototype.normalize`.
//!
//! The native build normalises with the `unicode-normalization` crate; in the browser and in
//! Node the JS engine (ICU) already carries the same tables, so the wasm build uses them instead
//! of shipping its own (~120 KB gzip). Both implement the same Unicode algorithm (UAX #15);
//! normalisation is stable for assigned characters, so the two could only disagree on code
//! points assigned after the older of the two Unicode versions. The cross-target suites
//! (`tests/crosscheck`, with an NFD path) check that native, Node and Chromium agree.

use std::borrow::Cow;

/// Every code point below U+0300 (the first combining mark) is NFC on its own and never
/// composes with what precedes it, so such strings need no trip to JS.
fn trivially_nfc(s: &str) -> bool {
    s.chars().all(|c| (c as u32) < 0x300)
}

/// `s` in NFC.
pub(crate) fn to_nfc(s: &str) -> Cow<'_, str> {
    if trivially_nfc(s) {
        return Cow::Borrowed(s);
    }
    let nfc = String::from(js_sys::JsString::from(s).normalize("NFC"));
    if nfc == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(nfc)
    }
}

/// Whether `s` is already in NFC.
pub(crate) fn is_nfc(s: &str) -> bool {
    matches!(to_nfc(s), Cow::Borrowed(_))
}
