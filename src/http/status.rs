//! The status codes this server answers with, and their reason phrases (RFC 9110 §15).

/// A response status. Only the codes the server actually sends are listed, so a typo cannot
/// produce a status without a reason phrase or an error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NoContent,
    PartialContent,
    MovedPermanently,
    Found,
    SeeOther,
    NotModified,
    TemporaryRedirect,
    PermanentRedirect,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PreconditionFailed,
    ExpectationFailed,
    MisdirectedRequest,
    ContentTooLarge,
    UriTooLong,
    RangeNotSatisfiable,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::Found => 302,
            Status::SeeOther => 303,
            Status::TemporaryRedirect => 307,
            Status::Unauthorized => 401,
            Status::ExpectationFailed => 417,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::PreconditionFailed => 412,
            Status::RangeNotSatisfiable => 416,
            Status::MovedPermanently => 301,
            Status::PermanentRedirect => 308,
            Status::MisdirectedRequest => 421,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The whole status line, so encoding a response head is one copy.
    pub(crate) fn status_line(self) -> &'static str {
        match self {
            Status::Ok => "HTTP/1.1 200 OK\r\n",
            Status::NoContent => "HTTP/1.1 204 No Content\r\n",
            Status::Found => "HTTP/1.1 302 Found\r\n",
            Status::SeeOther => "HTTP/1.1 303 See Other\r\n",
            Status::TemporaryRedirect => "HTTP/1.1 307 Temporary Redirect\r\n",
            Status::Unauthorized => "HTTP/1.1 401 Unauthorized\r\n",
            Status::ExpectationFailed => "HTTP/1.1 417 Expectation Failed\r\n",
            Status::PartialContent => "HTTP/1.1 206 Partial Content\r\n",
            Status::NotModified => "HTTP/1.1 304 Not Modified\r\n",
            Status::PreconditionFailed => "HTTP/1.1 412 Precondition Failed\r\n",
            Status::RangeNotSatisfiable => "HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::MovedPermanently => "HTTP/1.1 301 Moved Permanently\r\n",
            Status::PermanentRedirect => "HTTP/1.1 308 Permanent Redirect\r\n",
            Status::MisdirectedRequest => "HTTP/1.1 421 Misdirected Request\r\n",
            Status::BadRequest => "HTTP/1.1 400 Bad Request\r\n",
            Status::Forbidden => "HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => "HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => "HTTP/1.1 405 Method Not Allowed\r\n",
            Status::ContentTooLarge => "HTTP/1.1 413 Content Too Large\r\n",
            Status::UriTooLong => "HTTP/1.1 414 URI Too Long\r\n",
            Status::HeaderFieldsTooLarge => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalServerError => "HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => "HTTP/1.1 501 Not Implemented\r\n",
            Status::ServiceUnavailable => "HTTP/1.1 503 Service Unavailable\r\n",
            Status::VersionNotSupported => "HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }

    /// A short HTML page naming the status, sent as the body of every non-200 answer.
    pub(crate) fn page(self) -> &'static [u8] {
        macro_rules! page {
            ($title:literal) => {
                concat!(
                    "<!DOCTYPE html>\n<html><head><title>",
                    $title,
                    "</title></head><body><h1>",
                    $title,
                    "</h1><hr><p>bingfa</p></body></html>\n"
                )
                .as_bytes()
            };
        }
        match self {
            Status::Ok | Status::NoContent | Status::PartialContent | Status::NotModified => b"",
            Status::Found => page!("302 Found"),
            Status::SeeOther => page!("303 See Other"),
            Status::TemporaryRedirect => page!("307 Temporary Redirect"),
            Status::Unauthorized => page!("401 Unauthorized"),
            Status::ExpectationFailed => page!("417 Expectation Failed"),
            Status::PreconditionFailed => page!("412 Precondition Failed"),
            Status::RangeNotSatisfiable => page!("416 Range Not Satisfiable"),
            Status::MovedPermanently => page!("301 Moved Permanently"),
            Status::PermanentRedirect => page!("308 Permanent Redirect"),
            Status::MisdirectedRequest => page!("421 Misdirected Request"),
            Status::BadRequest => page!("400 Bad Request"),
            Status::Forbidden => page!("403 Forbidden"),
            Status::NotFound => page!("404 Not Found"),
            Status::MethodNotAllowed => page!("405 Method Not Allowed"),
            Status::ContentTooLarge => page!("413 Content Too Large"),
            Status::UriTooLong => page!("414 URI Too Long"),
            Status::HeaderFieldsTooLarge => page!("431 Request Header Fields Too Large"),
            Status::InternalServerError => page!("500 Internal Server Error"),
            Status::NotImplemented => page!("501 Not Implemented"),
            Status::ServiceUnavailable => page!("503 Service Unavailable"),
            Status::VersionNotSupported => page!("505 HTTP Version Not Supported"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn status_line_names_the_code() {
        for status in [Status::Ok, Status::NotFound, Status::VersionNotSupported] {
            let line = status.status_line();
            assert!(line.starts_with(&format!("HTTP/1.1 {} ", status.code())));
            assert!(line.ends_with("\r\n"));
        }
    }
}
