//! The throwaway PostgreSQL harness (common/pg.rs) itself: it starts, creates databases that a
//! plain `psql` reaches by URL, keeps or drops durability as asked, and stops on drop.

#[path = "common/pg.rs"]
mod pg;

use std::process::Command;
use std::time::Instant;

use pg::PgCluster;

#[test]
fn starts_creates_databases_and_stops_on_drop() {
    let t0 = Instant::now();
    let pg = PgCluster::start();
    eprintln!("cluster ready on port {} in {:?}", pg.port(), t0.elapsed());
    assert!(pg::port_open(pg.port()));

    let url = pg.create_db("harness_check");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/harness_check", pg.port())
    );
    let out = Command::new(pg.bin("psql"))
        .args(["-X", "-tA", &url, "-c", "select 1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    assert_eq!(pg.psql(pg::DB, "select current_database()"), pg::DB);
    assert_ne!(pg.fresh_db(), pg.fresh_db());
    // start() is the durable configuration: the crash and replica tests rely on it.
    assert_eq!(pg.psql(pg::DB, "show fsync"), "on");
    assert_eq!(pg.psql(pg::DB, "show synchronous_commit"), "on");

    let (port, dir) = (pg.port(), pg.dir().to_path_buf());
    drop(pg);
    assert!(!pg::port_open(port), "port {port} still open after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn start_fast_turns_fsync_off() {
    let pg = PgCluster::start_fast();
    assert!(!pg.durable());
    assert_eq!(pg.psql(pg::DB, "show fsync"), "off");
    assert_eq!(pg.psql(pg::DB, "show synchronous_commit"), "off");
}
