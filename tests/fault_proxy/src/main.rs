//! The fault proxy as a process, for suites that are not Rust (tests/js/faults.test.mjs).
//!
//! ```text
//! datapilot-fault-proxy --upstream http://127.0.0.1:PORT [--seed N]
//!     [--rate NAME=PER_MILLE]... [--delay PER_MILLE:MAX_MS] [--retry-after SECS]
//!     [--max-faults-per-key N]
//! ```
//!
//! With any `--link-*` flag it is a [`datapilot_fault_proxy::link::SlowLink`] instead (a
//! byte relay with a bandwidth limit or a stalled direction; the fault flags do not apply):
//!
//! ```text
//! datapilot-fault-proxy --upstream http://127.0.0.1:PORT [--link-up-rate BYTES_PER_SEC]
//!     [--link-up-stall-after BYTES] [--link-down-rate BYTES_PER_SEC]
//!     [--link-down-stall-after BYTES] [--link-down-corrupt-at BYTE]
//! ```
//!
//! Prints `seed N` and `listening on http://127.0.0.1:PORT`, then serves until its stdin
//! closes (so it cannot outlive the test that started it), and prints `stats {json}` last. A
//! `stats` line on stdin prints the counts so far. Fault names are those of
//! [`datapilot_fault_proxy::Fault::name`].

use std::io::{self, Write};
use std::time::Duration;

use datapilot_fault_proxy::link::{LinkConfig, SlowLink};
use datapilot_fault_proxy::{Config, Fault, FaultProxy};
use tokio::io::{AsyncBufReadExt, BufReader};

fn usage(msg: &str) -> ! {
    eprintln!("datapilot-fault-proxy: {msg}");
    eprintln!(
        "usage: datapilot-fault-proxy --upstream http://127.0.0.1:PORT [--seed N] \
         [--rate NAME=PER_MILLE]... [--delay PER_MILLE:MAX_MS] [--retry-after SECS] \
         [--max-faults-per-key N]\n       datapilot-fault-proxy --upstream http://127.0.0.1:PORT \
         [--link-up-rate B/S] [--link-up-stall-after BYTES] [--link-down-rate B/S] \
         [--link-down-stall-after BYTES] [--link-down-corrupt-at BYTE]"
    );
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: {v:?} is not a number")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut upstream = None;
    let mut seed = None;
    let mut config = Config::transparent(0);
    let mut link: Option<LinkConfig> = None;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--upstream" => {
                upstream = Some(
                    FaultProxy::parse_upstream(&value()).unwrap_or_else(|e| usage(&e.to_string())),
                )
            }
            "--seed" => seed = Some(number::<u64>("--seed", &value())),
            "--rate" => {
                let v = value();
                let (name, rate) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage("--rate takes NAME=PER_MILLE"));
                let fault = Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .unwrap_or_else(|| usage(&format!("unknown fault {name:?}")));
                config = config.with_rate(fault, number("--rate", rate));
            }
            "--delay" => {
                let v = value();
                let (rate, max) = v
                    .split_once(':')
                    .unwrap_or_else(|| usage("--delay takes PER_MILLE:MAX_MS"));
                config = config.with_delays(
                    number("--delay", rate),
                    Duration::from_millis(number("--delay", max)),
                );
            }
            "--retry-after" => config = config.with_retry_after(number("--retry-after", &value())),
            "--link-up-rate" => {
                link.get_or_insert_with(LinkConfig::default)
                    .up
                    .bytes_per_sec = Some(number("--link-up-rate", &value()))
            }
            "--link-up-stall-after" => {
                link.get_or_insert_with(LinkConfig::default).up.stall_after =
                    Some(number("--link-up-stall-after", &value()))
            }
            "--link-down-rate" => {
                link.get_or_insert_with(LinkConfig::default)
                    .down
                    .bytes_per_sec = Some(number("--link-down-rate", &value()))
            }
            "--link-down-corrupt-at" => {
                link.get_or_insert_with(LinkConfig::default).down.corrupt_at =
                    Some(number("--link-down-corrupt-at", &value()))
            }
            "--link-down-stall-after" => {
                link.get_or_insert_with(LinkConfig::default)
                    .down
                    .stall_after = Some(number("--link-down-stall-after", &value()))
            }
            "--max-faults-per-key" => {
                config = config.with_max_faults_per_key(number("--max-faults-per-key", &value()))
            }
            _ => usage(&format!("unknown argument {flag:?}")),
        }
    }
    let upstream = upstream.unwrap_or_else(|| usage("--upstream is required"));
    // Without --seed, one from the clock, printed so a failing run can be replayed.
    config.seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(link) = link {
        rt.block_on(serve_link(upstream, link));
        rt.shutdown_timeout(Duration::from_millis(100));
        return;
    }
    rt.block_on(async move {
        let proxy = FaultProxy::start(upstream, config)
            .await
            .unwrap_or_else(|e| usage(&format!("cannot start: {e}")));
        println!("seed {}", proxy.seed());
        println!("listening on {}", proxy.url());
        let _ = io::stdout().flush();
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stats" {
                println!("stats {}", proxy.stats().to_json());
                let _ = io::stdout().flush();
            }
        }
        println!("stats {}", proxy.stats().to_json());
        let _ = io::stdout().flush();
    });
    // Late deliveries still in progress are abandoned with the runtime.
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// The `--link-*` mode: a [`SlowLink`] until stdin closes; `stats` lines report the bytes
/// forwarded each way.
async fn serve_link(upstream: std::net::SocketAddr, config: LinkConfig) {
    let link = SlowLink::start(upstream, config)
        .await
        .unwrap_or_else(|e| usage(&format!("cannot start: {e}")));
    let stats = |link: &SlowLink| {
        format!(
            "stats {{\"forwarded_up\":{},\"forwarded_down\":{}}}",
            link.forwarded_up(),
            link.forwarded_down()
        )
    };
    println!("seed 0");
    println!("listening on {}", link.url());
    let _ = io::stdout().flush();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "stats" {
            println!("{}", stats(&link));
            let _ = io::stdout().flush();
        }
    }
    println!("{}", stats(&link));
    let _ = io::stdout().flush();
}
