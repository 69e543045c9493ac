//! The static site: the HTTP core's [`Handler`], answering GET and HEAD from the file module.

use crate::fs::{self, Lookup, OpenFile, SitePath, SmallFileCache};
use crate::http::{self, Body, Handler, Method, Reply, Request, Status};
use std::io;
use std::path::Path;

/// Files up to this size are kept in memory, so their responses can be batched in one write.
const SMALL_FILE: u64 = 32 * 1024;
const SMALL_FILE_ENTRIES: usize = 2048;

/// A folder served over HTTP.
#[derive(Debug)]
pub struct Site {
    root: fs::Root,
    cache: SmallFileCache,
    hidden: bool,
}

impl Site {
    /// Opens `root` once; requests are resolved beneath that open directory.
    pub fn open(root: &Path, hidden: bool) -> io::Result<Site> {
        Ok(Site {
            root: fs::Root::open(root)?,
            cache: SmallFileCache::new(SMALL_FILE, SMALL_FILE_ENTRIES),
            hidden,
        })
    }

    /// The absolute, symlink-free path being served.
    pub fn root(&self) -> &Path {
        self.root.canonical()
    }

    fn file_reply(&self, path: &SitePath, file: OpenFile, method: Method) -> Reply {
        let extension = if file.is_index {
            Some("html")
        } else {
            path.extension()
        };
        let body = match method {
            // HEAD needs only the length: don't read the file.
            Method::Head => Body::File {
                len: file.len(),
                file: file.file,
            },
            Method::Get => match self.cache.get_or_read(&file) {
                Ok(Some(cached)) => Body::Shared(cached.bytes.clone()),
                // Too big for memory, or changed while read: send it from the open file.
                Ok(None) | Err(_) => Body::File {
                    len: file.len(),
                    file: file.file,
                },
            },
        };
        Reply {
            status: Status::Ok,
            content_type: Some(http::content_type(extension)),
            location: None,
            body,
        }
    }
}

impl Handler for Site {
    fn handle(&self, request: &Request<'_>) -> Reply {
        let Ok(path) = fs::decode_path(request.path) else {
            return Reply::error(Status::BadRequest);
        };
        match self.root.lookup(&path, self.hidden) {
            Lookup::File(file) => self.file_reply(&path, file, request.method),
            Lookup::Redirect(location) => Reply::moved_permanently(location),
            Lookup::NotFound => Reply::error(Status::NotFound),
            Lookup::Forbidden => Reply::error(Status::Forbidden),
            Lookup::Failed(_) => Reply::error(Status::InternalServerError),
        }
    }
}
