//! Integration tests of bingfa: real sockets on 127.0.0.1, real files in a
//! temporary copy of `tests/fixture/site`, no mocks.
//!
//! Most tests run once per concurrency model: `model_tests!` expands each test
//! into `thread::NAME`, `epoll::NAME` and `reactor::NAME`, so
//! `cargo test --test it thread::` selects one model.

/// Expands every `fn NAME(s) { BODY }` into one `#[test]` per model, in the
/// modules `thread`, `epoll` and `reactor`. Two forms of test are accepted:
///
/// - `fn name(s) { ... }`: `s` is a `TestServer` started with the defaults
///   of `TestServer::start`.
/// - `fn name(model m) { ... }`: `m` is the `bingfa::Model`; the body starts
///   its own server (e.g. with `TestServer::start_with`).
///
/// A macro cannot iterate `Model::ALL` at expansion time, so the three models
/// are listed here; `support::models_are_the_three_tested_ones` fails if
/// `Model::ALL` ever changes without this list.
macro_rules! model_tests {
    (@fns $variant:ident;) => {};
    (@fns $variant:ident;
        $(#[$meta:meta])* fn $name:ident($s:ident) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        #[test]
        fn $name() {
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
            let $m = bingfa::Model::$variant;
            $body
        }
        model_tests!(@fns $variant; $($rest)*);
    };
    ($($tests:tt)*) => {
        mod thread {
            #[allow(unused_imports)]
            use super::*;
            model_tests!(@fns Thread; $($tests)*);
        }
        mod epoll {
            #[allow(unused_imports)]
            use super::*;
            model_tests!(@fns Epoll; $($tests)*);
        }
        mod reactor {
            #[allow(unused_imports)]
            use super::*;
            model_tests!(@fns Reactor; $($tests)*);
        }
    };
}

mod support;

mod cli;
mod connections;
mod errors;
mod files;
mod lifecycle;
mod methods;
mod tidy;
mod timeouts;
mod traversal;
