//! The nginx rules of `deploy/nginx/` (what the tests and the demo serve through, and what a
//! deployment copies), checked on the committed sample trees over a real nginx: the entry
//! points a client polls may be cached for a minute only, everything written once for a year;
//! JSON and images get their content types; a resumed download gets its range.

use ota_testkit::nginx::Nginx;
use ota_testkit::require_program;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// Status line and headers (lower-cased names) of `method path` with `extra` header lines.
fn request(base: &str, method: &str, path: &str, extra: &str) -> (u16, Vec<(String, String)>) {
    let addr = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The first file in `dir` whose name ends with `suffix`.
fn first(dir: &Path, suffix: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names.into_iter().next().unwrap()
}

/// Scenario: Freeze | a CDN or proxy keeps serving an old timestamp.json | bounded: the published cache rules let a cache keep timestamp.json and root.json for 60 s only
#[test]
fn entry_points_are_short_lived_and_written_once_files_immutable() {
    let Some(bin) = require_program("nginx", "nginx") else {
        return;
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo");
    let oem = sample.join("oem/repository");
    let acme = sample.join("supplier/acme/repository");
    let nginx = Nginx::start(&bin, &[("oem", &oem), ("acme", &acme)]);
    let base = nginx.url("oem");
    let short = "public, max-age=60";
    let forever = "public, max-age=31536000, immutable";
    let node = format!(
        "/oem/vehicles/tree/{}",
        first(&oem.join("vehicles/tree"), ".json")
    );
    let image = format!("/acme/targets/{}", first(&acme.join("targets"), ".bin"));
    let cases = [
        ("/oem/timestamp.json", short, "application/json"),
        ("/oem/root.json", short, "application/json"),
        ("/oem/1.root.json", forever, "application/json"),
        ("/oem/2.snapshot.json", forever, "application/json"),
        ("/oem/1.vehicles.json", forever, "application/json"),
        ("/acme/1.brakes-tier2.json", forever, "application/json"),
        (node.as_str(), forever, "application/json"),
        (image.as_str(), forever, "application/octet-stream"),
    ];
    for (path, cache, ty) in cases {
        let (status, h) = request(&base, "HEAD", path, "");
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&h, "cache-control"), Some(cache), "{path}");
        assert_eq!(header(&h, "content-type"), Some(ty), "{path}");
    }
    // A resumed download: the rest of the image from byte 10.
    let (status, h) = request(&base, "GET", &image, "Range: bytes=10-\r\n");
    assert_eq!(status, 206);
    assert!(header(&h, "content-range").is_some_and(|r| r.starts_with("bytes 10-")));
    assert_eq!(header(&h, "cache-control"), Some(forever));
    // A missing file is not cached as if it were published.
    let (status, _) = request(&base, "HEAD", "/oem/999.snapshot.json", "");
    assert_eq!(status, 404);
}
