//! Where a `next=` parameter may send the browser: only to a page of this portal. Anything else
//! (another host, a scheme, `//`, a backslash, a tab or other control character, which browsers
//! drop and so turn `/<TAB>/evil.example` into `//evil.example`) goes to `/`.

/// The portal's pages a browser may be sent back to, as the router spells them; `{}` stands
/// for one path segment.
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/login/mobile",
    "/login/mobile/{}",
    "/login/password",
    "/register",
    "/verify-email",
    "/account",
    "/services/cloud-certificate",
    "/services/sign",
    "/services/sign/{}",
    "/oauth2/authorize",
];

/// The local path to redirect to: `next` itself if it is a page of this portal, else `/`.
///
/// Accepted: a path that starts with a single `/`, whose segments use only unreserved URL
/// characters (RFC 3986 §2.3: letters, digits, `-`, `.`, `_`, `~`; so no whitespace, no control
/// characters, no backslash, no `%`, no query), that is not `.` or `..`, and that matches one of
/// the portal's pages.
pub fn local_page(next: Option<&str>) -> &str {
    match next {
        Some(path) if is_portal_page(path) => path,
        _ => "/",
    }
}

fn is_portal_page(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let safe = |segment: &&str| {
        !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    if !segments.iter().all(safe) {
        return false;
    }
    PAGES.iter().any(|page| {
        let pattern: Vec<&str> = page.trim_start_matches('/').split('/').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "{}" || p == s)
    })
}

#[cfg(test)]
mod tests {
    use super::local_page;

    #[test]
    fn the_portal_pages_are_accepted() {
        for path in [
            "/",
            "/login",
            "/login/mobile",
            "/login/mobile/AbC-12_x",
            "/account",
            "/services/sign/7",
            "/oauth2/authorize",
        ] {
            assert_eq!(local_page(Some(path)), path);
        }
    }

    #[test]
    fn anything_else_goes_home() {
        for next in [
            "/\t/evil.example",
            "/%09/evil.example",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            " /login",
            "/login ",
            "/login\n",
            "/login\r\nSet-Cookie: x=y",
            "/login/",
            "/login//mobile",
            "/login/mobile/..",
            "/login/mobile/.",
            "/login/mobile/a/b",
            "/login?next=//evil.example",
            "/login#x",
            "/nowhere",
            "/login/mobile/\u{1b}[2K",
            "/login/mobile/ж",
        ] {
            assert_eq!(local_page(Some(next)), "/", "{next:?}");
        }
        assert_eq!(local_page(None), "/");
    }
}
