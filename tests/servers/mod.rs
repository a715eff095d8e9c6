//! Real servers for the remote-cache tests, on 127.0.0.1 only: an S3-compatible endpoint
//! (moto's standalone server, from PyPI, in a private venv under `target/`) and a plain HTTP
//! server that accepts PUT (`put_server.py`, Python's standard library). Each is a child
//! process, killed when its handle drops; every wait is a bounded loop.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Pinned: the S3 server the tests talk to.
pub const MOTO: &str = "moto[server]==5.2.5";

/// The bucket the S3 server starts with.
pub const BUCKET: &str = "litert-cache";

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-servers")
}

/// The plain HTTP server, serving and storing files under `root`; with `refuse_put` every
/// PUT is answered 403 (a cache that cannot be written).
pub fn http(root: &Path, refuse_put: bool) -> Server {
    fs::create_dir_all(root).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/put_server.py"))
        .arg(root);
    if refuse_put {
        cmd.arg("--refuse-put");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the HTTP server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the HTTP server prints its port");
    let port = line.trim().parse().expect("a port number");
    Server { child, port }
}

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The venv holding moto's server, made on first use (guarded by a file lock so parallel
/// test binaries do not collide).
fn moto_server() -> PathBuf {
    let dir = target_dir();
    fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    crate::support::python::venv(&dir.join("venv"), &[MOTO], "moto's S3 server")
        .with_file_name("moto_server")
}

/// Send one HTTP/1.0 request to 127.0.0.1:`port`; the status code, or `None` when nothing
/// answers.
fn request(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response.split_whitespace().nth(1)?.parse().ok()
}

/// moto's S3 server on a free port, with the bucket [`BUCKET`] made.
pub fn s3() -> Server {
    let bin = moto_server();
    let port = closed_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let server = Server { child, port };
    // Up to 60 s for the server to answer (it imports botocore first).
    let mut up = false;
    for _ in 0..600 {
        if request(port, "GET", "/").is_some() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "moto_server did not start on port {port}");
    assert_eq!(
        request(port, "PUT", &format!("/{BUCKET}")),
        Some(200),
        "creating the bucket"
    );
    server
}

/// The environment `litert` needs to reach the S3 server: static test credentials, the
/// endpoint, and plain HTTP allowed.
pub fn s3_env(server: &Server) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT".into(), server.url()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
    ]
}
