//! The real `curl` binary against the server: raw and chunked uploads with
//! `Expect: 100-continue`, binary downloads, HEAD, forms and 413. Fails (does
//! not skip) when curl is missing.

mod http_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use http_support::{Server, TestResult};
use hypha_server::http::{HttpConfig, MemBackend};

fn curl(args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output();
    output.map_err(|e| {
        format!("cannot run curl ({e}); install it (apt-get install curl) to run this test").into()
    })
}

/// Runs curl and returns its stdout; `-w %{http_code}` output is appended by callers.
fn curl_ok(args: &[&str]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let output = curl(args)?;
    if !output.status.success() {
        return Err(format!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output.stdout)
}

/// A scratch file that is removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> std::io::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("hypha-http-curl-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes)?;
        Ok(Scratch(path))
    }

    fn arg(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn binary_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn curl_is_installed() -> TestResult {
    let version = curl_ok(&["--version"])?;
    assert!(version.starts_with(b"curl "));
    Ok(())
}

#[test]
fn curl_uploads_with_100_continue_and_downloads_exact_binary_bytes() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let value = binary_value(2 * 1024 * 1024);
    let upload = Scratch::new("upload", &value)?;
    let url = format!("http://{}/kv/curl%00blob", server.addr);
    let put = curl_ok(&[
        "-X",
        "PUT",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &upload.arg("@"),
        "-w",
        "\n%{http_code}",
        &url,
    ])?;
    assert!(put.ends_with(b"\n201"), "{}", String::from_utf8_lossy(&put));
    assert_eq!(curl_ok(&[&url])?, value);

    let head = curl_ok(&["--head", &url])?;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", value.len())),
        "{head}"
    );
    Ok(())
}

#[test]
fn curl_chunked_upload_is_stored() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let value = binary_value(300 * 1024);
    let upload = Scratch::new("chunked", &value)?;
    let url = format!("http://{}/kv/chunked", server.addr);
    let put = curl_ok(&[
        "-X",
        "PUT",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &upload.arg("@"),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ])?;
    assert_eq!(put, b"201");
    assert_eq!(curl_ok(&[&url])?, value);
    Ok(())
}

#[test]
fn curl_form_set_and_query_get_use_url_encoding() -> TestResult {
    let server = Server::start(HttpConfig::default())?;
    let base = format!("http://{}", server.addr);
    curl_ok(&[
        "--data-urlencode",
        "key=greeting/en",
        "--data-urlencode",
        "value=hello wörld & more",
        &format!("{base}/set"),
    ])?;
    let got = curl_ok(&[
        "-G",
        "--data-urlencode",
        "key=greeting/en",
        &format!("{base}/get"),
    ])?;
    assert_eq!(got, "hello wörld & more".as_bytes());
    let json = curl_ok(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"key":"k","value":"v"}"#,
        &format!("{base}/store"),
    ])?;
    assert!(
        json.starts_with(b"{\"seq\":"),
        "{}",
        String::from_utf8_lossy(&json)
    );
    Ok(())
}

#[test]
fn curl_upload_over_the_limit_gets_413_without_sending_the_body() -> TestResult {
    let server = Server::with_backend(
        HttpConfig::default(),
        MemBackend::with_value_bytes_max(64 * 1024),
    )?;
    let upload = Scratch::new("too-big", &binary_value(4 * 1024 * 1024))?;
    let url = format!("http://{}/kv/big", server.addr);
    let out = curl_ok(&[
        "-X",
        "PUT",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &upload.arg("@"),
        "-w",
        "\n%{http_code}",
        &url,
    ])?;
    let text = String::from_utf8_lossy(&out);
    assert!(text.ends_with("\n413"), "{text}");
    assert!(
        text.contains("value is 4194304 bytes; the limit is 65536 (--value-max)"),
        "{text}"
    );
    Ok(())
}
