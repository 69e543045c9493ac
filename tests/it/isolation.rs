//! A bug in serving one request costs that connection only. The test build
//! has the `fault-injection` feature (a dev-dependency of the crate on
//! itself), and so does the binary cargo builds for these tests
//! (`CARGO_BIN_EXE_bingfa`): `GET /__bingfa_panic__` panics inside the
//! handler, in every model, in the test process or in the binary.

use crate::binary::poll_until;
use crate::support::*;

const PANIC: &str = "/__bingfa_panic__";

/// More panics than the server has workers (2), so a model that loses a
/// worker thread or process per panic is caught.
const PANICS: usize = 3;

/// Asks for the panic on a fresh connection: the server closes it, having
/// sent nothing or a 500.
#[track_caller]
fn provoke_panic(s: &TestServer) {
    let mut c = s.connect();
    c.send(get_req(PANIC));
    let rest = c.read_until_close();
    assert!(
        !rest.starts_with(b"HTTP/1.1 404 "),
        "[{}] {PANIC} got a 404: the server was built without the fault-injection feature",
        s.model
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 500 "),
        "[{}] a panicking handler should cost its connection (closed, nothing or a 500 sent); got {:?}",
        s.model,
        String::from_utf8_lossy(&rest[..rest.len().min(300)])
    );
}

model_tests! {
    fn a_panic_costs_only_its_connection(model m) {
        let mut s = TestServer::start(m);
        s.expect_panics();
        let readme = s.site.read("readme.txt");
        // Open (and served once) before the panics.
        let mut before = s.connect();
        before.send(get_req("/readme.txt"));
        assert_body(&before.read_response(), &readme);

        for _ in 0..PANICS {
            provoke_panic(&s);
        }

        // New connections are served.
        for _ in 0..3 {
            let resp = check(&s, req("GET", "/readme.txt", "Connection: close\r\n"), 200, After::Close);
            assert_body(&resp, &readme);
        }
        // The connection from before still works.
        before.send(get_req("/style.css"));
        assert_body(&before.read_response(), &s.site.read("style.css"));

        // The binary logs the panic (in the test process the test harness
        // owns stderr, so there is nothing to check).
        if let Some(bingfa) = s.bingfa() {
            let logged = poll_until(SAFETY, || {
                let stderr = bingfa.stderr_now();
                (stderr.contains("panicked") || stderr.contains("fault injected")).then_some(())
            });
            assert!(
                logged.is_some(),
                "[{m}] no panic on stderr: {:?}",
                bingfa.stderr_now()
            );
        }
        // And it still stops cleanly (exit status 0).
        s.stop();
    }
}
