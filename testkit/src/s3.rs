//! A real S3-compatible server on loopback for the upload tests: the standalone server of the
//! `moto` Python package (`pip install 'moto[server]'`; `.ci/run` installs it), which keeps
//! objects with their `Cache-Control` and `Content-Type`, lists, deletes, multipart uploads,
//! answers Range requests, and enforces bucket policies on anonymous reads, as a production
//! store does. Started on a free port, stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub port: u16,
}

/// One raw HTTP/1.1 request to 127.0.0.1:`port`; the status and the response headers
/// (lower-cased names), and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the S3 server");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).expect("sending a request");
    s.write_all(body).expect("sending a body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("reading a response");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, out[split + 4..].to_vec())
}

impl S3Server {
    /// Start moto's server, or `None` (a notice; a failure under CI) when it is not installed.
    pub fn start() -> Option<S3Server> {
        let bin = crate::require_program("moto_server", "python3 -m pip install 'moto[server]'")?;
        let port = crate::nginx::free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// Create `bucket`, readable by anyone (a bucket policy, as one set up behind a CDN).
    pub fn public_bucket(&self, bucket: &str) {
        let (status, _, _) = http(self.port, "PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(status, 200, "creating bucket {bucket}");
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        let (status, _, _) = http(
            self.port,
            "PUT",
            &format!("/{bucket}?policy"),
            &[("Content-Type", "application/json")],
            policy.as_bytes(),
        );
        assert!(
            status == 200 || status == 204,
            "setting the bucket policy: {status}"
        );
    }

    /// The endpoint URL (what `AWS_ENDPOINT_URL` names).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment `ota-repo upload` needs for this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
