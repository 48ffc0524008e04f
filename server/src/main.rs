//! `datapilot-server`: the reference DataPilot control plane (work in progress, see issue 3).

fn main() {
    eprintln!("datapilot-server: not built yet");
    std::process::exit(2);
}
