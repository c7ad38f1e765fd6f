//! A real nginx for comparisons: one process (no daemon, no workers) with
//! a config file the test wrote, its files in the test's folder, killed on
//! drop and with the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{READY_LIMIT, child_command};

/// A real nginx in one process (no daemon, no workers), killed on drop and
/// with the test.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Checks `main` with `nginx -t`, starts nginx on it (prefix `dir`) and
    /// waits until `addr` accepts.
    pub fn start(dir: &Path, main: &Path, addr: SocketAddr) -> Nginx {
        let globals = format!(
            "daemon off; master_process off; pid {}/nginx.pid;",
            dir.display()
        );
        let args = |cmd: &mut Command| {
            cmd.arg("-p")
                .arg(format!("{}/", dir.display()))
                .arg("-c")
                .arg(main)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-g")
                .arg(&globals);
        };
        let mut test = Command::new("nginx");
        args(&mut test);
        let out = test.arg("-t").output().expect("run nginx -t");
        assert!(
            out.status.success(),
            "nginx -t refused {}:\n{}",
            main.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cmd = child_command("nginx");
        args(&mut cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + READY_LIMIT;
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx not listening on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.join("nginx.pid"));
    }
}
