//! First-start output and admin recovery.
//!
//! The bootstrap admin token exists in clear only in the first start's output (the database
//! keeps its SHA-256). An operator who lost it runs `datapilot-server admin-token` on the
//! machine that holds the data directory: access to the data directory (the ledger key, the
//! database) already is full control of the server, so it is the credential here. The new
//! token is created like any other (`token.create` in the audit ledger, actor `system`), so the
//! recovery is on the record.

use std::path::Path;

use crate::cli::StorageArgs;
use crate::model::Role;
use crate::store::{ActorRef, Writer};
use crate::util::{hash_secret, new_secret};

/// The block printed on stderr once the server accepts connections: where it listens, the
/// verifier key clients and auditors pin and, on a first start, the admin token.
pub fn startup_banner(
    url: &str,
    verifier: &str,
    generated_token: Option<&str>,
    new_ledger: bool,
    data_dir: &Path,
) -> String {
    let rule = "=".repeat(78);
    let mut out = format!(
        "\n{rule}\n datapilot-server {} is ready\n\n  URL           {url}\n  verifier key  {verifier}\n                (pin this in clients and auditors: it verifies every checkpoint)\n",
        env!("CARGO_PKG_VERSION")
    );
    let recover = format!(
        "datapilot-server admin-token --data-dir {}",
        data_dir.display()
    );
    match (generated_token, new_ledger) {
        (Some(t), _) => out.push_str(&format!(
            "  admin token   {t}\n                (shown once: only its hash is kept. Store it now. Lost it? `{recover}`)\n"
        )),
        (None, true) => out.push_str(
            "  admin token   the one in DATAPILOT_BOOTSTRAP_TOKEN (first start of this ledger)\n",
        ),
        (None, false) => out.push_str(&format!(
            "  admin token   created at the first start; a new one: `{recover}`\n"
        )),
    }
    out.push_str(&format!("{rule}\n"));
    out
}

/// `datapilot-server admin-token`: mint a new admin token for an existing ledger and print its
/// secret on stdout (only the secret, for scripts); the rest goes to stderr.
pub async fn admin_token(storage: &StorageArgs, name: &str) -> Result<(), String> {
    if !(1..=100).contains(&name.chars().count()) {
        return Err("--name must be 1 to 100 characters".into());
    }
    let store = storage.open_existing().await?;
    let secret = new_secret("dpt_");
    // The server's own actor: no API principal performed this, the operator did, locally.
    let writer = Writer::new(ActorRef::system());
    let token = store
        .create_token(&writer, name, Role::Admin, &hash_secret(&secret), None)
        .await
        .map_err(|e| format!("creating the token: {e}"))?;
    let seq = store
        .tree_size()
        .await
        .map_err(|e| format!("database: {e}"))?;
    eprintln!(
        "datapilot-server: new admin token {} ({name:?}), recorded in the audit ledger as token.create (ledger size now {seq}); \
         revoke the lost one with POST /v1/tokens/{{id}}/revoke",
        token.id
    );
    println!("{secret}");
    Ok(())
}
