//! A command-line uploader: uploads files as artifacts of a run, four at a time, streamed
//! (memory stays flat whatever the size), with the exit codes of the `datapilot` CLI so a CI
//! script can tell a retryable failure from a real one.
//!
//! ```sh
//! DATAPILOT_URL=http://127.0.0.1:8080 DATAPILOT_RUN_ID=run_… DATAPILOT_RUN_TOKEN=dpr_… \
//!   cargo run --example uploader --features native -- out/model.bin out/metrics.json
//! ```
//!
//! Exit status: 0 all uploaded, 1 an upload failed, 2 usage, 75 (`EX_TEMPFAIL`) only
//! retryable failures (network, 429, 503): run the job step again later.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use datapilot::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Uploads in flight at once: enough to fill a link, few enough not to trip rate limits.
const PARALLEL: usize = 4;

fn usage(msg: &str) -> ExitCode {
    eprintln!("uploader: {msg} (usage: uploader FILE...; env DATAPILOT_URL, DATAPILOT_RUN_ID, DATAPILOT_RUN_TOKEN)");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        return usage("no file given");
    }
    let (Ok(url), Ok(run_id), Ok(token)) = (
        std::env::var("DATAPILOT_URL"),
        std::env::var("DATAPILOT_RUN_ID"),
        std::env::var("DATAPILOT_RUN_TOKEN"),
    ) else {
        return usage("set DATAPILOT_URL, DATAPILOT_RUN_ID and DATAPILOT_RUN_TOKEN");
    };
    let client = match Client::builder().base_url(url).token(token).build() {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = JoinSet::new();
    for file in files {
        // Each task owns a clone of the client: the same connections and retry budget.
        let (client, run_id, slots) = (client.clone(), run_id.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let name = std::path::Path::new(&file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.clone());
            let result = client
                .upload_artifact_file(&run_id, &name, &file)
                // Large files: a long attempt, but a bounded whole call.
                .timeout(Duration::from_secs(600))
                .deadline(Duration::from_secs(1800))
                .send()
                .await;
            (file, result)
        });
    }
    let (mut failed, mut retryable) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (file, result) = joined.expect("upload task panicked");
        match result {
            Ok(a) => println!("{file}: {} ({} bytes, sha256 {})", a.id, a.size, a.sha256),
            Err(e) => {
                eprintln!("uploader: {file}: {e}");
                failed += 1;
                retryable += usize::from(e.is_retryable());
            }
        }
    }
    match (failed, retryable) {
        (0, _) => ExitCode::SUCCESS,
        (f, r) if f == r => ExitCode::from(75),
        _ => ExitCode::FAILURE,
    }
}
