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
/// `model_list!`, each in the module named after its model. Two forms of
/// test are accepted:
///
/// - `fn name(s) { ... }`: `s` is a `TestServer` started with the defaults
///   of `TestServer::start`.
/// - `fn name(model m) { ... }`: `m` is the `bingfa::Model`; the body starts
///   its own server (e.g. with `TestServer::start_with`).
///
/// A model that cannot run here (`support::unavailable`: uring where
/// io_uring is disabled) makes its tests return early after a note.
macro_rules! model_tests {
    (@fns $variant:ident;) => {};
    (@fns $variant:ident;
        $(#[$meta:meta])* fn $name:ident($s:ident) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            if $crate::support::skip(
                bingfa::Model::$variant,
                concat!(module_path!(), "::", stringify!($name)),
            ) {
                return;
            }
            #[allow(unused_variables)]
            let $s = $crate::support::TestServer::start(bingfa::Model::$variant);
            $body
        }
        model_tests!(@fns $variant; $($rest)*);
    };
    (@fns $variant:ident;
        $(#[$meta:meta])* fn $name:ident(model $m:ident) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            if $crate::support::skip(
                bingfa::Model::$variant,
                concat!(module_path!(), "::", stringify!($name)),
            ) {
                return;
            }
            let $m = bingfa::Model::$variant;
            $body
        }
        model_tests!(@fns $variant; $($rest)*);
    };
    (@mods $tests:tt; $($module:ident $variant:ident),*) => {
        $(model_tests!(@mod $module $variant $tests);)*
    };
    (@mod $module:ident $variant:ident [$($tests:tt)*]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            model_tests!(@fns $variant; $($tests)*);
        }
    };
    ($($tests:tt)*) => {
        model_list!(model_tests!(@mods [$($tests)*]));
    };
}

mod support;

mod binary;
mod pki;

mod cli;
mod clients;
mod conditional;
mod config;
mod connections;
mod drain;
mod encoding;
mod errors;
mod files;
mod forks;
mod handler;
mod headers;
mod isolation;
mod lifecycle;
mod limits;
mod listening;
mod listing;
mod methods;
mod observe;
mod properties;
mod ranges;
mod slow_clients;
mod slowloris;
mod tidy;
mod timeouts;
mod tls;
mod traversal;
