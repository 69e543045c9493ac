//! Nothing outside ROOT is ever served: dot-segments in any encoding,
//! backslashes, NUL, bad escapes, and symlinks that lead out of the root.

use crate::support::*;

fn traversal_cases() -> Vec<Case> {
    let cases: &[(&'static str, &str, u16)] = &[
        ("dot-dot", "/../outside/secret.txt", 400),
        ("dot-dot after a directory", "/docs/../../outside/secret.txt", 400),
        ("deep dot-dot", "/../../../../../../../../etc/passwd", 400),
        // RFC 3986 §2.1: %2e is '.', decoded before the path is looked at.
        ("encoded dot-dot", "/%2e%2e/outside/secret.txt", 400),
        ("mixed encoded dot-dot", "/.%2E/outside/secret.txt", 400),
        // An encoded slash makes "..%2f.." a dot-dot segment once decoded.
        ("encoded slashes", "/..%2f..%2foutside%2fsecret.txt", 400),
        // Decoded once only: "%252e" is the literal name "%2e".
        ("double-encoded dot-dot", "/%252e%252e/outside/secret.txt", 404),
        ("backslashes", "/..\\outside\\secret.txt", 400),
        ("encoded backslashes", "/%5c..%5coutside%5csecret.txt", 400),
        ("symlink out of the root", "/escape.txt", 404),
        ("absolute symlink", "/abs", 404),
        ("NUL", "/a%00b", 400),
        ("NUL after a real name", "/readme.txt%00.html", 400),
        ("bad escape", "/%zz", 400),
        ("truncated escape", "/readme.txt%2", 400),
    ];
    cases
        .iter()
        .map(|&(name, target, status)| case(name, get_req(target), status))
        .collect()
}

#[track_caller]
fn assert_no_secret(resp: &Response) {
    let body = resp.body_str();
    assert!(
        !body.contains(SECRET.trim()),
        "the secret leaked: {}",
        resp.summary()
    );
    assert!(
        !body.contains("root:x:0:0"),
        "/etc/passwd leaked: {}",
        resp.summary()
    );
}

model_tests! {
    fn traversal_never_leaves_the_root(s) {
        check_table(&s, &traversal_cases(), After::Any, assert_no_secret);
    }

    fn traversal_in_absolute_form(s) {
        let cases = [
            case(
                "absolute-form dot-dot",
                "GET http://localhost/../outside/secret.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
                400,
            ),
            case(
                "absolute-form encoded dot-dot",
                "GET http://localhost/%2e%2e/outside/secret.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
                400,
            ),
        ];
        check_table(&s, &cases, After::Any, assert_no_secret);
    }

    fn traversal_with_hidden_files_on(model m) {
        let s = TestServer::start_with(m, |c| c.hidden = true);
        check_table(&s, &traversal_cases(), After::Any, assert_no_secret);
    }

    // The refusals did not break anything: the site is still served.
    fn site_is_served_after_traversal_attempts(s) {
        let mut c = s.connect();
        for target in ["/escape.txt", "/abs", "/%252e%252e/outside/secret.txt"] {
            c.send(get_req(target));
            let resp = c.read_response();
            assert_eq!(resp.status, 404, "GET {target}: {}", resp.summary());
            assert_no_secret(&resp);
        }
        c.send(get_req("/readme.txt"));
        assert_body(&c.read_response(), &s.site.read("readme.txt"));
    }
}
