//! Submitting checkpoints to witnesses (C2SP `tlog-witness`) and publishing their
//! cosignatures (C2SP `tlog-cosignature`).
//!
//! Configured with `--witness URL=VKEY` (repeatable). Each time the server publishes a larger
//! checkpoint it sends it to every witness (`POST <URL>/add-checkpoint`: the size that witness
//! last cosigned, the consistency proof from it, the checkpoint), at once and with a time limit,
//! and keeps the cosignature lines that verify under the witness's key. Checkpoints handed out
//! for that size (`/checkpoint`, `GET /v1/ledger/checkpoint`) carry them as extra signature
//! lines, which verifiers that do not know the witnesses ignore. A witness that is down or
//! refuses does not stop the log: its cosignature is missing, which clients requiring it see.
//! Cosignatures are kept in the database (`checkpoint_cosignatures`, insert-only, one line per
//! witness and size), so every replica serves the cosignatures any replica collected and a
//! restart keeps them; the latest published size's are also held in memory, so serving it needs
//! no read. Evidence bundles carry the log's signature only, so that they stay deterministic.

use std::sync::Mutex;
use std::time::Duration;

use datapilot::checkpoint::Verifier;
use datapilot::merkle::Hash;
use datapilot::witness::{verify_witnessed, WitnessVerifier};

use crate::store::Store;

/// Time one witness has to answer one submission.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured witness.
#[derive(Debug)]
struct Witness {
    url: String,
    key: WitnessVerifier,
    /// The size this witness last cosigned for our log (0: none known).
    last_size: Mutex<u64>,
}

/// The configured witnesses and the cosignatures of the latest published checkpoint.
#[derive(Debug, Default)]
pub struct Witnesses {
    witnesses: Vec<Witness>,
    /// `(size, root, cosignature lines)` of the latest checkpoint witnesses cosigned.
    latest: Mutex<Option<(u64, Hash, String)>>,
    http: Option<reqwest::Client>,
}

impl Witnesses {
    /// Parse `--witness` values `URL=VKEY` (the URL is what comes before the last `=` that is
    /// followed by a valid cosignature/v1 vkey).
    pub fn from_config(specs: &[String]) -> Result<Witnesses, String> {
        let mut witnesses = Vec::new();
        for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
            let parsed = spec
                .char_indices()
                .filter(|(_, c)| *c == '=')
                .find_map(|(i, _)| {
                    let key = spec[i + 1..].parse::<WitnessVerifier>().ok()?;
                    Some((spec[..i].trim_end_matches('/').to_string(), key))
                });
            let Some((url, key)) = parsed else {
                return Err(format!(
                    "--witness {spec:?}: expected URL=VKEY, the vkey being \
                     <name>+<8 hex key id>+<base64(0x04 || Ed25519 public key)>"
                ));
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("--witness {spec:?}: the URL must be http(s)://"));
            }
            witnesses.push(Witness {
                url,
                key,
                last_size: Mutex::new(0),
            });
        }
        let http = if witnesses.is_empty() {
            None
        } else {
            Some(
                reqwest::Client::builder()
                    .timeout(SUBMIT_TIMEOUT)
                    .build()
                    .map_err(|e| format!("witness HTTP client: {e}"))?,
            )
        };
        Ok(Witnesses {
            witnesses,
            latest: Mutex::new(None),
            http,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.witnesses.is_empty()
    }

    /// Start-up check: whether a witness has cosigned a larger size of this log than `note`,
    /// the largest checkpoint this server has published. `ledger.checkpoint` beside the key
    /// stops a restored database from signing over what was published, but not a restore of
    /// the whole data directory (key and file included); a witness keeps the log's largest
    /// cosigned size outside it. Each witness is sent the note with `old 0`: one that has
    /// cosigned nothing cosigns it, one that holds a size answers 409 with it (C2SP
    /// tlog-witness). A larger size means this data directory is older than what was
    /// published: refuse (the caller refuses to start). A witness that is down, or answers
    /// anything else, does not block the start (logged), as for submissions.
    pub async fn check_not_behind(&self, size: u64, note: &str) -> Result<(), String> {
        let Some(http) = &self.http else {
            return Ok(());
        };
        let answers = futures_util::future::join_all(self.witnesses.iter().map(|w| async move {
            let sent = http
                .post(format!("{}/add-checkpoint", w.url))
                .body(format!("old 0\n\n{note}"))
                .send()
                .await;
            let answer = match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.text().await.unwrap_or_default())
                }
                Err(e) => {
                    tracing::warn!(witness = %w.url, error = %e, "witness unreachable at start");
                    return None;
                }
            };
            Some((w, answer))
        }))
        .await;
        for (w, (status, text)) in answers.into_iter().flatten() {
            match status {
                200 => *w.last_size.lock().unwrap_or_else(|p| p.into_inner()) = size,
                409 => match text.trim().parse::<u64>() {
                    Ok(theirs) if theirs > size => {
                        return Err(format!(
                            "refusing to start: witness {} ({}) has cosigned size {theirs} of \
                             this log, but the largest checkpoint in this data directory is \
                             size {size}: the data directory (key and ledger.checkpoint \
                             included) is older than what was published, and signing now would \
                             fork the log. To recover: restore the newest backup (the database \
                             must reach size {theirs}), or, if those events are lost, start a new \
                             log in a new data directory (a new origin) and publish why. See \
                             docs/server.md, \"Backup and restore\"",
                            w.key.name(),
                            w.url
                        ));
                    }
                    Ok(theirs) => {
                        *w.last_size.lock().unwrap_or_else(|p| p.into_inner()) = theirs;
                    }
                    Err(_) => tracing::warn!(witness = %w.url, body = %text.trim(),
                        "the witness answered 409 without a size at start"),
                },
                _ => tracing::warn!(witness = %w.url, status, body = %text.trim(),
                    "the witness did not take the published checkpoint at start"),
            }
        }
        Ok(())
    }

    /// `note` (the log-signed checkpoint of `size`, `root`) with the cosignatures kept for it:
    /// from memory for the size this process published last, else from the database (another
    /// replica's, or from before a restart). Without configured witnesses, the note as is.
    pub async fn with_cosignatures(
        &self,
        store: &Store,
        size: u64,
        root: &Hash,
        note: String,
    ) -> Result<String, crate::store::StoreError> {
        if self.witnesses.is_empty() {
            return Ok(note);
        }
        if let Some((s, r, lines)) = &*self.latest.lock().unwrap_or_else(|p| p.into_inner()) {
            if *s == size && r == root {
                return Ok(note + lines);
            }
        }
        // The database holds one root per size (`checkpoints`), so lines kept for this size
        // cosign this note.
        let kept = store.cosignatures(size).await?;
        Ok(kept.into_iter().fold(note, |n, (_, line)| n + &line))
    }

    /// Submit the newly published checkpoint `note` (of `size`, `root`) to every witness at
    /// once and keep the cosignatures that verify.
    pub async fn submit(
        &self,
        store: &Store,
        log_key: &Verifier,
        size: u64,
        root: Hash,
        note: &str,
    ) {
        let Some(http) = &self.http else { return };
        let results = futures_util::future::join_all(
            self.witnesses
                .iter()
                .map(|w| submit_one(http, store, log_key, w, size, note)),
        )
        .await;
        let mut lines = String::new();
        for (w, got) in self.witnesses.iter().zip(results) {
            let Some(got) = got else { continue };
            // Kept for every replica and restart; a failure to keep it only costs those their
            // copy (this process still serves it), so it is logged, not fatal.
            if let Err(e) = store.record_cosignature(size, &w.key.vkey(), &got).await {
                tracing::warn!(witness = %w.url, error = %e, size, "could not keep a cosignature");
            }
            lines.push_str(&got);
        }
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some((size, root, lines));
    }
}

/// One witness's cosignature line for `note`, or `None` (logged) if it gave none.
async fn submit_one(
    http: &reqwest::Client,
    store: &Store,
    log_key: &Verifier,
    w: &Witness,
    size: u64,
    note: &str,
) -> Option<String> {
    let mut old = *w.last_size.lock().unwrap_or_else(|p| p.into_inner());
    // At most twice: a 409 tells the size the witness has, then the proof is from there.
    for _ in 0..2 {
        let mut body = format!("old {old}\n");
        if old > 0 && old < size {
            match store.consistency_proof(old, size).await {
                Ok(proof) => {
                    for h in proof {
                        body.push_str(&crate::util::b64(&h));
                        body.push('\n');
                    }
                }
                Err(e) => {
                    tracing::warn!(witness = %w.url, error = %e, "consistency proof for a witness");
                    return None;
                }
            }
        }
        body.push('\n');
        body.push_str(note);
        let resp = match http
            .post(format!("{}/add-checkpoint", w.url))
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(witness = %w.url, error = %e, "witness unreachable");
                return None;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200 => {
                // Keep only lines that are this witness's valid cosignature of this note.
                let lines: String = text
                    .lines()
                    .filter(|l| l.starts_with('\u{2014}'))
                    .map(|l| format!("{l}\n"))
                    .filter(|l| {
                        verify_witnessed(
                            &format!("{note}{l}"),
                            std::slice::from_ref(log_key),
                            std::slice::from_ref(&w.key),
                            1,
                        )
                        .is_ok()
                    })
                    .collect();
                if lines.is_empty() {
                    tracing::warn!(witness = %w.url, "the witness answered without a valid cosignature");
                    return None;
                }
                *w.last_size.lock().unwrap_or_else(|p| p.into_inner()) = size;
                return Some(lines);
            }
            409 if text
                .trim()
                .parse::<u64>()
                .is_ok_and(|s| s != old && s <= size) =>
            {
                old = text.trim().parse().unwrap_or(0);
            }
            _ => {
                // 409 with another root at our size, or 422: the witness holds a history this
                // log does not extend. That is what witnesses are for: say it loudly.
                tracing::error!(witness = %w.url, status, body = %text.trim(), size,
                    "the witness refused this checkpoint");
                return None;
            }
        }
    }
    None
}
