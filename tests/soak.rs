//! A short soak in `make test`: integration/soak.sh for SOAK_SECONDS
//! (default 45) against a real cluster, with the debug build of fpmlb.
//! It passes when fpmlb's RSS does not keep growing under the mixed load
//! (the last third's mean at most SOAK_MAX_GROWTH_MIB above the middle
//! third's), wrk saw only 2xx and no socket error, every hostile client got
//! an answer its kind may get (never a 5xx), and fpmlb still serves after.
//! `make soak` runs the same script for minutes on the release build.

mod support;

use std::process::Stdio;

use support::{child_command, nets, repo, state_dir};

#[test]
fn mixed_load_keeps_memory_flat_and_answers_no_server_error() {
    let dir = state_dir(nets::SOAK);
    let seconds = std::env::var("SOAK_SECONDS").unwrap_or_else(|_| "45".to_string());
    let out = child_command(repo().join("integration/soak.sh"))
        .env("SOAK_SECONDS", &seconds)
        .env("SOAK_NET", nets::SOAK.n().to_string())
        .env("SOAK_DIR", &dir)
        .env("FPMLB_BIN", env!("CARGO_BIN_EXE_fpmlb"))
        .stdin(Stdio::null())
        .output()
        .expect("run integration/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("soak: PASS"),
        "soak failed ({}):\n{stdout}\n{stderr}\nreport: {}",
        out.status,
        dir.join("out/report.json").display()
    );
}
