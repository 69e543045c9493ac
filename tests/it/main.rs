//! Integration tests of bingfa: real sockets on 127.0.0.1, real files in a
//! temporary copy of `tests/fixture/site`, no mocks.
//!
//! Most tests run once per concurrency model: `model_tests!` expands each test
//! into one module per model (`process`, `thread`, `pool`, `r#async`,
//! `nonblocking`, `poll`, `epoll`, `reactor`, `prefork`, `uring`), inside the
//! module of its file, so a test is named like
//! `connections::epoll::keep_alive_by_default`, and
//! `cargo test --test it epoll::` selects one model (`::poll::` for poll
//! alone, since `poll::` also matches `epoll::`).
//!
//! The models that fork (`Model::forks()`: process, prefork) are run through
//! the built binary as a child process; the others in the test process (see
//! `support::TestServer`). Tests do not see the difference.
//!
//! HTTPS answers byte for byte as HTTP does, and the tests say so by running
//! over TLS too, in a `tls` module inside their model's:
//! `connections::reactor::tls::keep_alive_by_default`. The default model
//! (`reactor`) runs every test so; the others run those marked `#[tls]`, a
//! cheap representative set (files, ranges, 304, pipelining, errors, drain).
//! Over TLS the body of a test is unchanged: every `TestServer` it starts
//! serves HTTPS with the test certificate (`support::tls_fixture`), and a
//! `support::Client` connecting to one wraps its socket in a rustls client
//! that trusts the test CA (other listeners, such as `--metrics`, stay
//! plaintext). The few tests whose TLS run could not mean the same are listed
//! with why in `support::NOT_OVER_TLS`. `cargo test --test it ::tls::` runs
//! everything over TLS, `reactor::tls::` the whole suite over TLS, and
//! `-- --skip ::tls::` leaves TLS out.

/// The tested models, as `MODULE Variant` pairs, handed to the macro named in
/// the call after a `;`: `model_list!(m!(ARGS))` expands to
/// `m!(ARGS; process Process, thread Thread, ...)`. The one place the models
/// are listed by hand; `support::models_are_the_ten_tested_ones` fails if it
/// drifts from `Model::ALL`.
macro_rules! model_list {
    ($callback:ident!($($args:tt)*)) => {
        $callback! {$($args)*;
            process Process,
            thread Thread,
            pool Pool,
            r#async Async,
            nonblocking Nonblocking,
            poll Poll,
            epoll Epoll,
            reactor Reactor,
            prefork Prefork,
            uring Uring
        }
    };
}

/// Expands every `fn NAME(s) { BODY }` into one `#[test]` per model of
/// `model_list!`, each in the module named after its model, and runs tests
/// over TLS in a `tls` module inside it (see the top of this file). Two forms
/// of test are accepted:
///
/// - `fn name(s) { ... }`: `s` is a `TestServer` started with the defaults
///   of `TestServer::start`.
/// - `fn name(model m) { ... }`: `m` is the `bingfa::Model`; the body starts
///   its own server (e.g. with `TestServer::start_with`).
///
/// Either may be marked `#[tls]`, before any other attribute or doc comment:
/// the test then runs over TLS in every model, not only in the default one.
///
/// A model that cannot run here (`support::unavailable`: uring where
/// io_uring is disabled) makes its tests return early after a note, as does
/// a test in `support::NOT_OVER_TLS` in its TLS runs.
macro_rules! model_tests {
    // One test of one model, over one `support::Transport`.
    (@test $variant:ident $transport:ident;
        $(#[$meta:meta])* fn $name:ident($s:ident) $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            let Some(_run) = $crate::support::begin(
                bingfa::Model::$variant,
                $crate::support::Transport::$transport,
                concat!(module_path!(), "::", stringify!($name)),
            ) else {
                return;
            };
            #[allow(unused_variables)]
            let $s = $crate::support::TestServer::start(bingfa::Model::$variant);
            $body
        }
    };
    (@test $variant:ident $transport:ident;
        $(#[$meta:meta])* fn $name:ident(model $m:ident) $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            let Some(_run) = $crate::support::begin(
                bingfa::Model::$variant,
                $crate::support::Transport::$transport,
                concat!(module_path!(), "::", stringify!($name)),
            ) else {
                return;
            };
            let $m = bingfa::Model::$variant;
            $body
        }
    };
    // Every test.
    (@all $variant:ident $transport:ident;) => {};
    (@all $variant:ident $transport:ident; #[tls] $($rest:tt)*) => {
        model_tests!(@all $variant $transport; $($rest)*);
    };
    (@all $variant:ident $transport:ident;
        $(#[$meta:meta])* fn $name:ident $args:tt $body:block $($rest:tt)*) => {
        model_tests!(@test $variant $transport; $(#[$meta])* fn $name $args $body);
        model_tests!(@all $variant $transport; $($rest)*);
    };
    // The tests marked `#[tls]` only.
    (@marked $variant:ident $transport:ident;) => {};
    (@marked $variant:ident $transport:ident;
        #[tls] $(#[$meta:meta])* fn $name:ident $args:tt $body:block $($rest:tt)*) => {
        model_tests!(@test $variant $transport; $(#[$meta])* fn $name $args $body);
        model_tests!(@marked $variant $transport; $($rest)*);
    };
    (@marked $variant:ident $transport:ident;
        $(#[$meta:meta])* fn $name:ident $args:tt $body:block $($rest:tt)*) => {
        model_tests!(@marked $variant $transport; $($rest)*);
    };
    // Over TLS: every test in the default model (`Config::new`'s, checked by
    // `support::config_defaults`), the marked ones in the others.
    (@tls Reactor; $($tests:tt)*) => {
        model_tests!(@all Reactor Tls; $($tests)*);
    };
    (@tls $variant:ident; $($tests:tt)*) => {
        model_tests!(@marked $variant Tls; $($tests)*);
    };
    (@mods $tests:tt; $($module:ident $variant:ident),*) => {
        $(model_tests!(@mod $module $variant $tests);)*
    };
    (@mod $module:ident $variant:ident [$($tests:tt)*]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            model_tests!(@all $variant Plaintext; $($tests)*);

            mod tls {
                #[allow(unused_imports)]
                use super::*;
                model_tests!(@tls $variant; $($tests)*);
            }
        }
    };
    ($($tests:tt)*) => {
        model_list!(model_tests!(@mods [$($tests)*]));
    };
}

mod support;

mod binary;
mod pki;

mod acme;
mod auth;
mod cli;
mod clients;
mod conditional;
mod config;
mod conformance;
mod connections;
mod docs;
mod drain;
mod encoding;
mod errors;
mod files;
mod forks;
mod goaway;
mod h2;
mod handler;
mod haproxy;
mod headers;
mod hosts;
mod isolation;
mod lifecycle;
mod limits;
mod listening;
mod listing;
mod methods;
mod observe;
mod paths;
mod properties;
mod proxy;
mod ranges;
mod rules;
mod slow_clients;
mod slowloris;
mod tidy;
mod timeouts;
mod tls;
mod trace;
mod traversal;
mod upgrade;
