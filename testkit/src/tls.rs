//! A certificate authority made in the test, and a server certificate it signs for
//! 127.0.0.1 and localhost (`CA:FALSE`, serverAuth): ureq refuses a self-signed certificate
//! used directly as the server's, so tests trust the CA and serve the leaf.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command-line tool (Debian package openssl) is needed for HTTPS tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// Make a CA and a leaf certificate for 127.0.0.1/localhost, valid for two days.
    pub fn new() -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("test-ca-")
            .tempdir()
            .expect("CA tempdir");
        let d = dir.path();
        std::fs::write(
            d.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ota test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        TestCa { dir }
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    /// The server certificate (PEM) and its key.
    pub fn leaf_pem(&self) -> PathBuf {
        self.dir.path().join("leaf.pem")
    }
    pub fn leaf_key(&self) -> PathBuf {
        self.dir.path().join("leaf.key")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
