//! The status page at `/`: one HTML document with its style and script
//! embedded in the binary (`page/`), drawing every second what `/status`
//! and `/metrics` say — it is never a second source of truth.
//!
//! With `--token-reads` the page's own requests need the token, and a
//! browser cannot add an `Authorization` header to them without the script
//! holding the token. So `POST /ui/token` trades the token for a *read
//! pass*: a cookie (`HttpOnly`, `SameSite=Strict`) holding a MAC of the
//! token (see [`Token::read_pass`]) that the router accepts for reads and
//! nothing else. The token never appears in a URL or in storage the
//! script can read; rotating the token voids every pass.

use crate::http::response::Response;
use crate::http::token::Token;
use base64::Engine as _;
use sha2::Digest as _;
use std::sync::OnceLock;

/// The most the page may weigh, style and script included (issue target:
/// ≤ 40 KiB transferred). Checked by a unit test.
pub const PAGE_BYTES_MAX: usize = 40 * 1024;

/// The read pass cookie's name.
pub const READ_PASS_COOKIE: &str = "hypha_read";

/// How long a browser keeps a read pass (30 days; a rotated token voids it sooner).
pub const READ_PASS_MAX_AGE_S: u64 = 30 * 24 * 3600;

const HTML: &str = include_str!("page/page.html");
const CSS: &str = include_str!("page/page.css");
const JS: &str = include_str!("page/page.js");

struct Page {
    body: Vec<u8>,
    /// Allows exactly the embedded style and script (by hash), requests to
    /// this origin, and nothing else.
    policy: String,
}

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let body = HTML.replacen("/*CSS*/", CSS, 1).replacen("//JS", JS, 1);
        let hash = |text: &str| {
            let digest = sha2::Sha256::digest(text.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(digest)
        };
        let policy = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'; \
             base-uri 'none'",
            hash(JS),
            hash(CSS)
        );
        Page {
            body: body.into_bytes(),
            policy,
        }
    })
}

/// `GET /`: the page (it holds no data, so it needs no token).
pub(crate) fn serve() -> Response {
    let page = page();
    Response::bytes(200, "text/html; charset=utf-8", page.body.clone())
        .header("Content-Security-Policy", page.policy.as_str())
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
}

/// `POST /ui/token` with the token as the body: a read pass cookie, or 401.
pub(crate) fn read_pass(token: Option<&Token>, presented: &[u8]) -> Response {
    let Some(token) = token else {
        return Response::error(
            400,
            "this edge has no token (--token-file): the page needs no pass",
        );
    };
    let presented = presented.trim_ascii();
    if !token.matches(presented) {
        return Response::error(401, "that is not this edge's token (--token-file)");
    }
    let cookie = format!(
        "{READ_PASS_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={READ_PASS_MAX_AGE_S}",
        token.read_pass()
    );
    Response::new(204)
        .header("Set-Cookie", cookie)
        .header("Cache-Control", "no-store")
}

/// Whether a `Cookie` header carries a valid read pass.
pub(crate) fn has_read_pass(token: &Token, cookie_header: &[u8]) -> bool {
    cookie_header
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let (name, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (name == READ_PASS_COOKIE.as_bytes()).then(|| &value[1..])
        })
        .any(|value| token.matches_read_pass(value))
}

#[cfg(test)]
#[allow(clippy::expect_used)] // a test fails loudly
mod tests {
    use super::*;

    #[test]
    fn the_page_is_whole_within_its_weight_and_its_policy_names_what_it_embeds() {
        let page = page();
        assert!(
            page.body.len() <= PAGE_BYTES_MAX,
            "{} bytes",
            page.body.len()
        );
        let text = std::str::from_utf8(&page.body).expect("utf-8");
        assert!(!text.contains("/*CSS*/") && !text.contains("//JS"));
        assert!(text.contains(JS) && text.contains(CSS));
        assert_eq!(page.policy.matches("'sha256-").count(), 2);
        assert!(!page.policy.contains("unsafe"));
    }

    #[test]
    fn a_read_pass_is_given_for_the_token_only_and_recognized_among_cookies() {
        let token = Token::new("s3cret");
        assert_eq!(read_pass(Some(&token), b"wrong").status, 401);
        assert_eq!(read_pass(None, b"s3cret").status, 400);
        let answer = read_pass(Some(&token), b"s3cret\n");
        assert_eq!(answer.status, 204);
        let set = answer
            .headers
            .iter()
            .find(|(n, _)| *n == "Set-Cookie")
            .map(|(_, v)| v.to_string())
            .expect("Set-Cookie");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(
            !set.contains("s3cret"),
            "the cookie must not hold the token"
        );
        let pair = set.split(';').next().expect("pair");
        assert!(has_read_pass(
            &token,
            format!("a=b; {pair}; c=d").as_bytes()
        ));
        assert!(!has_read_pass(&token, b"hypha_read=00"));
        assert!(!has_read_pass(&token, b"other=1"));
        token.set("rotated".into());
        assert!(
            !has_read_pass(&token, pair.as_bytes()),
            "rotation voids passes"
        );
    }
}
