//! The S3-compatible endpoint Pulumi's DIY backend (and any S3 client) speaks to: a listener
//! of its own, a bucket per workspace, S3 keys for SigV4. The `s3s` crate does the protocol
//! (routing, SigV4 with presigned URLs and signed or unsigned aws-chunked bodies, XML); the
//! operations here call the services (`statehouse_core::service::objects` and friends).
//!
//! One file per operation family: `objects.rs` (get, head, put, copy, delete), `list.rs`
//! (listings and buckets), `multipart.rs`; request and response bodies in `body.rs`, errors in
//! `errors.rs`.

mod body;
mod errors;
mod list;
mod multipart;
mod objects;

use crate::metrics::http::{S3OperationSlot, record_s3};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::validation::NameValidation;
use s3s::{S3, S3Request, S3Response, S3Result, dto, s3_error};
use statehouse_core::access::Principal;
use statehouse_core::names::WorkspaceName;
use statehouse_core::service::Services;
use tower_http::trace::TraceLayer;

use self::errors::s3_error;

/// How the endpoint is set up.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The largest single PutObject or part, in bytes.
    pub max_object_bytes: usize,
    /// Domains under which `<bucket>.<domain>` is virtual-host addressing; path style always
    /// works.
    pub domains: Vec<String>,
}

/// The operations, over the services.
#[derive(Clone)]
pub(crate) struct Endpoint {
    services: Services,
    max_object_bytes: usize,
}

impl Endpoint {
    /// The principal a signed request acts as (s3s has checked the signature with the key's
    /// secret by then). Unsigned requests are refused.
    async fn principal<T>(&self, req: &S3Request<T>) -> S3Result<Principal> {
        let Some(credentials) = &req.credentials else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are refused: sign requests with an S3 key (statehouse s3-key create)"
            ));
        };
        let source_ip = crate::auth::client_ip(&req.extensions);
        match self
            .services
            .s3_key_credentials(&credentials.access_key, source_ip)
            .await
        {
            Ok(Some(found)) => Ok(found.principal),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId, "unknown access key")),
            Err(e) => Err(s3_error(e)),
        }
    }
}

/// The operations statehouse serves; every other one answers `NotImplemented`.
#[async_trait::async_trait]
impl S3 for Endpoint {
    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        self.get_object_op(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        self.head_object_op(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        self.put_object_op(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        self.copy_object_op(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.delete_object_op(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        self.delete_objects_op(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        self.list_objects_v2_op(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        self.list_objects_op(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        self.list_buckets_op(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        self.head_bucket_op(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        self.get_bucket_location_op(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.create_multipart_upload_op(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.upload_part_op(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_op(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_op(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        self.list_parts_op(req).await
    }
}

/// Looks up a key's secret for SigV4.
struct KeySecrets {
    services: Services,
}

#[async_trait::async_trait]
impl S3Auth for KeySecrets {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.services.s3_key_credentials(access_key, None).await {
            Ok(Some(found)) => Ok(SecretKey::from(found.secret.as_str())),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key id you gave is not an S3 key of this server"
            )),
            Err(e) => Err(s3_error(e)),
        }
    }
}

/// Virtual-host addressing under the configured domains: `<bucket>.<domain>[:port]` names a
/// bucket; any other host (an IP address, the domain itself) is path style. (s3s's own
/// `MultiDomain` takes any other host name for a bucket, which would turn `127.0.0.1:8081`
/// into one.)
struct Domains(Vec<String>);

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        for domain in &self.0 {
            if let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// Bucket names are workspace names (which also allow `_`).
struct WorkspaceNames;

impl NameValidation for WorkspaceNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        WorkspaceName::parse(name).is_ok()
    }
}

/// The S3 service over the services.
pub fn service(services: Services, options: &S3Options) -> Result<S3Service, String> {
    let endpoint = Endpoint {
        services: services.clone(),
        max_object_bytes: options.max_object_bytes,
    };
    let mut builder = S3ServiceBuilder::new(endpoint);
    builder.set_auth(KeySecrets { services });
    builder.set_access(crate::metrics::http::NoteOperation);
    builder.set_validation(WorkspaceNames);
    if !options.domains.is_empty() {
        for domain in &options.domains {
            if domain.is_empty() || domain.contains([':', '/']) || domain.starts_with('.') {
                return Err(format!(
                    "invalid S3 domain {domain:?} (s3_domains): give host names such as s3.example.com, without port or scheme"
                ));
            }
        }
        builder.set_host(Domains(options.domains.clone()));
    }
    Ok(builder.build())
}

/// The S3 listener's application: every request goes to the S3 service. Logged per request
/// like the main listener: method and path, never the query (a presigned URL's signature is
/// in it) nor headers.
pub fn router(services: Services, options: &S3Options) -> Result<Router, String> {
    let service = Arc::new(service(services, options)?);
    Ok(Router::new()
        .fallback(handle)
        .with_state(service)
        .layer(TraceLayer::new_for_http().make_span_with(
        |req: &Request| tracing::info_span!("s3", method = %req.method(), path = %req.uri().path()),
    )))
}

/// Counted and timed by S3 operation (`statehouse_s3_requests_total`).
async fn handle(State(service): State<Arc<S3Service>>, mut request: Request) -> Response {
    let started = std::time::Instant::now();
    let slot = S3OperationSlot::default();
    request.extensions_mut().insert(slot.clone());
    let request = request.map(s3s::Body::http_body_unsync);
    let response = match service.call(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            tracing::error!(error = ?e, "S3 request failed");
            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    record_s3(&slot, response.status().as_u16(), started.elapsed());
    response
}
