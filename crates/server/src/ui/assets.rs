//! The stylesheet and the one script, compiled into the binary from `crates/server/assets/`.
//! Their addresses carry a hash of their contents, so browsers may cache them for a year and
//! still get a new file after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// `/ui/assets/<stem>.<hash>.<ext>`.
    pub path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        let hash = hex::encode(&Sha256::digest(bytes)[..6]);
        Asset {
            path: format!("/ui/assets/{stem}.{hash}.{ext}"),
            content_type,
            bytes,
        }
    }

    fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "statehouse",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/statehouse.css"),
    )
});

pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "statehouse",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/statehouse.js"),
    )
});

/// `GET /ui/assets/{file}`: only the current files' hashed names are known.
pub async fn serve(Path(file): Path<String>) -> Response {
    for asset in [&*CSS, &*JS] {
        if asset.file_name() == file {
            let mut response = asset.bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            return response;
        }
    }
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}
